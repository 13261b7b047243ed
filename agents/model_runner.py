"""The model runner: hosts the models of one model group and scores every request.

Each model group is its own Faust app and consumer group, so a slow model never delays
another. Requests are scored in micro-batches (one vectorised predict per model per batch);
every (request, model) pair gets one Score with ``latency_ms`` and ``status``. The Scores of
a micro-batch travel as one ScoreBatch message per partition (one Kafka send and one
rendezvous consume instead of one per request and model), written to the requests' own
partition of ``{p}.scores`` so the rendezvous owning them receives them whatever
partitioner the requests' producer used. Bad requests are skipped here (the decoy
reports them to the DLQ); a model error becomes a Score with ``status=error``.

The group follows the registry (``{p}.control``): a model registered or moved into the group
is loaded — verified against its SHA-256 first, off the event loop — and joins the next
micro-batch; a retired one leaves it; a role change takes effect at once. An artifact that
fails verification is refused with an error in the log and the version already loaded keeps
serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Sequence

import faust
from faust.types import EventT

from pipelines.flavours import Model, load_model
from pipelines.flavours.base import score_record
from pipelines.registry import ArtifactStore, live_spec
from pipelines.spec import ModelSpec, PipelineSpec
from schemas.codec import DecodeError, codec_for
from streams.settings import Settings
from streams.topics import PipelineTopics
from tables.registry import RegistryView

__all__ = ["ModelGroup", "register"]

log = logging.getLogger(__name__)


class ModelGroup:
    """Pure scoring of a batch of request events by every model of a group."""

    def __init__(self, models: Sequence[Model], encoding: str = "avro") -> None:
        self.models = list(models)
        self.encoding = encoding
        self._requests = codec_for("Request")
        self._batch = codec_for("ScoreBatch")
        self._updating = asyncio.Lock()

    def score(self, events: Sequence[EventT]) -> dict[int, list[dict]]:
        """partition -> the Scores of every decodable request there, for every model."""
        decoded = []
        for event in events:
            message = event.message
            try:
                decoded.append((self._requests.decode(message.value, message.key), message.partition))
            except DecodeError:
                continue
        out: dict[int, list[dict]] = {}
        if not decoded:
            return out
        rows = [record["features"] for record, _ in decoded]
        for model in self.models:
            started = time.perf_counter()
            try:
                outcomes = model.score_batch(rows)
            except Exception as exc:  # a broken model answers with errors, it does not stop the group
                log.exception("model %s failed on a batch of %d", model.spec.id, len(rows))
                outcomes = [(None, None, f"{type(exc).__name__}: {exc}")] * len(rows)
            latency_ms = (time.perf_counter() - started) * 1000.0
            for (record, partition), outcome in zip(decoded, outcomes):
                out.setdefault(partition, []).append(score_record(model.spec, record["request_id"], outcome, latency_ms))
        return out

    def encode(self, scores: list[dict]) -> bytes:
        return self._batch.encode_as({"scores": scores}, self.encoding)

    async def update(self, wanted: Sequence[ModelSpec], loader: Callable[[ModelSpec], Model] = load_model) -> list[str]:
        """Host exactly ``wanted``: load new artifacts, keep the rest, drop the others.

        Returns what changed, for the log. A model whose artifact cannot be loaded keeps its
        current version (if it has one); the swap is one assignment, between micro-batches.
        """
        async with self._updating:  # one change at a time, whoever calls
            return await self._update(wanted, loader)

    async def _update(self, wanted: Sequence[ModelSpec], loader: Callable[[ModelSpec], Model]) -> list[str]:
        current = {m.spec.id: m for m in self.models}
        models, changes = [], []
        for spec in wanted:
            have = current.get(spec.id)
            if have is not None and (have.spec.sha256, have.spec.version) == (spec.sha256, spec.version):
                if have.spec != spec:
                    have.spec = spec  # role or preference: no reload
                    changes.append(f"{spec.id} is now {spec.role}")
                models.append(have)
                continue
            try:
                loaded = await asyncio.to_thread(loader, spec)
            except Exception as exc:
                log.error("model %s version %s refused: %s; %s", spec.id, spec.version, exc,
                          f"version {have.spec.version} keeps serving" if have else "it is not served")
                if have is not None:
                    models.append(have)
                continue
            models.append(loaded)
            changes.append(f"{spec.id} version {spec.version} loaded ({spec.role})")
        changes += [f"{m} unloaded" for m in current if m not in {s.id for s in wanted}]
        self.models = models
        return changes


def register(app: faust.App, spec: PipelineSpec, settings: Settings, topics: PipelineTopics,
             group: str) -> tuple[ModelGroup, RegistryView]:
    members = spec.groups.get(group, ())
    if not members:
        log.warning("pipeline %s has no live model in group %r yet (groups: %s); waiting for the registry",
                    spec.name, group, sorted(spec.groups))
    import sklearn

    # every row is checked (numbers, finite) before a model sees it: scikit-learn need not check again
    sklearn.set_config(assume_finite=True, skip_parameter_validation=True)
    runner = ModelGroup([load_model(m) for m in members], settings.encoding)
    store = ArtifactStore(settings.data_dir / "registry")

    async def follow(state: dict) -> None:
        wanted = live_spec(spec, state, store).groups.get(group, ())
        for change in await runner.update(wanted):
            log.info("group %s: %s", group, change)

    view = RegistryView(settings.bootstrap, topics.control, on_change=follow)
    requests = app.topic(topics.requests, key_serializer="raw", value_serializer="raw")
    within_s = settings.batch_within_ms / 1000.0

    @app.task
    async def registry():
        await follow(await view.start())  # changes since the worker's spec was read, then every change

    @app.on_before_shutdown.connect
    async def _stop_registry(app, **kwargs):
        await view.stop()

    @app.agent(requests, name=f"{spec.name}-models-{group}")
    async def score(stream):
        async for events in stream.take_events(settings.batch_max, within=within_s):
            for partition, batch in runner.score(events).items():
                await app.producer.send(topics.scores, None, runner.encode(batch), partition, None, None)

    return runner, view
