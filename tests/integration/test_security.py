"""Broker security passes through: a whole pipeline on an Apache Kafka that only speaks
SASL/SCRAM-SHA-256 to clients, with the credentials given as RDV_* settings only."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streams.brokers import KafkaBroker
from streams.settings import Settings, use_security
from tests.conftest import _kafka_available
from tests.integration.conftest import all_answered, make_stack, ready_client, rows

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scram_kafka(tmp_path_factory):
    why = _kafka_available()
    if why:
        pytest.skip(f"!!! APACHE KAFKA (SASL) TEST SKIPPED: {why}; install Java 17 and Maven to run it !!!")
    with KafkaBroker(log_dir=tmp_path_factory.mktemp("kafka-scram"), scram_users={"rdv": "rdv-secret"}) as broker:
        yield broker


async def _list_topics(bootstrap: str, **security) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, **security)
    await admin.start()
    try:
        return await admin.list_topics()
    finally:
        await admin.close()


def test_security__sasl_scram_reaches_every_worker_and_client(scram_kafka, trained, tmp_path, run):
    login = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "rdv"}
    # the wrong password is refused by the broker
    wrong = Settings.from_env({}, **login, sasl_password="guess").kafka_security()
    for refused in (wrong, {}):  # a wrong password, and no login at all
        with pytest.raises(Exception):
            asyncio.run(asyncio.wait_for(_list_topics(scram_kafka.bootstrap, **refused), 20))
    stack = make_stack(scram_kafka, trained, tmp_path, deadline_ms=2000, **login, sasl_password="rdv-secret")
    try:
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
        assert not missing, f"{len(missing)} of {len(ids)} requests got no Result over SASL"
        topics = asyncio.run(_list_topics(scram_kafka.bootstrap, **stack.settings.kafka_security()))
        assert f"{stack.spec.name}.results" in topics
    finally:
        use_security(Settings())  # the next tests' clients speak plaintext again
