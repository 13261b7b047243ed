"""Feedback read back from ``{p}.feedback``: request_id -> the observed label (last one wins)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.codec import DecodeError, codec_for
from tables.results import records_until

__all__ = ["read_feedback"]


async def read_feedback(bootstrap: str, topic: str) -> dict[str, object]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return {}
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        codec, labels = codec_for("Feedback"), {}
        async for message in records_until(consumer, await consumer.end_offsets(tps)):
            try:
                record = codec.decode(message.value, message.key)
            except DecodeError:
                continue
            label = record["label"]
            labels[record["request_id"]] = int(label) if isinstance(label, bool) else label
        return labels
    finally:
        await consumer.stop()
