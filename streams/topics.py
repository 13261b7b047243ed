"""The pipeline's topics, created explicitly with one partition count (co-partitioned by request_id).

Never leave a topic to broker auto-creation: Tansu would give it its own default partition
count, and a table fed by it would crash-loop with ``PartitionsMismatch``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

__all__ = ["PipelineTopics", "TopicMismatch", "ensure_topics"]

ROLES = ("requests", "scores", "results", "feedback", "control", "quality", "alerts", "dlq")


class TopicMismatch(RuntimeError):
    pass


@dataclass(frozen=True)
class PipelineTopics:
    pipeline: str

    def __getattr__(self, role: str) -> str:
        if role in ROLES:
            return f"{self.pipeline}.{role}"
        raise AttributeError(role)

    def all(self) -> list[str]:
        return [f"{self.pipeline}.{role}" for role in ROLES]


async def ensure_topics(bootstrap: str, pipeline: str, partitions: int, replication: int = 1) -> list[str]:
    """Create the pipeline's missing topics; fail if an existing one has another partition count."""
    topics = PipelineTopics(pipeline)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = await _partition_counts(admin, topics.all())
        wrong = {t: n for t, n in existing.items() if n != partitions}
        if wrong:
            raise TopicMismatch(
                f"topics {wrong} exist with a partition count other than {partitions}; request-keyed topics must be "
                f"co-partitioned. Delete them or set partitions: {next(iter(wrong.values()))} in the spec."
            )
        missing = [t for t in topics.all() if t not in existing]
        new = [
            NewTopic(t, partitions, replication, topic_configs={"cleanup.policy": "compact"} if t == topics.control else {})
            for t in missing
        ]
        if new:
            await admin.create_topics(new)
        return missing
    finally:
        await admin.close()


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    listed = set(await admin.list_topics())
    wanted = [n for n in names if n in listed]
    if not wanted:
        return {}
    described = await admin.describe_topics(wanted)
    return {d["topic"]: len(d["partitions"]) for d in described if not d.get("error_code")}
