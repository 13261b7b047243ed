"""Feedback read back from ``{p}.feedback``: request_id -> the observed label (last one wins)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.codec import DecodeError, codec_for

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
        ends = await consumer.end_offsets(tps)
        todo = {tp for tp in tps if ends[tp] > 0}
        codec, labels = codec_for("Feedback"), {}
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=200)
            for messages in batch.values():
                for message in messages:
                    try:
                        record = codec.decode(message.value, message.key)
                    except DecodeError:
                        continue
                    label = record["label"]
                    labels[record["request_id"]] = int(label) if isinstance(label, bool) else label
            todo = {tp for tp in todo if await consumer.position(tp) < ends[tp]}
        return labels
    finally:
        await consumer.stop()
