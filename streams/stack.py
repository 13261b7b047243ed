"""Everything a deployment spec needs, as child processes: broker (unless given), topics, workers.

Used by ``rendezvous up``, ``rendezvous demo``, the integration tests and the benchmarks.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from pipelines.spec import PipelineSpec
from streams.health import SUPERVISION, log_dir as default_log_dir
from streams.kafka.broker import KafkaBroker, free_port, port_or_free
from streams.kafka.settings import Settings
from streams.kafka.topics import delete_pipeline, ensure_topics
from pipelines.jobs.lifecycle import ensure_profile, live_pipeline

__all__ = ["EMBEDDED_PORT", "GaveUp", "Restarts", "Stack"]

EMBEDDED_PORT = 9092  # the embedded broker's port when free (Kafka's own default), else any free one


class GaveUp(RuntimeError):
    """A worker crashed too often; the message names it, its exit codes and its last log lines."""


@dataclass
class Restarts:
    """When `up` restarts a worker that exited, and when it gives up.

    The n-th crash of a role within ``window_s`` waits ``base_s * 2**(n-1)`` (at most ``max_s``)
    before the restart; crash number ``limit + 1`` within the window gives up.

    >>> r = Restarts(limit=3, window_s=60)
    >>> [r.crashed("group:x", t) for t in (0, 1, 2, 3)]
    [1.0, 2.0, 4.0, None]
    >>> r.crashed("group:x", 100)  # the window moved on: the old crashes are forgiven
    1.0
    """

    base_s: float = 1.0
    max_s: float = 30.0
    limit: int = 5
    window_s: float = 300.0
    crashes: dict[str, list[float]] = field(default_factory=dict)

    def crashed(self, role: str, at: float) -> float | None:
        """The delay before restarting ``role`` after a crash at ``at``; None: give up."""
        recent = [t for t in self.crashes.get(role, []) if at - t < self.window_s] + [at]
        self.crashes[role] = recent
        if len(recent) > self.limit:
            return None
        return min(self.max_s, self.base_s * 2 ** (len(recent) - 1))


class Stack:
    """Broker + core worker + one worker per model group; ``start()`` / ``stop()``."""

    def __init__(self, spec: PipelineSpec, settings: Settings, log_dir: Path | None = None, fresh: bool = False) -> None:
        """``fresh``: delete whatever the broker holds of the pipeline first (its topics, hence its
        registry, mailboxes and offsets) — the demo does, on the embedded broker."""
        self.spec = spec
        self.fresh = fresh
        self.live: PipelineSpec | None = None  # the registry's view once started
        self.broker: KafkaBroker | None = None
        if not settings.broker:  # the embedded broker: its log in the data directory, kept across runs
            home = settings.data_dir / "broker"
            self.broker = KafkaBroker(port_or_free(EMBEDDED_PORT), data_dir=home, log_path=home / "broker.log")
            settings = replace(settings, broker=self.broker.url)
        self.settings = settings
        self.log_dir = Path(log_dir or default_log_dir(settings, spec.name))
        self.workers: dict[str, subprocess.Popen] = {}
        self.hosts: dict[str, Path] = {}  # role -> its own data directory (another "host": shares only Kafka and the store)
        self.restarts = Restarts(limit=settings.restart_limit, window_s=settings.restart_window_s)
        self.supervision: dict[str, dict] = {}
        self._due: dict[str, float] = {}  # role -> when it is restarted

    @property
    def roles(self) -> list[str]:
        """core, every model group, and the quality monitor once the pipeline has a reference profile."""
        groups = dict.fromkeys([*self.spec.groups, *(self.live.groups if self.live else ())])
        profiled = self.settings.open_store().read_text(f"{self.spec.name}/profiles/current") is not None
        return ["core"] + [f"group:{g}" for g in groups] + (["quality"] if profiled else [])

    def start(self) -> "Stack":
        """Broker, topics, registry, workers; whatever started is stopped again if a step fails (the
        broker runs in a session of its own: a failed start must not leave it holding its log)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            ensure_profile(self.spec, self.settings)  # quality asked for: its worker must start
            if self.broker is not None:
                self.broker.start()
            if self.fresh:
                asyncio.run(delete_pipeline(self.settings, self.spec.name))
            asyncio.run(ensure_topics(self.settings, self.spec.name, self.spec.partitions))
            # seed the registry once here, so the workers do not all race to do it
            self.live = asyncio.run(live_pipeline(self.spec, self.settings, self.settings.data_dir))
            for role in self.roles:
                self.start_worker(role)
        except BaseException:
            self.stop()
            raise
        return self

    def start_worker(self, role: str) -> subprocess.Popen:
        """Start ``role`` (``core``, ``group:NAME``, ``quality``). ``ROLE#N`` starts one more worker of
        that role (scaling out: it joins the role's consumer group and Kafka shares the partitions),
        with its own web port."""
        # every setting reaches the worker, also ones set in code rather than in the environment
        env = {**os.environ, **{f"RDV_{name.upper()}": str(value)
                                for name, value in asdict(self.settings).items() if value is not None}}
        if "#" in role:
            env.update(RDV_WEB_PORT=str(free_port()), RDV_METRICS_PORT="0")
        if role.startswith("group:"):  # its probes (/v1/health/…) on a port of its own
            env.update(RDV_PROBE_PORT=str(free_port()))
        if role in self.hosts:
            env.update(RDV_DATA_DIR=str(self.hosts[role]))
        command = [sys.executable, "-m", "streams.cli", "worker", str(self.spec.source), "--role", role.split("#")[0]]
        with open(self.log_dir / f"{role.replace(':', '-')}.log", "ab") as log:
            self.workers[role] = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                  stdin=subprocess.DEVNULL, start_new_session=True)
        port = env.get("RDV_PROBE_PORT") if role.startswith("group:") else env.get("RDV_WEB_PORT")
        self.supervision.setdefault(role, {"restarts": 0}).update(pid=self.workers[role].pid, port=int(port or 0))
        self._write_supervision()
        return self.workers[role]

    def supervise(self, say: Callable[[str], None] = print, now: float | None = None) -> None:
        """One round of supervision (``up`` calls it twice a second): a worker that exited is
        restarted after its backoff, with its cause said and recorded; too many crashes of one
        role within the window raise :class:`GaveUp`."""
        now = time.time() if now is None else now
        for role, process in list(self.workers.items()):
            code = process.poll()
            if code is None or role in self._due:
                continue
            cause = f"exit code {code}" + (f" ({signal.Signals(-code).name})" if code < 0 else "")
            tail = "\n".join(self.log_tail(role, 4000).splitlines()[-8:])
            entry = self.supervision.setdefault(role, {"restarts": 0})
            entry.update(last_exit=code, cause=cause, at=now, pid=None)
            delay = self.restarts.crashed(role, now)
            if delay is None:
                self._write_supervision(gave_up=role)
                raise GaveUp(f"worker {role} crashed {len(self.restarts.crashes[role])} times within "
                             f"{self.restarts.window_s:g} s (last: {cause}); giving up. Its log "
                             f"({self.log_dir}) ends with:\n{tail}")
            self._due[role] = now + delay
            self._write_supervision()
            say(f"worker {role} exited ({cause}); restarting it in {delay:g} s. Its log ends with:\n{tail}")
        for role, due in list(self._due.items()):
            if now >= due:
                del self._due[role]
                self.workers.pop(role, None)
                self.supervision[role]["restarts"] += 1
                self.start_worker(role)
                self._write_supervision()
                say(f"worker {role} restarted (restart {self.supervision[role]['restarts']})")

    def _write_supervision(self, gave_up: str | None = None) -> None:
        path = self.log_dir / SUPERVISION
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**self.supervision, **({"gave_up": gave_up} if gave_up else {})}))
        tmp.replace(path)

    def stop_worker(self, role: str, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        process = self.workers.pop(role)
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def failed(self) -> dict[str, int]:
        """Workers that exited on their own, with their exit codes."""
        return {role: p.returncode for role, p in self.workers.items() if p.poll() is not None}

    def log_tail(self, role: str, chars: int = 3000) -> str:
        path = self.log_dir / f"{role.replace(':', '-')}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def check_alive(self) -> None:
        """Raise with the log's tail if a worker exited on its own."""
        for role, code in self.failed().items():
            raise RuntimeError(f"worker {role} exited with code {code}; its log ends with:\n{self.log_tail(role)}")

    async def wait_ready(self, client, timeout_s: float = 90.0) -> None:
        """Probe through ``client`` until every hosted model answered; on failure, show the logs."""
        spec = self.live or self.spec
        features = {name: 0.0 for model in spec.models for name in model.features} or {"probe": 0.0}
        models = [m.id for m in spec.models if m.flavour != "external"]
        try:
            await client.wait_ready(features, timeout_s, models, alive=self.check_alive)
        except TimeoutError as exc:
            logs = "\n".join(f"--- {role} ---\n{self.log_tail(role)}" for role in self.roles)
            raise TimeoutError(f"{exc}\nworker logs:\n{logs}") from None

    def stop(self) -> None:
        for role in list(self.workers):
            self.workers[role].send_signal(signal.SIGTERM)
        for role in list(self.workers):
            self.stop_worker(role)
        if self.broker is not None:
            self.broker.stop()

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
