"""The pipeline's topics, created explicitly with one partition count (co-partitioned by request_id).

Never leave a topic to broker auto-creation: the broker would give it its own default partition
count, and a table fed by it would crash-loop with ``PartitionsMismatch``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: F401 (the helpers' type)
from aiokafka.errors import GroupIdNotFound, KafkaError, NonEmptyGroup, for_code
from streams.kafka.clients import Kafka, kafka_of

__all__ = ["PipelineTopics", "TopicMismatch", "delete_pipeline", "ensure_topics"]

ROLES = ("requests", "scores", "results", "feedback", "examples", "control", "quality", "alerts", "dlq")
TABLES = ("mailboxes", "scorestate")  # the core app's changelog-backed tables


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

    def app_id(self, role: str) -> str:
        """The Faust app id (= consumer group) of a role: ``core`` or ``group:<name>``."""
        return f"rdv-{self.pipeline}-{role.replace(':', '-')}"

    def table(self, name: str) -> str:
        return f"{self.pipeline}-{name}"

    def changelogs(self) -> list[str]:
        """Faust's changelog topic names of the core app's tables (``<app id>-<table>-changelog``)."""
        return [f"{self.app_id('core')}-{self.table(name)}-changelog" for name in TABLES]


async def ensure_topics(kafka: Kafka | str, pipeline: str, partitions: int, replication: int = 1) -> list[str]:
    """Create the pipeline's missing topics; fail if an existing one has another partition count."""
    topics = PipelineTopics(pipeline)
    admin = kafka_of(kafka).admin(request_timeout_ms=15000)
    await admin.start()
    try:
        names = topics.all() + topics.changelogs()
        existing = await _partition_counts(admin, names)
        wrong = {t: n for t, n in existing.items() if n != partitions}
        if wrong:
            raise TopicMismatch(
                f"topics {wrong} exist with a partition count other than {partitions}; request-keyed topics must be "
                f"co-partitioned. Delete them or set partitions: {next(iter(wrong.values()))} in the spec."
            )
        missing = [t for t in names if t not in existing]
        compacted = {topics.control, *topics.changelogs()}
        new = [NewTopic(t, partitions, replication, topic_configs={"cleanup.policy": "compact"} if t in compacted else {})
               for t in missing]
        if new:
            await admin.create_topics(new)
        await _wait_for_leaders(admin, names)
        return missing
    finally:
        await admin.close()


async def delete_pipeline(kafka: Kafka | str, pipeline: str, timeout_s: float = 30.0) -> list[str]:
    """Delete every topic of ``pipeline`` (its own, its workers' changelogs and Faust's internal ones)
    and its workers' consumer groups, and wait until they are gone. The demo starts from nothing so
    on a broker that keeps its log; no worker of the pipeline may be running."""
    topics = PipelineTopics(pipeline)
    admin = kafka_of(kafka).admin(request_timeout_ms=15000)
    await admin.start()
    try:
        prefixes = (f"{pipeline}.", f"{topics.app_id('core')}-", f"{topics.app_id('group:')}")  # rdv-P-core-…, rdv-P-group-…
        mine = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        if mine:
            await admin.delete_topics(mine)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while set(mine) & set(await admin.list_topics()) or not await _delete_groups(admin, f"rdv-{pipeline}-"):
            if asyncio.get_running_loop().time() > deadline:
                raise TopicMismatch(f"the topics or consumer groups of {pipeline} still exist {timeout_s:.0f} s "
                                    f"after their deletion")
            await asyncio.sleep(0.1)
        return mine
    finally:
        await admin.close()


async def _delete_groups(admin: AIOKafkaAdminClient, prefix: str) -> bool:
    """Delete the consumer groups named ``prefix…``; False while that cannot be done yet.

    Kafka drops the offsets of a deleted topic only some time later, and not always (seen after
    a broker restart: offsets of topics gone for minutes). A worker of a re-created topic then
    resumed from the old offsets, beyond the new log: Faust skipped every new request as already
    read and the demo's second run never answered a probe. aiokafka's admin client has no
    DeleteGroups, so the request goes out through its own request path."""
    from aiokafka.protocol.admin import DeleteGroupsRequest

    try:
        for group in [g[0] for g in await admin.list_consumer_groups() if str(g[0]).startswith(prefix)]:
            response = await admin._send_request(DeleteGroupsRequest([group]), await admin.find_coordinator(group))
            for _, code in response.results:
                if code == NonEmptyGroup.errno:  # a crashed worker's member, until its session times out
                    return False
                if code not in (0, GroupIdNotFound.errno):
                    raise for_code(code)(f"deleting consumer group {group}")
    except KafkaError as exc:
        if not exc.retriable:  # (a broker just started is still loading its groups: ask again)
            raise
        return False
    return True


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 30.0) -> None:
    """Kafka creates topics asynchronously: wait until every partition has a leader."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        waiting = [d["topic"] for d in described
                   if d.get("error_code") or not d["partitions"] or any(p["leader"] < 0 for p in d["partitions"])]
        if not waiting:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TopicMismatch(f"topics {waiting} have no partition leader after {timeout_s:.0f} s")
        await asyncio.sleep(0.1)


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    listed = set(await admin.list_topics())
    wanted = [n for n in names if n in listed]
    if not wanted:
        return {}
    described = await admin.describe_topics(wanted)
    return {d["topic"]: len(d["partitions"]) for d in described if not d.get("error_code")}
