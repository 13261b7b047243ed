"""Dead letters: anything that cannot be decoded or processed goes to ``{p}.dlq`` with the reason."""

from __future__ import annotations

import logging
import time

from faust.types import EventT

from agents.worker import Worker
from schemas.codec import codec_for

__all__ = ["DeadLetters"]

_MAX_PAYLOAD = 64 * 1024
log = logging.getLogger(__name__)


class DeadLetters:
    """``{p}.dlq`` of one worker; every dead letter is counted by stage in the worker's telemetry."""

    def __init__(self, w: Worker) -> None:
        self.pipeline = w.spec.name
        self.topic = w.raw_topic(w.topics.dlq)
        self.metrics = w.metrics
        self.codec = codec_for("DeadLetter")

    async def send(self, event: EventT, reason: str, stage: str) -> None:
        """Publish the event's original bytes and the reason; never raises into the agent loop."""
        self.metrics.dead_letter(stage)
        message = event.message
        payload = message.value if isinstance(message.value, bytes) else b""
        record = {
            "pipeline": self.pipeline, "source_topic": message.topic, "source_partition": message.partition,
            "source_offset": message.offset, "key": message.key if isinstance(message.key, bytes) else None,
            "payload": payload[:_MAX_PAYLOAD], "payload_size": len(payload), "reason": reason[:2000],
            "stage": stage, "at": int(time.time() * 1000),
        }
        log.info("dead letter from %s[%s]@%s: %s", message.topic, message.partition, message.offset, reason)
        try:
            await self.topic.send(key=record["key"], value=self.codec.encode(record))
        except Exception:  # the DLQ itself failing must not stop the worker
            log.exception("could not publish a dead letter for %s@%s", message.topic, message.offset)
