"""A pipeline's topics on the real broker: created co-partitioned, and deleted without a trace."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from streams.kafka.topics import PipelineTopics, delete_pipeline, ensure_topics

pytestmark = pytest.mark.integration


def test_topics__a_deleted_pipeline_leaves_no_topic_and_no_committed_offset(broker, run):
    """What the demo does on a broker that keeps its log: a worker of the re-created pipeline must
    not resume from the old run's offsets (beyond the new log, Faust skipped every request)."""
    name = f"del-{uuid.uuid4().hex[:6]}"
    topics = PipelineTopics(name)
    bootstrap = broker.url.removeprefix("kafka://")

    async def scenario():
        created = await ensure_topics(bootstrap, name, 2)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        for _ in range(5):
            await producer.send_and_wait(topics.requests, b"{}", partition=0)
        await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=topics.app_id("group:boosted"),
                                    enable_auto_commit=False)
        await consumer.start()
        consumer.assign([TopicPartition(topics.requests, 0)])
        await consumer.commit({TopicPartition(topics.requests, 0): OffsetAndMetadata(5, "")})
        await consumer.stop()
        deleted = await delete_pipeline(bootstrap, name)
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            left = [t for t in await admin.list_topics() if t.startswith(f"{name}.")]
            offsets = await admin.list_consumer_group_offsets(topics.app_id("group:boosted"))
        finally:
            await admin.close()
        return created, deleted, left, offsets

    created, deleted, left, offsets = run(scenario())
    assert set(created) <= set(deleted) and left == []
    assert offsets == {}, f"offsets of the deleted topics are still committed: {offsets}"
