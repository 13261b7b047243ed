"""A model group's models scoring micro-batches of requests, and swapped while they serve.

:class:`ModelGroup` decodes a micro-batch of request messages (anything with ``.message.value``,
``.key`` and ``.partition``: Faust's events in a worker), runs one vectorised predict per model,
and returns every (request, model) Score with its ``latency_ms`` and ``status``, grouped by
partition. A model error becomes Scores with ``status=error``; an undecodable request is
skipped (the decoy reports it). :meth:`ModelGroup.update` hosts exactly the wanted versions:
new artifacts are verified and loaded off the event loop, a refused one leaves the loaded
version serving, and the swap is one assignment between micro-batches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Sequence

from pipelines.flavours import Model, load_model
from pipelines.flavours.base import score_record
from pipelines.spec import ModelSpec
from schemas.codec import DecodeError, codec_for

__all__ = ["ModelGroup"]

log = logging.getLogger(__name__)


class ModelGroup:
    """Pure scoring of a batch of request events by every model of a group."""

    def __init__(self, models: Sequence[Model], encoding: str = "avro") -> None:
        self.models = list(models)
        self.wanted = [m.spec for m in self.models]  # what the registry asks this group to host
        self.encoding = encoding
        self._requests = codec_for("Request")
        self._batch = codec_for("ScoreBatch")
        self._updating = asyncio.Lock()

    def score(self, events: Sequence[Any]) -> dict[int, list[dict]]:
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
            self.wanted = list(wanted)
            return await self._update(wanted, loader)

    def unloaded(self) -> list[str]:
        """Models the registry wants here that are not loaded (refused, or still loading): readiness."""
        have = {(m.spec.id, m.spec.version) for m in self.models}
        return [f"model {s.id} version {s.version} is not loaded (refused or still loading: see the log)"
                for s in self.wanted if (s.id, s.version) not in have]

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
