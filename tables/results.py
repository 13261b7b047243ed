"""Which requests already have a Result: read back from the results topic itself.

The results topic is the truth of what was answered. Results are written to their request's
partition, so a rendezvous worker that is assigned request partitions can learn, from the
same partitions of ``{p}.results``, which of the requests it may be about to replay were
answered already — by itself before a restart, or by another worker before a rebalance.
"""

from __future__ import annotations

import time
from typing import AsyncIterator, Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: F401 (records_until's type)

from schemas.codec import DecodeError, codec_for
from streams.kafka.clients import Kafka, kafka_of

__all__ = ["read_answered", "read_records", "records_until"]


async def read_answered(kafka: Kafka | str, topic: str, partitions: Iterable[int], window_s: float) -> dict[str, float]:
    """request_id -> Result timestamp (ms) for Results published in the last ``window_s`` seconds."""
    tps = [TopicPartition(topic, p) for p in partitions]
    if not tps:
        return {}
    consumer = kafka_of(kafka).consumer(enable_auto_commit=False, fetch_max_wait_ms=10)
    try:
        await consumer.start()  # inside: a start that fails (broker gone) still closes its client
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.offsets_for_times({tp: int((time.time() - window_s) * 1000) for tp in tps})
        for tp in tps:
            consumer.seek(tp, starts[tp].offset if starts.get(tp) else ends[tp])
        codec, answered = codec_for("Result"), {}
        async for message in records_until(consumer, ends):
            try:
                answered[codec.decode(message.value)["request_id"]] = message.timestamp
            except DecodeError:
                continue
        return answered
    finally:
        await consumer.stop()


async def records_until(consumer: AIOKafkaConsumer, ends: Mapping[TopicPartition, int]) -> AsyncIterator:
    """Every record from each partition's current position up to its end offset in ``ends``.

    The one way this project reads a topic back to a point: Results here, feedback, the
    registry at start, and the tests' diagnostics.
    """
    todo = {tp for tp, end in ends.items() if await consumer.position(tp) < end}
    while todo:
        batch = await consumer.getmany(*todo, timeout_ms=200)
        for messages in batch.values():
            for message in messages:
                yield message
        todo = {tp for tp in todo if await consumer.position(tp) < ends[tp]}


async def read_records(kafka: Kafka | str, topic: str, schema: str) -> list[tuple[int, dict]]:
    """Every decodable record of ``topic`` (as ``schema``) up to its current end: (timestamp ms, record)."""
    consumer = kafka_of(kafka).consumer(enable_auto_commit=False, fetch_max_wait_ms=10)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        codec, out = codec_for(schema), []
        async for message in records_until(consumer, await consumer.end_offsets(tps)):
            try:
                out.append((message.timestamp, codec.decode(message.value, message.key)))
            except DecodeError:
                continue
        return out
    finally:
        await consumer.stop()
