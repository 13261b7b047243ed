"""REST: ``POST /v1/{pipeline}/predict`` answers within the deadline; ``GET /v1/health``;
``GET /v1/{pipeline}/models`` (every model's score state); ``GET /metrics`` (Prometheus);
``GET /openapi.json``. With tokens configured (streams/auth.py) every ``/v1/`` call needs one.

The view sends the request to ``{p}.requests`` like any producer and waits on a future that
the rendezvous resolves when it publishes the Result (same worker: the core app owns the
request's partition when one core worker runs; see README "Scaling out").
"""

from __future__ import annotations

import asyncio
import logging
import json
import time
import uuid

from faust.web import Request, Response, View

from agents.worker import Worker
from pipelines.rendezvous import Rendezvous
from pipelines.spec import PipelineSpec
from schemas.codec import MAX_BYTES, DecodeError, codec_for
from streams.auth import Tokens
from streams.health import Probes, lag_reasons, log_dir, read_supervision, restart_reasons, worker_checks
from streams.metrics import CONTENT_TYPE_LATEST, LagMonitor, serve_metrics, state_gauges
from streams.openapi import openapi, unanswerable

__all__ = ["ReplyBoard", "register"]

log = logging.getLogger(__name__)
_MARGIN_S = 0.25
_STATUS = {"ok": 200, "timeout": 504, "error": 502}


class ReplyBoard:
    """Futures of REST callers waiting for their request's Result."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future] = {}

    def expect(self, request_id: str) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        return future

    def waiting(self, request_id: str) -> bool:
        return request_id in self._waiting

    def forget(self, request_id: str) -> None:
        self._waiting.pop(request_id, None)

    def resolve(self, record: dict) -> None:
        future = self._waiting.pop(record["request_id"], None)
        if future is not None and not future.done():
            future.set_result(record)


def register(w: Worker, server: Rendezvous, replies: ReplyBoard, registry=None) -> None:
    """The views of the core worker; ``server``: its rendezvous engine (mailboxes, score state);
    ``registry``: its view of ``{p}.control`` (readiness waits until it is caught up)."""
    app, spec, settings, topics = w.app, w.spec, w.settings, w.topics
    requests = w.raw_topic(topics.requests)
    codec = codec_for("Request")
    tokens = Tokens.from_settings(settings)
    if tokens is None:
        log.info("REST API open to every caller: no tokens configured (RDV_TOKENS / RDV_TOKENS_FILE)")

    def live() -> PipelineSpec:
        return server.spec

    def authorize(view: View, request: Request, pipeline: bool = True) -> tuple[str | None, Response | None]:
        """(the caller's tenant, or the refusal to return). Open API: (None, None)."""
        if tokens is None:
            return None, None
        tenant = tokens.tenant_of(request.headers.get("Authorization"))
        if tenant is None:
            return None, view.json({"error": "missing or unknown bearer token: send 'Authorization: Bearer <token>' "
                                             "(`rendezvous token --tenant NAME` makes one)"}, status=401,
                                   headers={"WWW-Authenticate": "Bearer"})
        allowed = live().tenants
        if pipeline and allowed is not None and tenant not in allowed:
            return None, view.json({"error": f"tenant {tenant!r} may not use pipeline {spec.name!r}"}, status=403)
        return tenant, None

    lag = LagMonitor(w.kafka, {
        topics.app_id("core"): [topics.requests, topics.scores, topics.feedback],
        **{topics.app_id(f"group:{g}"): [topics.requests, topics.examples] for g in spec.groups},
    })

    logs = log_dir(settings, spec.name)  # `up`'s supervisor.json: the restarts health and /metrics show

    def groups() -> list[str]:
        return [topics.app_id("core")] + [topics.app_id(f"group:{g}") for g in server.spec.groups]

    probes = Probes("core", not_ready=worker_checks(app, registry) if registry is not None else [], degraded=[
        lambda: [f"model {m} has not scored for {s:.0f} s while requests arrived"
                 for m, s in server.silent(settings.health_silent_s).items()],
        lambda: [f"model {m} is down: {server.fallback.reasons.get(m) or 'missed its deadlines'}"
                 for m in sorted(server.fallback.down)],
        lambda: lag_reasons(lag.lag, lag.empty, settings.health_lag_limit, groups()),
        lambda: restart_reasons(read_supervision(logs), time.time()),
    ], details=lambda: {
        "pipeline": spec.name, "ranking": list(server.spec.ranking), "policy": server.spec.policy.name,
        "models": [{"id": m.id, "version": m.version, "role": m.role, "group": m.group} for m in server.spec.models],
        "stats": dict(server.stats),
        "late_scores": dict(server.late),
        "models_down": sorted(server.fallback.down),
        "set_aside": server.fallback.reasons,
        "consumer_groups": {g: {"members": lag.members.get(g)} for g in groups()},
        "workers": read_supervision(logs),
    })

    @app.page("/v1/health")
    class Health(View):
        """ok, degraded or not ready, with the reasons and the details (a token when tokens are set)."""

        async def get(self, request: Request) -> Response:
            _, refused = authorize(self, request, pipeline=False)
            if refused:
                return refused
            status, body = probes.health()
            return self.json(body, status=status)

    @app.page("/v1/health/live")
    class Live(View):
        """The process answers (open: a liveness probe carries no token)."""

        async def get(self, request: Request) -> Response:
            status, body = probes.live()
            return self.json(body, status=status)

    @app.page("/v1/health/ready")
    class Ready(View):
        """200 once joined, caught up and serving; 503 with the reasons before (open, like live)."""

        async def get(self, request: Request) -> Response:
            status, body = probes.ready()
            return self.json(body, status=status)

    @app.page("/v1/{pipeline}/models")
    class Models(View):
        """Every model's score state (feedback accuracy, latency, agreement) and why any is set aside."""

        async def get(self, request: Request, pipeline: str) -> Response:
            _, refused = authorize(self, request)
            if refused:
                return refused
            if pipeline != spec.name:
                return self.json({"error": f"unknown pipeline {pipeline!r}; this server runs {spec.name!r}"}, status=404)
            summary = server.book.summary()
            pulls = getattr(server.policy, "pulls", dict)()
            return self.json({"pipeline": spec.name, "policy": server.spec.policy.name, "ranking": list(server.policy.ranking),
                              "models": [{"id": m.id, "version": m.version, "role": m.role,
                                          "set_aside": server.fallback.reasons.get(m.id) or None,
                                          "bandit_pulls": pulls.get(m.id), **summary.get(m.id, {})}
                                         for m in server.spec.models]})

    quality_dir = settings.data_dir / spec.name / "quality"
    metrics = w.metrics
    metrics.state = lambda: state_gauges(server, lag, quality_dir, read_supervision(logs))
    store = settings.open_store()

    if store.remote:  # the quality worker may run elsewhere: its windows come through the store
        @app.timer(30.0, name=f"{spec.name}-quality-windows")
        async def fetch_windows():
            await asyncio.to_thread(store.read_text, f"{spec.name}/quality/windows.jsonl")

    @app.task
    async def measure_lag():
        await lag.run()

    if settings.metrics_port:  # its own port, e.g. reachable by Prometheus only
        @app.task
        async def metrics_server():
            await serve_metrics(metrics, settings.web_host, settings.metrics_port)
    else:
        @app.page("/metrics")
        class Metrics(View):
            """Prometheus text format: requests, results, latencies, models, lag, data quality."""

            async def get(self, request: Request) -> Response:
                body = await asyncio.to_thread(metrics.render)
                return self.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/openapi.json")
    class OpenAPI(View):
        async def get(self, request: Request) -> Response:
            return self.json(openapi(live(), bearer=tokens is not None))

    @app.page("/v1/{pipeline}/predict")
    class Predict(View):
        async def post(self, request: Request, pipeline: str) -> Response:
            tenant, refused = authorize(self, request)
            if refused:
                return refused
            if pipeline != spec.name:
                return self.json({"error": f"unknown pipeline {pipeline!r}; this server runs {spec.name!r}"},
                                 status=404)
            body = await self.read_request_content(request)
            if len(body) > MAX_BYTES["Request"]:
                return self.json({"error": f"body of {len(body):,} bytes is larger than the {MAX_BYTES['Request']:,} "
                                           f"bytes a request may have: send features, not documents"}, status=413)
            try:
                record = _request_from_body(body, codec)
            except DecodeError as exc:
                return self.json({"error": exc.reason}, status=400)
            if tenant is not None:  # the token says who calls
                if record.get("tenant") not in (None, tenant):
                    return self.json({"error": f"field 'tenant' is {record['tenant']!r} but the token belongs to "
                                               f"tenant {tenant!r}"}, status=403)
                record["tenant"] = tenant
            problem = unanswerable(record["features"], live())
            if problem:
                return self.json({"error": problem}, status=422)
            rid = record["request_id"]
            if replies.waiting(rid) or server.mailboxes.get(rid) is not None or rid in server.answered:
                return self.json({"error": f"request_id {rid!r} was already used: a request is answered once. "
                                           f"Leave request_id out and the server makes a fresh one."}, status=409)
            future = replies.expect(rid)
            deadline_s = (record["deadline_ms"] or spec.deadline_ms) / 1000.0
            await requests.send(key=rid.encode(), value=codec.encode(record))
            try:
                result = await asyncio.wait_for(future, deadline_s + _MARGIN_S)
            except asyncio.TimeoutError:
                replies.forget(rid)
                return self.json({"error": f"no result within the deadline of {deadline_s * 1000:.0f} ms "
                                           f"(plus {_MARGIN_S * 1000:.0f} ms margin)", "request_id": rid}, status=504)
            return self.json(result, status=_STATUS.get(result["status"], 500))


def _request_from_body(body: bytes, codec) -> dict:
    try:
        data = json.loads(body or b"null")
    except ValueError as exc:
        raise DecodeError(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DecodeError('body must be a JSON object like {"features": {...}, "deadline_ms": 100}')
    data.setdefault("request_id", uuid.uuid4().hex)
    data.setdefault("sent_at", int(time.time() * 1000))
    return codec.decode(json.dumps(data).encode())
