"""The mailbox table adapter writes snapshots, in order, straight to the producer when flushed."""

import asyncio
import json

from tables.mailboxes import TableStore, close_mailbox, new_mailbox
from pipelines.policies import Decision


class FakeTopic:
    def __init__(self):
        self.sent = []

    async def send(self, key, value, partition, key_serializer=None, value_serializer=None):
        self.sent.append((partition, key, value, value_serializer))


class FakeTable:
    """What TableStore uses of a Faust table: its store, key serializer and changelog topic."""

    def __init__(self):
        self.data = {}
        self.key_serializer = "json"
        self.changelog_topic = FakeTopic()


def test_mailboxes__saved_changelog_value_is_a_snapshot_taken_at_save_time():
    table = FakeTable()
    store = TableStore(table)
    box = new_mailbox(partition=3)
    box["opened_at"] = 1.0
    store.save("r1", box)
    close_mailbox(box, Decision("ok", "answered"))  # closed in memory, Result not out yet
    asyncio.run(store.flush())
    [(partition, key, value, serializer)] = table.changelog_topic.sent
    assert (partition, key, serializer) == (3, "r1", "raw")
    assert json.loads(value)["done"] is None  # the changelog still says open
    assert store.get("r1")["done"] == "ok"     # memory knows it is decided


def test_mailboxes__saves_reach_the_producer_only_when_flushed_and_in_order():
    table = FakeTable()
    store = TableStore(table)
    for rid, partition in (("a", 0), ("b", 1), ("a", 0)):
        store.save(rid, new_mailbox(partition))
    assert table.changelog_topic.sent == [] and set(store.data) == {"a", "b"}
    asyncio.run(store.flush())
    assert [(p, k) for p, k, _, _ in table.changelog_topic.sent] == [(0, "a"), (1, "b"), (0, "a")]
    asyncio.run(store.flush())  # nothing is sent twice
    assert len(table.changelog_topic.sent) == 3
