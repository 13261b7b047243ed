"""Mailboxes: one per request, filed with scores as they arrive, closed once with a decision.

A mailbox is a small JSON-able dict kept in a changelog-backed Faust table keyed by
``request_id``, so an open request survives a worker restart and a closed one stays closed
(late scores are counted, never re-emitted). The functions here are pure.

>>> box = new_mailbox(partition=2)
>>> open_mailbox(box, {"deadline_ms": None, "tenant": None, "reply_to": None, "sent_at": None},
...              now_ms=1000, default_deadline_ms=50)["deadline_at"]
1050
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any, Mapping

from pipelines.policies import Decision, ScoreView

__all__ = ["DictStore", "TableStore", "close_mailbox", "file_score", "is_open", "new_mailbox", "open_mailbox", "result_record", "score_views"]

_SCORE_KEYS = ("model_id", "model_version", "role", "prediction", "probabilities", "status", "latency_ms", "error")


def new_mailbox(partition: int) -> dict:
    return {"partition": partition, "opened_at": None, "deadline_at": None, "meta": {}, "scores": {}, "done": None}


def open_mailbox(box: dict, request: Mapping[str, Any], now_ms: float, default_deadline_ms: int) -> dict:
    """The request arrived: start its deadline clock (scores may already be filed)."""
    deadline_ms = request.get("deadline_ms") or default_deadline_ms
    box["opened_at"] = now_ms
    box["deadline_at"] = now_ms + deadline_ms
    box["meta"] = {k: request.get(k) for k in ("tenant", "reply_to", "sent_at")}
    box["features"] = request.get("features")  # as the models saw them: what feedback is joined with
    return box


def is_open(box: Mapping[str, Any] | None) -> bool:
    return bool(box) and box["opened_at"] is not None and box["done"] is None


def file_score(box: dict, score: Mapping[str, Any]) -> dict:
    box["scores"][score["model_id"]] = {k: score.get(k) for k in _SCORE_KEYS}
    return box


def score_views(box: Mapping[str, Any]) -> dict[str, ScoreView]:
    return {m: ScoreView.from_record(s) for m, s in box["scores"].items()}


def close_mailbox(box: dict, decision: Decision) -> dict:
    """Mark the mailbox answered; keep only what dedupes late scores and explains the answer."""
    box["done"] = decision.status
    box["chosen"] = decision.score.model_id if decision.score else None
    return box


def result_record(request_id: str, box: Mapping[str, Any], decision: Decision, policy: str, now_ms: float) -> dict:
    score = decision.score
    return {
        "request_id": request_id,
        "prediction": score.prediction if score else None,
        "probabilities": dict(score.probabilities) if score and score.probabilities else None,
        "model_id": score.model_id if score else None,
        "model_version": score.model_version if score else None,
        "policy": policy,
        "reason": decision.reason,
        "scores": [
            {k: s.get(k) for k in ("model_id", "model_version", "role", "prediction", "status", "latency_ms")}
            for s in box["scores"].values()
        ],
        "latency_ms": float(now_ms - box["opened_at"]),
        "status": decision.status,
        **{k: box["meta"].get(k) for k in ("tenant", "reply_to", "sent_at")},
    }


class DictStore:
    """Mailboxes in a plain dict (tests, tools): ``save`` is durable at once."""

    def __init__(self, data: dict | None = None) -> None:
        self.data = {} if data is None else data

    def get(self, request_id: str) -> dict | None:
        return self.data.get(request_id)

    def save(self, request_id: str, box: dict, final: bool = False) -> None:
        self.data[request_id] = box

    def forget(self, request_id: str) -> None:
        """Retention: the mailbox is gone (from the changelog too, for a table)."""
        self.data.pop(request_id, None)

    def items(self):
        return self.data.items()

    def discard(self, request_id: str) -> None:
        """Out of this worker's memory only (its partition went to another worker)."""
        self.data.pop(request_id, None)

    async def flush(self, final_only: bool = False) -> None:
        """Durable writes are immediate here."""


class TableStore(DictStore):
    """Mailboxes in a changelog-backed Faust table, written to the changelog as late as is safe.

    ``save`` marks a changed mailbox for the changelog; a mailbox saved again before it was
    written is written once, in its latest state. Every
    marked mailbox must be durable before the offsets of the events that changed it are
    committed, and no sooner: ``flush()`` writes them from the worker's commit hook, just before
    Faust flushes the producer and commits (streams/transport.py). A mailbox that opens, gets
    its scores (also the ones after the answer) and closes between two commits — nearly all of
    them, with deadlines of ~100 ms and a commit every 0.5 s — costs one changelog message.
    Two kinds of write:

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
        super().__init__(table.data)
        self.table = table
        self._send = send or self._to_producer
        self.pending: dict[str, bool] = {}  # request_id -> final; insertion-ordered
        self.written = 0
        self._tombstones: dict[str, int] = {}  # forgotten, tombstone not yet written -> partition
        self._outbox: deque[tuple[str, bytes | None, int]] = deque()  # taken, not yet sent
        self._flushing = asyncio.Lock()

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

    def take(self, final_only: bool = False) -> int:
        """Serialize the marked mailboxes (only the final ones if asked) into the outbox, at once:
        no event is handled in between, so what is taken is one consistent instant. How many."""
        chosen = [rid for rid, final in self.pending.items() if final or not final_only]
        for rid in chosen:
            final = self.pending.pop(rid)
            box = self.data.get(rid)
            if box is None:
                if rid in self._tombstones:  # forgotten (retention): a tombstone on its partition
                    self._outbox.append((rid, None, self._tombstones.pop(rid)))
                continue
            if box["done"] is not None and not final:
                box = {**box, "done": None, "chosen": None}  # its Result is not out yet: still open
            self._outbox.append((rid, json.dumps(box, separators=(",", ":")).encode(), box["partition"]))
        return len(chosen)

    async def drain(self) -> None:
        """Hand the outbox to the producer, in the order taken."""
        async with self._flushing:  # the commit hook and the timers both drain: one at a time, in order
            while self._outbox:
                rid, value, partition = self._outbox.popleft()
                self.written += 1
                await self._send(rid, value, partition)

    def before_commit(self):
        """The commit hook (streams/transport.py): take now, send when awaited."""
        self.take()
        return self.drain()

    async def flush(self, final_only: bool = False) -> None:
        """Hand the marked mailboxes to the producer, in order (only the final ones if asked)."""
        self.take(final_only)
        await self.drain()

    async def _to_producer(self, request_id: str, value: bytes, partition: int) -> None:
        """Straight to Faust's producer (what ``Topic.send`` ends in, without its per-message
        machinery: ~5% of the core at 700 requests/s); the commit still flushes it first."""
        topic = self.table.changelog_topic
        key, _ = topic.prepare_key(request_id, self.table.key_serializer)
        await self.table.app.producer.send(topic.get_topic_name(), key, value, partition, None, None)
