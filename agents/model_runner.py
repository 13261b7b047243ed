"""The model runner: hosts the models of one model group and scores every request.

Each model group is its own Faust app and consumer group, so a slow model never delays
another. Requests are scored in micro-batches (one vectorised predict per model per batch);
every (request, model) pair gets one Score with ``latency_ms`` and ``status``, written to the
request's own partition of ``{p}.scores`` so the rendezvous owning the request receives it
whatever partitioner the request's producer used. Bad requests are skipped here (the decoy
reports them to the DLQ); a model error becomes a Score with ``status=error``.
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

import faust
from faust.types import EventT

from pipelines.flavours import Model, load_model
from pipelines.spec import PipelineSpec
from schemas.codec import DecodeError, codec_for
from streams.settings import Settings
from streams.topics import PipelineTopics

__all__ = ["ModelGroup", "register"]

log = logging.getLogger(__name__)


class ModelGroup:
    """Pure scoring of a batch of request events by every model of a group."""

    def __init__(self, models: Sequence[Model], encoding: str = "avro") -> None:
        self.models = list(models)
        self.encoding = encoding
        self._requests = codec_for("Request")
        self._scores = codec_for("Score")

    def score(self, events: Sequence[EventT]) -> list[tuple[bytes, bytes, int]]:
        """``(key, encoded Score, partition)`` for each decodable request and model."""
        decoded = []
        for event in events:
            message = event.message
            try:
                decoded.append((self._requests.decode(message.value, message.key), message.partition))
            except DecodeError:
                continue
        if not decoded:
            return []
        rows = [record["features"] for record, _ in decoded]
        out = []
        for model in self.models:
            started = time.perf_counter()
            try:
                outcomes = model.score_batch(rows)
            except Exception as exc:  # a broken model answers with errors, it does not stop the group
                log.exception("model %s failed on a batch of %d", model.spec.id, len(rows))
                outcomes = [(None, None, f"{type(exc).__name__}: {exc}")] * len(rows)
            latency_ms = (time.perf_counter() - started) * 1000.0
            for (record, partition), (prediction, probabilities, error) in zip(decoded, outcomes):
                score = {
                    "request_id": record["request_id"], "model_id": model.spec.id,
                    "model_version": model.spec.version, "role": model.spec.role,
                    "prediction": prediction, "probabilities": probabilities, "latency_ms": latency_ms,
                    "status": "error" if error else "ok", "error": error,
                }
                out.append((record["request_id"].encode(), self._scores.encode_as(score, self.encoding), partition))
        return out


def register(app: faust.App, spec: PipelineSpec, settings: Settings, topics: PipelineTopics, group: str) -> None:
    members = spec.groups.get(group)
    if not members:
        raise ValueError(f"pipeline {spec.name} has no model group {group!r}; groups: {sorted(spec.groups)}")
    runner = ModelGroup([load_model(m) for m in members], settings.encoding)
    requests = app.topic(topics.requests, key_serializer="raw", value_serializer="raw")
    scores = app.topic(topics.scores, key_serializer="raw", value_serializer="raw")
    within_s = settings.batch_within_ms / 1000.0

    @app.agent(requests, name=f"{spec.name}-models-{group}")
    async def score(stream):
        async for events in stream.take_events(settings.batch_max, within=within_s):
            for key, value, partition in runner.score(events):
                await scores.send(key=key, value=value, partition=partition)
