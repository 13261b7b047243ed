"""The commit-time outbox: how a store's changes reach its changelog, once, before the offsets that cover them.

A store that is written at commit time (the mailboxes, the score state) marks what changed as
events are handled, and writes nothing then. Before every offset commit — and when a rebalance
revokes partitions — the worker calls every store's :meth:`Outbox.before_commit`
(``streams/kafka/transport.py``): each *takes* its changes at once (serialized, no event handled
in between, so all stores are taken at one instant), then the writes are awaited, in the order
taken, one drain at a time. Faust then flushes the producer and commits. A change made and
overwritten between two commits costs one changelog message.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Awaitable, Callable, Iterable

__all__ = ["Outbox", "Record", "Send", "changelog_sender"]

Record = tuple[str, "bytes | None", int]  # key, value (None: a tombstone), partition
Send = Callable[[str, "bytes | None", int], Awaitable[None]]


class Outbox:
    """Base of the commit-time stores: a subclass says what changed in :meth:`changes`."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._queue: deque[Record] = deque()  # taken, not yet sent
        self._draining = asyncio.Lock()
        self.written = 0

    def changes(self, **options) -> Iterable[Record]:
        """The changes to write now, serialized; they count as written from here on."""
        raise NotImplementedError

    def take(self, **options) -> int:
        """Serialize the changes into the outbox, at once (one consistent instant); how many."""
        records = list(self.changes(**options))
        self._queue.extend(records)
        return len(records)

    async def drain(self) -> None:
        """Hand the outbox to the producer, in the order taken (the commit hook and timers both
        drain: one at a time)."""
        async with self._draining:
            while self._queue:
                key, value, partition = self._queue.popleft()
                self.written += 1
                await self._send(key, value, partition)

    def before_commit(self) -> Awaitable[None]:
        """The commit hook: take now, send when awaited."""
        self.take()
        return self.drain()

    async def flush(self, **options) -> int:
        """Write the changes now; how many."""
        count = self.take(**options)
        await self.drain()
        return count


def changelog_sender(table) -> Send:
    """Straight to Faust's producer, on the table's changelog (what ``Topic.send`` ends in, without
    its per-message machinery: ~5% of the core at 700 requests/s); the commit still flushes it first."""

    async def send(key: str, value: bytes | None, partition: int) -> None:
        topic = table.changelog_topic
        raw_key, _ = topic.prepare_key(key, table.key_serializer)
        await table.app.producer.send(topic.get_topic_name(), raw_key, value, partition, None, None)

    return send
