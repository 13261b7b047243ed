"""The model runner: hosts the models of one model group and scores every request.

Each model group is its own Faust app and consumer group, so a slow model never delays
another. Requests are scored in micro-batches (one vectorised predict per model per batch);
every (request, model) pair gets one Score with ``latency_ms`` and ``status``. The Scores of
a micro-batch travel as one ScoreBatch message per partition (one Kafka send and one
rendezvous consume instead of one per request and model), written to the requests' own
partition of ``{p}.scores`` so the rendezvous owning them receives them whatever
partitioner the requests' producer used. Bad requests are skipped here (the decoy
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
        self._batch = codec_for("ScoreBatch")

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
            for (record, partition), (prediction, probabilities, error) in zip(decoded, outcomes):
                score = {
                    "request_id": record["request_id"], "model_id": model.spec.id,
                    "model_version": model.spec.version, "role": model.spec.role,
                    "prediction": prediction, "probabilities": probabilities, "latency_ms": latency_ms,
                    "status": "error" if error else "ok", "error": error,
                }
                out.setdefault(partition, []).append(score)
        return out

    def encode(self, scores: list[dict]) -> bytes:
        return self._batch.encode_as({"scores": scores}, self.encoding)


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
            for partition, batch in runner.score(events).items():
                await scores.send(key=None, value=runner.encode(batch), partition=partition)
