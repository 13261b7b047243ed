"""Health probes of a worker (issue 21): alive, ready, and healthy or degraded — with reasons.

- ``GET /v1/health/live``: the process answers (a liveness probe restarts it when it does not).
- ``GET /v1/health/ready``: 200 once the worker has joined its consumer group, the registry is
  caught up and every model it should host is loaded and verified; else **503** with the reasons
  (a readiness probe keeps traffic and rollouts waiting).
- ``GET /v1/health``: ``ok`` or **degraded** with what is wrong — a live model that stopped
  scoring while requests arrive, a consumer group with no members, consumer lag over
  ``RDV_HEALTH_LAG_LIMIT``, a worker ``up`` had to restart — plus the details a person wants.

The core serves them on its REST port (``streams/web.py``); a model group serves the same three
on a port of its own (``RDV_PROBE_PORT``; ``up`` gives each group worker a free one, Kubernetes
sets 8081). The verdicts are plain functions of what the worker knows, tested without a broker.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

__all__ = ["Probes", "SUPERVISION", "lag_reasons", "log_dir", "read_supervision", "restart_reasons", "serve_probes",
           "worker_checks"]

Reasons = Callable[[], list[str]]
SUPERVISION = "supervisor.json"  # in the log directory: what `up` restarted (streams/stack.py)


def log_dir(settings, pipeline: str) -> Path:
    """Where `up` keeps a pipeline's worker logs and ``supervisor.json`` (the core reads it there)."""
    return Path(settings.data_dir) / pipeline / "logs"


def read_supervision(log_dir: Path) -> dict:
    """What the supervisor of ``up`` wrote: ``{role: {pid, restarts, last_exit, cause, at}}``; {} without one."""
    try:
        return json.loads((Path(log_dir) / SUPERVISION).read_text())
    except (FileNotFoundError, ValueError):
        return {}


@dataclass
class Probes:
    """One worker's answers. ``not_ready`` and ``degraded`` are lists of callables, each returning
    the reasons it finds (empty: nothing wrong); ``details`` adds to the health body."""

    role: str
    not_ready: list[Reasons] = field(default_factory=list)
    degraded: list[Reasons] = field(default_factory=list)
    details: Callable[[], dict] = dict
    started_at: float = field(default_factory=time.time)

    def live(self) -> tuple[int, dict]:
        return 200, {"status": "alive", "role": self.role, "up_s": round(time.time() - self.started_at, 1)}

    def ready(self) -> tuple[int, dict]:
        reasons = [r for check in self.not_ready for r in check()]
        return (503, {"status": "not ready", "role": self.role, "reasons": reasons}) if reasons else \
            (200, {"status": "ready", "role": self.role})

    def health(self) -> tuple[int, dict]:
        """Always 200 (the body says ``degraded``): a degraded worker still answers, and a probe
        must not restart it for what another worker lacks."""
        reasons = [r for check in self.not_ready for r in check()]
        status = "not ready" if reasons else "ok"
        found = [r for check in self.degraded for r in check()]
        if found and status == "ok":
            status = "degraded"
        return 200, {"status": status, "role": self.role, "reasons": reasons + found, **self.details()}


def worker_checks(app, registry) -> list[Reasons]:
    """Readiness of any worker: it has joined its consumer group (an assignment came, maybe of no
    partition: a replica beyond the partition count still joined) and the registry is caught up."""
    joined = []

    @app.on_partitions_assigned.connect
    async def _joined(app, assigned, **kwargs):
        joined.append(True)

    return [lambda: [] if joined else ["has not joined its consumer group yet"],
            lambda: [] if registry.caught_up else ["the registry ({p}.control) is not read up to its end yet"]]


def lag_reasons(lag: dict[tuple[str, str], int], empty: set[str], limit: int, groups: list[str]) -> list[str]:
    """Consumer groups of ``groups`` without members (``empty``: for two measurements in a row),
    and lag over ``limit``.

    >>> lag_reasons({("g1", "t"): 5000, ("g2", "t"): 3}, {"g2", "old"}, 1000, ["g1", "g2"])
    ['consumer group g2 has no members', 'consumer group g1 is 5000 messages behind on t (limit 1000)']
    """
    out = [f"consumer group {g} has no members" for g in groups if g in empty]
    out += [f"consumer group {g} is {n} messages behind on {t} (limit {limit})"
            for (g, t), n in sorted(lag.items()) if n > limit]
    return out


def restart_reasons(supervision: dict, now: float, recent_s: float = 600.0) -> list[str]:
    """Workers ``up`` restarted in the last ``recent_s``.

    >>> restart_reasons({"group:a": {"restarts": 2, "cause": "exit code -9 (SIGKILL)", "at": 90.0}}, 100.0)
    ['worker group:a restarted 2 times (last: exit code -9 (SIGKILL), 10 s ago)']
    """
    return [f"worker {role} restarted {e['restarts']} times (last: {e.get('cause')}, {now - e['at']:.0f} s ago)"
            for role, e in sorted(supervision.items())
            if isinstance(e, dict) and e.get("restarts") and now - e.get("at", 0) < recent_s]


async def serve_probes(probes: Probes, host: str, port: int) -> None:
    """The three probes alone on ``host:port`` (a model group's), in the worker's event loop."""
    from aiohttp import web

    from streams.metrics import serve_routes

    def view(answer):
        async def handle(request):
            status, body = answer()
            return web.json_response(body, status=status)
        return handle

    await serve_routes({"/v1/health/live": view(probes.live), "/v1/health/ready": view(probes.ready),
                        "/v1/health": view(probes.health)}, host, port)
