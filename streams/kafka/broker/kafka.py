"""Apache Kafka 4.x as a child process: a single-node KRaft broker on a loopback port.

The same broker for the demo, development, the tests and the benchmarks (README "Brokers"):
Java from :mod:`streams.kafka.broker.java`, jars from :mod:`streams.kafka.broker.jars`, its log under
``data_dir`` (kept across restarts: a broker started again on the same directory has every
topic, committed offset and changelog it had). :meth:`KafkaBroker.start` returns once the broker
answers a metadata request, :meth:`KafkaBroker.stop` ends it (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shlex
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from streams.kafka.broker.java import find_java
from streams.kafka.broker.jars import KAFKA_VERSION, ensure_jars

__all__ = ["BrokerError", "BrokerTLS", "JVM_OPTS", "KafkaBroker", "free_port", "jvm_options", "port_or_free",
           "wait_for_broker"]

# Chosen by measurement for a development broker on 2 cores (BENCHMARKS.md, "The embedded broker"):
# the client compiler alone — with C2 (Kafka's default) the JIT's warm-up doubled to quadrupled
# the p99 of the first 30 s of traffic —, the serial collector (no GC threads) and a 512 MB heap:
# 337 MiB resident, ready ~3 s after launch. A class-data archive (AutoCreateSharedArchive) saved
# nothing measurable and was left out.
JVM_OPTS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx512m", "-Djava.awt.headless=true")


def jvm_options(java, environ: dict | None = None) -> list[str]:
    """``RDV_BROKER_JVM_OPTS`` when set (it replaces ours), else :data:`JVM_OPTS` and what this Java needs."""
    env = os.environ if environ is None else environ
    if env.get("RDV_BROKER_JVM_OPTS"):
        return shlex.split(env["RDV_BROKER_JVM_OPTS"])
    opts = list(JVM_OPTS)
    if java.version >= 24:  # Kafka unmaps buffers through sun.misc.Unsafe (JEP 498 warns on every start)
        opts.append("--sun-misc-unsafe-memory-access=allow")
    return opts


class BrokerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_or_free(port: int) -> int:
    """``port`` if nothing listens on it on 127.0.0.1, else a free one."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


async def _ping(bootstrap: str, security: dict | None = None) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**(security or {}), bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()


def wait_for_broker(bootstrap: str, timeout_s: float = 60.0, process: subprocess.Popen | None = None,
                    security: dict | None = None) -> None:
    """Block until ``bootstrap`` answers a metadata request (or fail with the reason); ``security``:
    aiokafka's TLS / SASL keyword arguments (``Kafka.security``; none: plaintext)."""
    deadline = time.monotonic() + timeout_s
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # connection refused is expected while it starts
    try:
        _wait(bootstrap, deadline, process, security)
    finally:
        quiet.setLevel(level)


def _wait(bootstrap: str, deadline: float, process: subprocess.Popen | None, security: dict | None) -> None:
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BrokerError(f"broker process exited with code {process.returncode} before answering")
        try:
            socket.create_connection((host, int(port)), timeout=1).close()  # cheap until the port opens
            asyncio.run(_ping(bootstrap, security))
            return
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.05)
    raise BrokerError(f"broker at {bootstrap} did not answer in time: {last}")


@dataclass(frozen=True)
class BrokerTLS:
    """A broker's TLS identity: ``keystore``, a PEM file with its unencrypted PKCS#8 key and its
    certificate chain; ``truststore``, the CA (PEM) whose client certificates it accepts."""

    keystore: Path
    truststore: Path


class KafkaBroker:
    """Apache Kafka, single node in KRaft mode, on ``127.0.0.1:port``; its log in ``data_dir``."""

    def __init__(self, port: int | None = None, data_dir: Path | None = None, log_path: Path | None = None,
                 scram_users: dict[str, str] | None = None, tls: BrokerTLS | None = None,
                 version: str = KAFKA_VERSION) -> None:
        """``data_dir``: the broker's own directory (default: a new temporary one); ``log_path``: where its
        output goes (default: nowhere). ``scram_users`` (name -> password): clients must log in with
        SASL/SCRAM-SHA-256 on ``port``; ``tls``: clients must speak TLS on ``port`` and show a certificate
        ``tls.truststore`` signed (mutual TLS). Both: SASL_SSL. The broker's own traffic stays on an
        internal plaintext listener."""
        self.port = port or free_port()
        self.log_path = log_path
        self.scram_users = scram_users
        self.tls = tls
        self.version = version
        self.internal_port = free_port()
        self.controller_port = free_port()
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="rdv-kafka-"))
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    @property
    def protocol(self) -> str:
        """What clients speak on ``port``: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
        return ("SASL_" if self.scram_users else "") + ("PLAINTEXT" if self.tls is None else "SSL")

    @property
    def plaintext_bootstrap(self) -> str:
        """Where the broker answers without credentials (to know it is up)."""
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
            "log.dirs": str(self.data_dir / "data"),
            "num.partitions": "4",
            # a development broker: few threads, few partitions of the internal topics
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
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
        path = self.data_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def _java(self, main: str, *args: str) -> list[str]:
        java, lib = self._runtime
        log4j = Path(__file__).with_name("log4j2.properties")
        return [str(java.path), *jvm_options(java), f"-Dlog4j2.configurationFile={log4j}", "-cp", str(lib / "*"),
                main, *args]

    def command(self) -> list[str]:
        """Format the log directory the first time, then the broker's command line."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._runtime = find_java(), ensure_jars(self.version)
        props = self._properties()
        if not (self.data_dir / "data" / "meta.properties").exists():
            scram = [arg for name, password in (self.scram_users or {}).items()
                     for arg in ("--add-scram", f"SCRAM-SHA-256=[name={name},password={password}]")]
            formatted = subprocess.run(self._java("kafka.tools.StorageTool", "format", "-t", _cluster_id(),
                                                  "-c", str(props), *scram), capture_output=True, text=True)
            if formatted.returncode:
                raise BrokerError(f"formatting the broker's log directory {self.data_dir} failed: "
                                  f"{(formatted.stderr or formatted.stdout).strip()[-2000:]}")
        return self._java("kafka.Kafka", str(props))

    def start(self, timeout_s: float = 90.0) -> "KafkaBroker":
        command = self.command()
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        try:
            wait_for_broker(self.plaintext_bootstrap, timeout_s, self.process, security={})
        except BrokerError as exc:
            self.stop()
            raise BrokerError(f"{exc}; the broker's log ({self.log_path or 'not kept: pass log_path'}) ends with:\n"
                              f"{self._log_tail()}") from None
        except BaseException:
            self.stop()
            raise
        return self

    def _log_tail(self, lines: int = 15) -> str:
        if not self.log_path or not Path(self.log_path).exists():
            return "(no log)"
        return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (Kafka shuts down cleanly, its log ready for the next start), SIGKILL after ``timeout_s``."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no clean shutdown (fault injection); :meth:`start` brings it back on the same
        port and data directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "KafkaBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _cluster_id() -> str:
    """A KRaft cluster id like ``kafka-storage random-uuid``'s: never starting with '-', which
    the storage tool's argument parser would take for an option."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id
