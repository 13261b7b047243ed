"""Dead letters: anything that cannot be decoded or processed goes to ``{p}.dlq`` with the reason."""

from __future__ import annotations

import logging
import time

from faust.types import EventT, TopicT

from schemas.codec import codec_for

__all__ = ["dead_letter"]

_MAX_PAYLOAD = 64 * 1024
log = logging.getLogger(__name__)


async def dead_letter(dlq: TopicT, pipeline: str, event: EventT, reason: str, stage: str) -> None:
    """Publish the event's original bytes and the reason; never raises into the agent loop."""
    metrics = getattr(event.app, "rdv_metrics", None)  # the core's /metrics counts dead letters by stage
    if metrics is not None:
        metrics.dead_letter(stage)
    message = event.message
    payload = message.value if isinstance(message.value, bytes) else b""
    record = {
        "pipeline": pipeline, "source_topic": message.topic, "source_partition": message.partition,
        "source_offset": message.offset, "key": message.key if isinstance(message.key, bytes) else None,
        "payload": payload[:_MAX_PAYLOAD], "payload_size": len(payload), "reason": reason[:2000],
        "stage": stage, "at": int(time.time() * 1000),
    }
    log.info("dead letter from %s[%s]@%s: %s", message.topic, message.partition, message.offset, reason)
    try:
        await dlq.send(key=record["key"], value=codec_for("DeadLetter").encode(record))
    except Exception:  # the DLQ itself failing must not stop the worker
        log.exception("could not publish a dead letter for %s@%s", message.topic, message.offset)
