"""The mailboxes' table: :class:`TableStore` keeps the rendezvous' mailboxes in a changelog-backed
Faust table, written through the commit-time outbox (``tables/outbox.py``)."""

from __future__ import annotations

import json

from pipelines.mailbox import DictStore
from tables.outbox import Outbox, changelog_sender

__all__ = ["TableStore"]


class TableStore(DictStore, Outbox):
    """Mailboxes in a changelog-backed Faust table, written to the changelog as late as is safe.

    ``save`` marks a changed mailbox for the changelog; a mailbox saved again before it was
    written is written once, in its latest state. Every
    marked mailbox must be durable before the offsets of the events that changed it are
    committed, and no sooner: the outbox writes them from the worker's commit hook. A mailbox that opens, gets
    its scores (also the ones after the answer) and closes between two commits — nearly all of
    them, with deadlines of ~100 ms and a commit every 0.5 s — costs one changelog message.
    Two kinds of write (through :class:`~tables.outbox.Outbox`):

    * **final** — closed, its Result already handed to the producer (``save(..., final=True)``,
      from ``Rendezvous.confirm``). A crash before the commit loses the write but not the
      Result: the worker that takes the partition over reads recent Results back and does not
      answer the replayed request again.
    * **open** — a request that is waiting, or closed in memory with its Result not out yet.
      ``flush(final_only=True)`` leaves these for the commit hook (retention uses it).

    A mailbox closed in memory whose Result is not out yet is written as *open* (a copy with
    ``done`` cleared): were the worker to stop before the Result left, the changelog must not
    say "answered" (CI once lost requests exactly so). Values are serialized at flush and sent
    with an explicit partition (the request's), so timers can save outside any event.
    """

    def __init__(self, table, send=None) -> None:
        DictStore.__init__(self, table.data)
        Outbox.__init__(self, send or changelog_sender(table))
        self.table = table
        self.pending: dict[str, bool] = {}  # request_id -> final; insertion-ordered
        self._tombstones: dict[str, int] = {}  # forgotten, tombstone not yet written -> partition

    def save(self, request_id: str, box: dict, final: bool = False) -> None:
        self.data[request_id] = box
        self._tombstones.pop(request_id, None)
        self.pending.pop(request_id, None)  # re-inserted: written after anything saved before it
        self.pending[request_id] = final

    def forget(self, request_id: str) -> None:
        """Drop the mailbox from memory and write a tombstone: compaction removes it from the changelog."""
        box = self.data.pop(request_id, None)
        if box is None:
            return
        self._tombstones[request_id] = box["partition"]
        self.pending.pop(request_id, None)
        self.pending[request_id] = True

    def discard(self, request_id: str) -> None:
        """Out of this worker's memory only, nothing written (its partition went to another worker)."""
        self.data.pop(request_id, None)
        self.pending.pop(request_id, None)
        self._tombstones.pop(request_id, None)

    def changes(self, final_only: bool = False) -> list:
        """The marked mailboxes (only the final ones if asked), serialized."""
        out = []
        for rid in [rid for rid, final in self.pending.items() if final or not final_only]:
            final = self.pending.pop(rid)
            box = self.data.get(rid)
            if box is None:
                if rid in self._tombstones:  # forgotten (retention): a tombstone on its partition
                    out.append((rid, None, self._tombstones.pop(rid)))
                continue
            if box["done"] is not None and not final:
                box = {**box, "done": None, "chosen": None}  # its Result is not out yet: still open
            out.append((rid, json.dumps(box, separators=(",", ":")).encode(), box["partition"]))
        return out

    async def flush(self, final_only: bool = False) -> None:
        """Hand the marked mailboxes to the producer, in order (only the final ones if asked)."""
        await Outbox.flush(self, final_only=final_only)
