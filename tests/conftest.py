"""Shared fixtures: real brokers (embedded Tansu, Apache Kafka 4.x) and trained demo models."""

from __future__ import annotations

import os
import shutil

import pytest

from streams.brokers import EmbeddedBroker, KafkaBroker

BROKERS = ["embedded", "kafka"]


def _kafka_available() -> str | None:
    missing = [tool for tool in ("java", "mvn") if not shutil.which(tool)]
    return f"{' and '.join(missing)} not on PATH" if missing else None


@pytest.fixture(scope="session")
def embedded_broker():
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    why = _kafka_available()
    if why:
        if os.environ.get("RDV_REQUIRE_KAFKA"):
            pytest.fail(f"Apache Kafka tests are required here (RDV_REQUIRE_KAFKA) but {why}")
        pytest.skip(f"!!! APACHE KAFKA TESTS SKIPPED: {why}; install Java 17 and Maven to run them !!!")
    broker = KafkaBroker(log_dir=tmp_path_factory.mktemp("kafka"), log_path=None)
    with broker:
        yield broker


@pytest.fixture(scope="session", params=BROKERS)
def broker(request):
    """Each integration test runs once per real broker."""
    return request.getfixturevalue(f"{request.param}_broker")


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """Real models trained once per session on River's Agrawal stream: (directory, spec path)."""
    from pipelines.train import train_demo_models

    directory = tmp_path_factory.mktemp("trained")
    return directory, train_demo_models(directory, pipeline="template", n_train=5000)
