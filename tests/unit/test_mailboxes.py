"""The mailbox table adapter writes snapshots: later changes in memory never leak into the changelog."""

import json

from tables.mailboxes import TableStore, close_mailbox, new_mailbox
from pipelines.policies import Decision


class FakeTable:
    """What TableStore uses of a Faust table: its store and send_changelog."""

    def __init__(self):
        self.data = {}
        self.changelog = []

    def send_changelog(self, partition, key, value, key_serializer=None, value_serializer=None):
        self.changelog.append((partition, key, value, value_serializer))


def test_mailboxes__saved_changelog_value_is_a_snapshot_taken_at_save_time():
    table = FakeTable()
    store = TableStore(table)
    box = new_mailbox(partition=3)
    box["opened_at"] = 1.0
    store.save("r1", box)
    close_mailbox(box, Decision("ok", "answered"))  # closed in memory, Result not out yet
    [(partition, key, value, serializer)] = table.changelog
    assert (partition, key, serializer) == (3, "r1", "raw")
    assert json.loads(value)["done"] is None  # the changelog still says open
    assert store.get("r1")["done"] == "ok"     # memory knows it is decided
