"""Which requests already have a Result: read back from the results topic itself.

The results topic is the truth of what was answered. Results are written to their request's
partition, so a rendezvous worker that is assigned request partitions can learn, from the
same partitions of ``{p}.results``, which of the requests it may be about to replay were
answered already — by itself before a restart, or by another worker before a rebalance.
"""

from __future__ import annotations

import time
from typing import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.codec import DecodeError, codec_for

__all__ = ["read_answered"]


async def read_answered(bootstrap: str, topic: str, partitions: Iterable[int], window_s: float) -> dict[str, float]:
    """request_id -> Result timestamp (ms) for Results published in the last ``window_s`` seconds."""
    tps = [TopicPartition(topic, p) for p in partitions]
    if not tps:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10)
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.offsets_for_times({tp: int((time.time() - window_s) * 1000) for tp in tps})
        todo = {}
        for tp in tps:
            start = starts[tp].offset if starts.get(tp) else ends[tp]
            if start < ends[tp]:
                consumer.seek(tp, start)
                todo[tp] = ends[tp]
        return await _drain(consumer, todo)
    finally:
        await consumer.stop()


async def _drain(consumer: AIOKafkaConsumer, todo: dict) -> dict[str, float]:
    codec = codec_for("Result")
    answered: dict[str, float] = {}
    while todo:
        batch = await consumer.getmany(*todo, timeout_ms=500)
        for tp, messages in batch.items():
            for message in messages:
                try:
                    answered[codec.decode(message.value)["request_id"]] = message.timestamp
                except DecodeError:
                    continue
            if messages and messages[-1].offset + 1 >= todo[tp]:
                del todo[tp]
    return answered
