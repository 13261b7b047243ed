"""Settings from environment variables (``RDV_*``), with sane defaults for one small machine."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

__all__ = ["Settings", "NoBrokerError", "kafka_bootstrap"]


class NoBrokerError(RuntimeError):
    """A command needs a broker and none was given."""

    def __init__(self, command: str) -> None:
        super().__init__(
            f"`rendezvous {command}` needs a Kafka broker: pass --broker kafka://HOST:PORT or set "
            f"RDV_BROKER. For a local one run `rendezvous broker` (Apache Kafka, embedded) in another "
            f"terminal, or use `rendezvous up`, which starts the embedded broker itself."
        )


@dataclass(frozen=True)
class Settings:
    """Every knob, each read from ``RDV_<NAME upper-cased>``."""

    broker: str | None = None            # kafka://host:port; None = none given
    data_dir: Path = Path("data")        # archive, models, reports (the store's local mirror)
    store: str = ""                      # where every host finds them: file:///…, s3://bucket/prefix, gs://…; "" = data_dir
    encoding: str = "avro"               # what our workers write: avro (single-object) | json
    # measured (BENCHMARKS.md, "One broker"): a fetch answers as soon as a byte is there, and an idle
    # one waits 100 ms. A 2 ms wait for 8 KiB (issue 6) made every consumer poll 500 times a second:
    # an idle pipeline took 44% of a core in the broker and 22% in each worker, and at 100-200
    # requests/s the latency was higher, not lower
    fetch_max_wait_ms: int = 100         # an idle consumer's fetch waits this long for data …
    fetch_min_bytes: int = 1             # … and returns as soon as this much is there
    linger_ms: float = 1.0               # producer linger, batches sends
    session_timeout_s: float = 10.0      # a silent worker leaves its group after this
    producer_idempotence: bool = True    # workers' producers: a batch retried after a broker crash is written once
    rebalance_timeout_s: float = 3.0     # group join time on a fresh group
    batch_max: int = 256                 # model micro-batch size
    batch_within_ms: float = 2.0         # longest a model waits to fill a micro-batch
    tick_ms: float = 5.0                 # deadline resolution of the rendezvous
    miss_limit: int = 3                  # missed deadlines in a row before a model counts as down
    orphan_grace_ms: float = 2000.0      # scores whose request never arrived are answered after this
    dedupe_window_s: float = 60.0        # on (re)assignment, Results this recent are read back: never answered twice
    archive_flush_rows: int = 5_000      # decoy: Parquet file per this many rows …
    archive_flush_s: float = 5.0         # … or this many seconds
    archive_retention_s: float = 7 * 86400.0  # archive files (requests, Scores) older than this are deleted; 0 keeps all
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    metrics_port: int = 0                # GET /metrics on its own port (0: on the web port)
    faust_views: bool = False            # Faust's own views (/table/…, /router/…, /graph): table data and topology
    tokens: str = ""                     # REST bearer tokens: tenant:sha256,… (streams/auth.py); none: open
    tokens_file: str = ""                # … or a file of "tenant sha256" lines
    security_protocol: str = "PLAINTEXT"  # to the broker: PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str = ""             # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_cafile: str = ""                 # CA bundle that signed the broker's certificate
    ssl_certfile: str = ""               # client certificate (mutual TLS) …
    ssl_keyfile: str = ""                # … and its key
    probe_port: int = 0                  # a model group's /v1/health/live, /ready, /v1/health (0: none; `up` picks free ones)
    health_silent_s: float = 10.0        # health: degraded when a live model's Scores stopped this long while requests came
    health_lag_limit: int = 10_000       # health: degraded when a consumer group is more messages behind than this
    restart_limit: int = 5               # `up` restarts a crashed worker with backoff; this many crashes …
    restart_window_s: float = 300.0      # … of one role within this window and it gives up
    log_level: str = "warning"

    @classmethod
    def from_env(cls, environ: dict | None = None, **overrides) -> "Settings":
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = env.get(f"RDV_{f.name.upper()}")
            if raw not in (None, ""):
                values[f.name] = _convert(f.name, raw, _TYPES.get(f.name) or type(getattr(cls, f.name, None)))
        return cls(**{**values, **{k: v for k, v in overrides.items() if v is not None}})

    def kafka_security(self) -> dict:
        """Keyword arguments for every aiokafka client (:class:`streams.kafka.clients.Kafka` passes
        them; Faust gets the same through :meth:`faust_credentials`); empty for a plaintext broker."""
        protocol = self.security_protocol.upper()
        if protocol not in PROTOCOLS:
            raise ValueError(f"RDV_SECURITY_PROTOCOL={self.security_protocol!r}: expected one of {PROTOCOLS}")
        if protocol == "PLAINTEXT":
            return {}
        out: dict = {"security_protocol": protocol}
        if protocol.endswith("SSL"):
            from aiokafka.helpers import create_ssl_context

            out["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile or None, certfile=self.ssl_certfile or None,
                                                    keyfile=self.ssl_keyfile or None)
        if protocol.startswith("SASL"):
            if not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
                raise ValueError(f"RDV_SECURITY_PROTOCOL={protocol} needs RDV_SASL_MECHANISM, RDV_SASL_USERNAME "
                                 f"and RDV_SASL_PASSWORD")
            out.update(sasl_mechanism=self.sasl_mechanism.upper(), sasl_plain_username=self.sasl_username,
                       sasl_plain_password=self.sasl_password)
        return out

    def faust_credentials(self):
        """The same settings as Faust's ``broker_credentials`` (None for plaintext)."""
        security = self.kafka_security()
        if not security:
            return None
        import faust

        if "sasl_mechanism" in security:
            return faust.SASLCredentials(username=self.sasl_username, password=self.sasl_password,
                                         mechanism=security["sasl_mechanism"], ssl_context=security.get("ssl_context"))
        return faust.SSLCredentials(security["ssl_context"])

    def open_store(self):
        """The store (:mod:`streams.kafka.store`), one per URL and data directory in a process."""
        from streams.kafka.store import Store

        key = (self.store, str(self.data_dir))
        if key not in _STORES:
            _STORES[key] = Store(self.store or None, self.data_dir)
        return _STORES[key]

    @property
    def bootstrap(self) -> str:
        if not self.broker:
            raise NoBrokerError("this command")
        return kafka_bootstrap(self.broker)


_STORES: dict = {}

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


_TYPES = {"broker": str, "store": str}


def _convert(name: str, raw: str, kind: type):
    try:
        if kind is bool:
            return raw.lower() in ("1", "true", "yes")
        return Path(raw) if kind in (Path,) or name == "data_dir" else kind(raw)
    except ValueError:
        raise ValueError(f"environment variable RDV_{name.upper()}={raw!r} is not a valid {kind.__name__}") from None


def kafka_bootstrap(url: str) -> str:
    """``kafka://a:9092;b:9092`` or ``a:9092,b:9092`` -> ``a:9092,b:9092``."""
    hosts = url.split("://", 1)[-1]
    return ",".join(h.strip() for h in hosts.replace(";", ",").split(",") if h.strip())
