"""The mailbox table adapter: coalesced snapshots, in order, handed to the producer when flushed."""

import asyncio
import json

from pipelines.mailbox import close_mailbox, new_mailbox
from tables.mailboxes import TableStore
from pipelines.policies import Decision


class FakeTopic:
    def __init__(self):
        self.sent = []

    async def send(self, key, value, partition):
        self.sent.append((partition, key, value, "raw"))


class FakeTable:
    """What TableStore uses of a Faust table: its store, key serializer and changelog topic."""

    def __init__(self):
        self.data = {}
        self.key_serializer = "json"
        self.changelog_topic = FakeTopic()


def test_mailboxes__saved_changelog_value_is_a_snapshot_taken_at_save_time():
    table = FakeTable()
    store = TableStore(table, send=table.changelog_topic.send)
    box = new_mailbox(partition=3)
    box["opened_at"] = 1.0
    store.save("r1", box)
    close_mailbox(box, Decision("ok", "answered"))  # closed in memory, Result not out yet
    asyncio.run(store.flush())
    [(partition, key, value, serializer)] = table.changelog_topic.sent
    assert (partition, key, serializer) == (3, "r1", "raw")
    assert json.loads(value)["done"] is None  # the changelog still says open
    assert store.get("r1")["done"] == "ok"     # memory knows it is decided


def test_mailboxes__saves_reach_the_producer_only_when_flushed_coalesced_and_in_order():
    table = FakeTable()
    store = TableStore(table, send=table.changelog_topic.send)
    for rid, partition in (("a", 0), ("b", 1), ("a", 0)):
        store.save(rid, new_mailbox(partition))
    assert table.changelog_topic.sent == [] and set(store.data) == {"a", "b"}
    asyncio.run(store.flush())
    # "a" saved twice before a flush: written once, in its latest state, after "b"
    assert [(p, k) for p, k, _, _ in table.changelog_topic.sent] == [(1, "b"), (0, "a")]
    asyncio.run(store.flush())  # nothing is sent twice
    assert len(table.changelog_topic.sent) == 2


def test_mailboxes__final_only_flush_leaves_open_mailboxes_for_the_commit_hook():
    table = FakeTable()
    store = TableStore(table, send=table.changelog_topic.send)
    opened, answered = new_mailbox(0), new_mailbox(1)
    opened["opened_at"] = answered["opened_at"] = 1.0
    store.save("open", opened)
    store.save("answered", answered)
    close_mailbox(answered, Decision("ok", "answered"))
    store.save("answered", answered, final=True)  # its Result went to the producer
    asyncio.run(store.flush(final_only=True))
    [(_, key, value, _)] = table.changelog_topic.sent
    assert key == "answered" and json.loads(value)["done"] == "ok"  # one message for open + close
    asyncio.run(store.flush())  # the commit hook: now the waiting one
    assert [k for _, k, _, _ in table.changelog_topic.sent] == ["answered", "open"]
    assert json.loads(table.changelog_topic.sent[1][2])["done"] is None


def test_mailboxes__forgotten_mailbox_becomes_a_tombstone_on_its_partition():
    table = FakeTable()
    store = TableStore(table, send=table.changelog_topic.send)
    store.save("r1", new_mailbox(partition=2), final=True)
    store.forget("r1")
    store.forget("never-seen")  # nothing to forget: nothing written
    asyncio.run(store.flush(final_only=True))
    assert table.changelog_topic.sent == [(2, "r1", None, "raw")] and store.get("r1") is None
