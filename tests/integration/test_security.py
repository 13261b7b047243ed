"""Broker security passes through: a whole pipeline on an Apache Kafka that speaks to clients only
SASL/SCRAM-SHA-256 over mutual TLS (SASL_SSL, a client certificate required), with the login and
the certificates given as RDV_* settings only — every worker and every client of this process."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streams.kafka.broker import KafkaBroker
from streams.kafka.settings import Settings
from tests.integration.certs import make_certificates
from streams.testing import all_answered, make_stack, ready_client, rows

pytestmark = pytest.mark.integration

LOGIN = {"sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "rdv"}


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory, certificates):
    with KafkaBroker(data_dir=tmp_path_factory.mktemp("kafka-secure"), scram_users={"rdv": "rdv-secret"},
                     tls=certificates.broker) as broker:
        yield broker


def _tls(certificates, cafile=None, client_cert: bool = True) -> dict:
    files = {"ssl_cafile": str(cafile or certificates.ca)}
    if client_cert:
        files.update(ssl_certfile=str(certificates.client_cert), ssl_keyfile=str(certificates.client_key))
    return files


async def _list_topics(bootstrap: str, **security) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, **security)
    await admin.start()
    try:
        return await admin.list_topics()
    finally:
        await admin.close()


@pytest.mark.parametrize("case", ["wrong password", "no login", "plaintext", "no client certificate",
                                  "broker certificate from an untrusted CA"])
def test_security__the_broker_refuses(secure_kafka, certificates, case):
    settings = {
        "wrong password": dict(security_protocol="SASL_SSL", **LOGIN, sasl_password="guess", **_tls(certificates)),
        "no login": dict(security_protocol="SSL", **_tls(certificates)),
        "plaintext": {},
        "no client certificate": dict(security_protocol="SASL_SSL", **LOGIN, sasl_password="rdv-secret",
                                      **_tls(certificates, client_cert=False)),
        "broker certificate from an untrusted CA": dict(security_protocol="SASL_SSL", **LOGIN, sasl_password="rdv-secret",
                                                        **_tls(certificates, cafile=certificates.other_ca)),
    }[case]
    with pytest.raises(Exception):
        asyncio.run(asyncio.wait_for(_list_topics(secure_kafka.bootstrap, **Settings(**settings).kafka_security()), 20))


def test_security__sasl_scram_over_mutual_tls_reaches_every_worker_and_client(secure_kafka, certificates, trained,
                                                                             tmp_path, run):
    assert secure_kafka.protocol == "SASL_SSL"
    stack = make_stack(secure_kafka, trained, tmp_path, deadline_ms=2000, security_protocol="SASL_SSL", **LOGIN,
                       sasl_password="rdv-secret", **_tls(certificates))

    async def scenario():
        client = await ready_client(stack)  # the test process's own clients log in too
        try:
            ids = await client.run_load(rows(100), rate_per_s=100)
            return ids, await all_answered(client, ids)
        finally:
            await client.__aexit__(None, None, None)

    with stack:
        ids, missing = run(scenario())
        stack.check_alive()
    assert not missing, f"{len(missing)} of {len(ids)} requests got no Result over SASL_SSL"
    topics = asyncio.run(_list_topics(secure_kafka.bootstrap, **stack.settings.kafka_security()))
    assert f"{stack.spec.name}.results" in topics
