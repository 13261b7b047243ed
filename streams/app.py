"""The Faust app factory: one app (one consumer group) per role of a pipeline, its agents wired.

* ``core`` — decoy + rendezvous + feedback + REST, sharing one consumer of ``{p}.requests``;
* ``group:<name>`` — a model group: its models score every request in micro-batches, and its
  online learners learn from ``{p}.examples``;
(the ``quality`` worker is a plain asyncio service: :mod:`agents.quality`).
"""

from __future__ import annotations

import gc
import logging

from faust import tables as faust_tables

from agents.worker import Worker
from pipelines.spec import PipelineSpec
from streams.kafka.settings import Settings
from streams.kafka.topics import PipelineTopics
from streams.kafka.transport import StreamApp

__all__ = ["TableManager", "create_app", "tune_gc"]


def tune_gc() -> None:
    """Call once everything long-lived is loaded (libraries, models, the app): the collector
    stops scanning it, and collects young objects less often.

    Measured (issue 6, Kafka, 500 requests/s): without this, full collections paused the core
    for up to 224 ms and a model group for up to 102 ms — they traversed every object of
    pandas, scikit-learn, Great Expectations and Faust each time — and made the p99.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


class TableManager(faust_tables.TableManager):
    """Faust's, without its fixed 1 s pause at start (kept for tables declared after the app
    starts; ours are all declared in :func:`create_app`): every worker start and restart — a
    crashed core's too — answered a second later for it."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


def create_app(spec: PipelineSpec, settings: Settings, role: str = "core", **conf) -> StreamApp:
    """A configured Faust app for ``role`` with its agents registered."""
    web = role == "core"
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    topics = PipelineTopics(spec.name)
    app = StreamApp(
        topics.app_id(role),
        broker=f"kafka://{settings.bootstrap}",
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        fetch_min_bytes=settings.fetch_min_bytes,
        idempotence=settings.producer_idempotence,
        store="memory://",
        autodiscover=False,
        topic_partitions=spec.partitions,
        topic_replication_factor=1,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=0.5,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_credentials=settings.faust_credentials(),  # SASL / TLS from RDV_SECURITY_PROTOCOL & co.
        producer_linger_ms=settings.linger_ms,
        stream_wait_empty=False,
        web_enabled=web,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        # Faust's built-in views serve table contents and cluster topology to anyone who can
        # reach the port: off unless RDV_FAUST_VIEWS=1
        web_tables_enabled=settings.faust_views,
        web_router_enabled=settings.faust_views,
        web_graph_enabled=settings.faust_views,
        web_stats_enabled=settings.faust_views,
        datadir=str(settings.data_dir / "faust" / "{conf.id}"),
        TableManager=TableManager,
        # Tables keep Faust's standby copies; the core acts only on the partitions it holds
        # (Rendezvous.holds), never on a standby copy in the same in-memory store.
        **conf,
    )
    # each role imports only its own agents: a model group never loads the archive's pandas and pyarrow
    if role == "core":
        from agents import decoy, feedback, rendezvous
        from streams import web as web_views
        from streams.metrics import PipelineMetrics

        w = Worker(app, spec, settings, metrics=PipelineMetrics(spec.name))
        replies = web_views.ReplyBoard()
        archive = decoy.register(w)
        server, registry = rendezvous.register(w, archive, on_result=replies.resolve)
        feedback.register(w, server, registry)
        web_views.register(w, server, replies, registry)
    elif role.startswith("group:"):
        from agents import learner, model_runner

        w = Worker(app, spec, settings)
        group = role.split(":", 1)[1]
        runner, registry = model_runner.register(w, group)
        learner.register(w, group, runner, registry)
        if settings.probe_port:  # /v1/health/live, /ready and /v1/health on a port of its own
            from streams.health import Probes, serve_probes, worker_checks

            probes = Probes(role, not_ready=[*worker_checks(app, registry), runner.unloaded],
                            details=lambda: {"models": [{"id": m.spec.id, "version": m.spec.version}
                                                        for m in runner.models]})

            @app.task
            async def probe_server():
                await serve_probes(probes, settings.web_host, settings.probe_port)
    else:
        raise ValueError(f"unknown role {role!r}: expected 'core' or 'group:<name>' (the quality worker is no Faust app)")
    level = settings.log_level.upper()

    @app.task
    async def _quiet_libraries():
        # Faust's worker sets logging up after this factory ran and leaves aiokafka at DEBUG:
        # its records were ~5% of a busy worker's CPU. Pin the libraries to our level.
        for name in ("aiokafka", "faust", "mode", "kafka"):
            logging.getLogger(name).setLevel(level)

    return app
