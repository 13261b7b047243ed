"""What the agents of one worker share: :class:`Worker`, built once by ``streams/app.py`` and
handed to every role's ``register`` — no attributes hung on the app, and what one agent needs
from another (the decoy's archive, the rendezvous engine, the registry view) is an argument,
so the order of set-up is the order of the data.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from pipelines.registry import ArtifactStore, live_spec
from pipelines.telemetry import Telemetry
from pipelines.spec import PipelineSpec
from streams.kafka.clients import Kafka
from streams.kafka.settings import Settings
from streams.kafka.topics import PipelineTopics
from streams.kafka.transport import StreamApp
from tables.registry import RegistryView

__all__ = ["Worker", "idle_priority"]


def idle_priority(pid: int = 0) -> None:
    """Let process ``pid`` (0: this one) run only on CPU nobody else wants (SCHED_IDLE on Linux; the
    lowest nice elsewhere): the quality worker, and the retrains the core starts."""
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    else:
        os.setpriority(os.PRIO_PROCESS, pid, 19)

log = logging.getLogger(__name__)


@dataclass
class Worker:
    """One worker: its app, the pipeline it serves, its settings and telemetry; from these, its
    topics, its Kafka clients and the artifact store."""

    app: StreamApp
    spec: PipelineSpec
    settings: Settings
    metrics: Telemetry = field(default_factory=Telemetry)  # the core's Prometheus counters; none in a group

    def __post_init__(self) -> None:
        self.topics = PipelineTopics(self.spec.name)
        self.kafka = Kafka(self.settings)
        self.artifacts = ArtifactStore.of(self.settings)

    def raw_topic(self, *names: str):
        """Faust topic(s) of raw bytes: every codec of ours decodes itself (Avro or JSON)."""
        return self.app.topic(*names, key_serializer="raw", value_serializer="raw")

    def follow_registry(self, on_change: Callable[[PipelineSpec], Awaitable[None] | None]) -> RegistryView:
        """Follow ``{p}.control`` for this worker's life: ``on_change(live spec)`` once caught up at
        start, then at every change (a registered, promoted, demoted or retired model)."""

        async def changed(state: dict) -> None:
            result = on_change(live_spec(self.spec, state, self.artifacts))
            if asyncio.iscoroutine(result):
                await result

        view = RegistryView(self.kafka, self.topics.control, on_change=changed)

        @self.app.task
        async def registry():
            await changed(await view.start())  # changes since the worker's spec was read, then every change

        @self.app.on_before_shutdown.connect
        async def _stop_registry(app, **kwargs):
            await view.stop()

        return view
