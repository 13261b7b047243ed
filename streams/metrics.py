"""Prometheus metrics of a pipeline, served at ``GET /metrics`` by the core worker.

Namespaced ``rendezvous_``; labels are bounded (pipeline, model, version, role, status,
stage, kind, group, topic — never a request id). Counters and histograms are updated on the
hot path through cached label children (one dict lookup and one lock each); everything that
is a *state* — recent accuracy, agreement with the canary, models set aside, consumer lag,
the last data-quality window — is read when Prometheus scrapes, so it costs nothing between
scrapes. The core sees every Score (with the model's own ``latency_ms``), so one endpoint
covers the models of every group, in any language.

``rendezvous_consumer_lag`` is measured the Kafka way (as kafka-exporter and Burrow do):
each consumer group's committed offset against the partition's end offset, for the core
and every model group of the pipeline, every ``LAG_INTERVAL_S``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from pipelines.telemetry import Telemetry
from streams.kafka.clients import Kafka, kafka_of

__all__ = ["CONTENT_TYPE_LATEST", "PipelineMetrics", "LagMonitor", "serve_metrics"]

log = logging.getLogger(__name__)

NS = "rendezvous"
LAG_INTERVAL_S = 5.0
# seconds: a model answers in ~0.1-50 ms; a Result within the deadline (100 ms by default) or at it
SCORE_BUCKETS = (.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0)
RESULT_BUCKETS = (.001, .0025, .005, .01, .015, .02, .03, .05, .075, .1, .15, .25, .5, 1.0, 2.5)
# seconds past a request's deadline at which it was decided (the goal: 5 ms at the p99)
OVERSHOOT_BUCKETS = (.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1.0)


class PipelineMetrics(Telemetry):
    """The metrics of one pipeline in one process (its own registry: tests make many); the
    engine's :class:`~pipelines.rendezvous.Telemetry`, in Prometheus counters."""

    def __init__(self, pipeline: str, registry: CollectorRegistry | None = None) -> None:
        self.pipeline = pipeline
        self.registry = registry or CollectorRegistry()
        r, p = self.registry, ["pipeline"]
        self._requests = Counter("requests", "Requests received by the rendezvous (duplicates excluded)", p,
                                 namespace=NS, registry=r).labels(pipeline)
        self._duplicates = Counter("duplicate_requests", "Requests seen again (redelivery) and not answered twice", p,
                                   namespace=NS, registry=r).labels(pipeline)
        self._results = Counter("results", "Results published, by status (ok, timeout, error)", p + ["status"],
                                namespace=NS, registry=r)
        self._answers = Counter("answers", "Results whose answer came from this model", p + ["model", "version", "role"],
                                namespace=NS, registry=r)
        self._result_latency = Histogram(
            "result_latency_seconds", "Request opened at the rendezvous -> Result published", p + ["status"],
            namespace=NS, registry=r, buckets=RESULT_BUCKETS)
        self._scores = Histogram("score_latency_seconds", "A model's scoring time for the micro-batch of this Score",
                                 p + ["model", "version", "status"], namespace=NS, registry=r, buckets=SCORE_BUCKETS)
        self._late = Counter("late_scores", "Scores that arrived after their request was answered", p + ["model"],
                             namespace=NS, registry=r)
        self._missed = Counter("deadline_misses", "Models still missing when a request's deadline passed",
                               p + ["model"], namespace=NS, registry=r)
        self._fallbacks = Counter("fallbacks", "Fallback switches: a model set aside (kind=fallback) or back in service (kind=recovered)",
                                  p + ["model", "kind"], namespace=NS, registry=r)
        self._alerts = Counter("alerts", "Alerts published on {p}.alerts, by kind", p + ["kind"],
                               namespace=NS, registry=r)
        self._dlq = Counter("dlq_records", "Events sent to the dead-letter topic, by stage", p + ["stage"],
                            namespace=NS, registry=r)
        self._overshoot = Histogram(
            "deadline_overshoot_seconds", "A request decided at its deadline: how long after the deadline", p,
            namespace=NS, registry=r, buckets=OVERSHOOT_BUCKETS).labels(pipeline)
        self._feedback = Counter("feedback", "Labels received, by outcome (joined or refused)", p + ["outcome"],
                                 namespace=NS, registry=r)
        self._children: dict[tuple, object] = {}
        self.state: Callable[[], Iterable[GaugeMetricFamily]] | None = None

        metrics = self

        class _State:  # gauges computed at scrape time
            def collect(self):
                return list(metrics.state()) if metrics.state else []

            def describe(self):
                return []

        self.registry.register(_State())

    def _child(self, metric, *labels):
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(self.pipeline, *labels)
        return child

    # -- the hot path ------------------------------------------------------------------------
    def request(self, duplicate: bool = False) -> None:
        (self._duplicates if duplicate else self._requests).inc()

    def scored(self, score: dict, late: bool) -> None:
        latency = score.get("latency_ms")
        if latency is not None:
            self._child(self._scores, score["model_id"], score.get("model_version") or "", score["status"]).observe(
                latency / 1000.0)
        if late:
            self._child(self._late, score["model_id"]).inc()

    def result(self, record: dict, role: str | None = None) -> None:
        status = record["status"]
        self._child(self._results, status).inc()
        self._child(self._result_latency, status).observe(record["latency_ms"] / 1000.0)
        if record.get("model_id"):
            self._child(self._answers, record["model_id"], record.get("model_version") or "", role or "").inc()

    def missed(self, models: Iterable[str]) -> None:
        for model in models:
            self._child(self._missed, model).inc()

    def alert(self, alert: dict) -> None:
        kind = alert.get("kind", "")
        self._child(self._alerts, kind).inc()
        if kind in ("fallback", "recovered") and alert.get("model_id"):
            self._child(self._fallbacks, alert["model_id"], kind).inc()

    def dead_letter(self, stage: str) -> None:
        self._child(self._dlq, stage).inc()

    def feedback(self, outcome: str) -> None:
        self._child(self._feedback, outcome).inc()

    def overshoot(self, seconds: float) -> None:
        self._overshoot.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def gauge(name: str, doc: str, labels: list[str], rows: Iterable[tuple[list[str], float | None]]) -> GaugeMetricFamily:
    """A gauge family from ``(label values, value)`` rows; ``None`` values are left out."""
    family = GaugeMetricFamily(f"{NS}_{name}", doc, labels=labels)
    for values, value in rows:
        if value is not None:
            family.add_metric(values, float(value))
    return family


def _members(responses) -> dict[str, int]:
    """group id -> members, from DescribeGroups responses (fields: error, group, state, protocol type,
    protocol, members …; a group that does not exist yet is "Dead" with none)."""
    out = {}
    for response in responses:
        for entry in response.groups:
            out[entry[1]] = len(entry[5])
    return out


class LagMonitor:
    """Committed offset vs end offset of every consumer group of the pipeline, every few seconds."""

    def __init__(self, kafka: "Kafka | str", groups: dict[str, list[str]], interval_s: float = LAG_INTERVAL_S) -> None:
        self.kafka = kafka_of(kafka)
        self.groups = groups  # consumer group id -> the topics it consumes
        self.interval_s = interval_s
        self.lag: dict[tuple[str, str], int] = {}  # (group, topic) -> messages behind, summed over partitions
        self.members: dict[str, int] = {}  # group -> its members now (0: nobody consumes for it)
        self.empty: set[str] = set()  # groups without members in the last two measurements
        self.measured_at: float | None = None

    async def run(self) -> None:
        from aiokafka import TopicPartition

        admin = self.kafka.admin()
        ends = self.kafka.consumer(enable_auto_commit=False)
        await admin.start()
        await ends.start()
        partitions: dict[str, list[int]] = {}
        try:
            while True:
                try:
                    lag = {}
                    for group, topics in self.groups.items():
                        missing = [t for t in topics if t not in partitions]
                        if missing:
                            for d in await admin.describe_topics(missing):
                                if not d.get("error_code") and d["partitions"]:
                                    partitions[d["topic"]] = sorted(p["partition"] for p in d["partitions"])
                        wanted = [TopicPartition(t, p) for t in topics for p in partitions.get(t, ())]
                        if not wanted:
                            continue
                        committed = await admin.list_consumer_group_offsets(group, partitions=wanted)
                        end = await ends.end_offsets(wanted)
                        for tp in wanted:
                            meta = committed.get(tp)
                            done = meta.offset if meta is not None and meta.offset >= 0 else 0
                            lag[(group, tp.topic)] = lag.get((group, tp.topic), 0) + max(0, end[tp] - done)
                    self.lag, self.measured_at = lag, time.time()
                    members = {}
                    for group in self.groups:  # one per request: aiokafka misreads a response for several
                        members.update(_members(await admin.describe_consumer_groups([group])))
                    # empty in two measurements in a row: a group that is joining, or rebalancing, is not "gone"
                    self.empty = {g for g, n in members.items() if n == 0 and self.members.get(g) == 0}
                    self.members = members
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a broker hiccup: keep the last figures, try again
                    log.debug("consumer lag not measured: %s", exc)
                await asyncio.sleep(self.interval_s)
        finally:
            await ends.stop()
            await admin.close()

    def gauges(self, pipeline: str) -> Iterable[GaugeMetricFamily]:
        yield gauge("consumer_group_members", "Members of the consumer group (a model group's replicas)",
                    ["pipeline", "group"], (([pipeline, g], n) for g, n in self.members.items()))
        yield gauge("consumer_lag", "Messages not yet committed by the consumer group (end offset - committed)",
                     ["pipeline", "group", "topic"], (([pipeline, g, t], v) for (g, t), v in self.lag.items()))


def state_gauges(server, lag: LagMonitor | None, quality_dir, supervision: dict | None = None) -> Iterable[GaugeMetricFamily]:
    """The gauges of a rendezvous server at scrape time: models, their recent figures, lag, data
    quality, and the restarts of ``up``'s workers (``supervision``: streams.health.read_supervision)."""
    from tables.quality import last_window

    pipeline = server.spec.name
    summary = server.book.summary()
    models = server.spec.models
    yield gauge("model_info", "Models of the live spec (value 1), with version and role", ["pipeline", "model", "version", "role"],
                (([pipeline, m.id, m.version, m.role], 1) for m in models))
    metric = "accuracy" if server.spec.task == "classification" else "mae"
    yield gauge(f"model_{metric}", f"A model's rolling {metric} on feedback (window: fallback.window labels)",
                ["pipeline", "model"], (([pipeline, m], s.get(metric)) for m, s in summary.items()))
    yield gauge("canary_agreement", "Share of a model's scores equal to the canary's on the same request",
                ["pipeline", "model"], (([pipeline, m], s.get("agreement_canary")) for m, s in summary.items()))
    yield gauge("mailboxes", "Mailboxes in memory (open and closed; closed ones are kept feedback_ttl_s)", ["pipeline"],
                [([pipeline], len(server.mailboxes.data))])
    yield gauge("model_set_aside", "1 while the fallback rule keeps a model out of the answers", ["pipeline", "model"],
                (([pipeline, m.id], 1 if m.id in server.fallback.set_aside else 0) for m in models))
    if lag is not None:
        yield from lag.gauges(pipeline)
    if supervision:
        yield gauge("worker_restarts", "Times `up` restarted a worker of this role after it exited", ["pipeline", "role"],
                    (([pipeline, role], e.get("restarts", 0)) for role, e in supervision.items() if isinstance(e, dict)))
    window = last_window(quality_dir)
    if window:
        drift = window.get("drift_scores") or {}
        drifted = set(window.get("drifted") or ())
        yield gauge("quality_window_end_seconds", "End of the last validated window (epoch seconds)", ["pipeline"],
                    [([pipeline], window["window_end"] / 1000.0)])
        yield gauge("quality_window_rows", "Requests in the last validated window", ["pipeline"], [([pipeline], window["rows"])])
        yield gauge("quality_expectations_failed", "Great Expectations that failed on the last window", ["pipeline"],
                    [([pipeline], len(window.get("failed") or ()))])
        yield gauge("quality_unlike_share", "Share of the last window's requests unlike the training population",
                    ["pipeline"], [([pipeline], window.get("unlike_share"))])
        yield gauge("quality_decay", "1 if the last window's verdict was decay", ["pipeline"],
                    [([pipeline], 1 if window.get("decay") else 0)])
        yield gauge("feature_drifted", "1 if the feature drifted in the last window (see drift_statistic)",
                    ["pipeline", "feature"], (([pipeline, f], 1 if f in drifted else 0) for f in drift))
        yield gauge("feature_drift_statistic", "The deciding drift statistic of the last window (p-value, PSI or JS)",
                    ["pipeline", "feature", "method"],
                    (([pipeline, f, (window.get("drift_methods") or {}).get(f, "")], v) for f, v in drift.items()))


async def serve_metrics(metrics: PipelineMetrics, host: str, port: int) -> None:
    """``GET /metrics`` alone on ``host:port`` (``RDV_METRICS_PORT``), in the worker's event loop."""
    from aiohttp import web

    async def handle(request):
        body = await asyncio.to_thread(metrics.render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    await serve_routes({"/metrics": handle}, host, port)


async def serve_routes(routes: dict, host: str, port: int) -> None:
    """GET ``routes`` (path -> aiohttp handler) on ``host:port`` until the task is cancelled."""
    from aiohttp import web

    server = web.Application()
    for path, handle in routes.items():
        server.router.add_get(path, handle)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        await asyncio.Event().wait()  # until the worker stops and cancels this task
    finally:
        await runner.cleanup()
