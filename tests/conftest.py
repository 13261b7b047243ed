"""Shared fixtures: one real broker (Apache Kafka, the embedded one) and trained demo models."""

from __future__ import annotations

import os
import shutil

import pytest

from streams.kafka.broker import KafkaBroker


def require(tool: str, why: str) -> str:
    """``tool``'s path; without it the test fails where every tool must be there (CI sets
    RDV_REQUIRE_ALL), else it is skipped, loudly."""
    path = shutil.which(tool)
    if path:
        return path
    if os.environ.get("RDV_REQUIRE_ALL"):
        pytest.fail(f"{tool} is required here (RDV_REQUIRE_ALL is set: .ci/run installs it): {why}")
    pytest.skip(f"!!! SKIPPED: {tool} not on PATH ({why}) !!!")


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """The embedded Apache Kafka broker, once per session (every pipeline gets its own topics)."""
    home = tmp_path_factory.mktemp("kafka")
    with KafkaBroker(data_dir=home, log_path=home / "broker.log") as broker:
        yield broker


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """Real models trained once per session on River's Agrawal stream: (directory, spec path)."""
    from pipelines.jobs.train import train_demo_models

    directory = tmp_path_factory.mktemp("trained")
    return directory, train_demo_models(directory, pipeline="template", n_train=5000)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server (S3Proxy), once per session."""
    from streams.kafka.broker.s3 import S3Server

    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The S3 server, with its endpoint and credentials in this test's environment (and so in every
    worker it starts): ``s3.bucket(name)`` makes a bucket and returns its ``s3://`` URL."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server
