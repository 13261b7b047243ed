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

from typing import Any, Mapping

import json

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
    """Mailboxes in a plain dict (tests, tools). ``keep`` is memory-only, ``save`` is durable."""

    def __init__(self, data: dict | None = None) -> None:
        self.data = {} if data is None else data

    def get(self, request_id: str) -> dict | None:
        return self.data.get(request_id)

    def keep(self, request_id: str, box: dict) -> None:
        self.data[request_id] = box

    save = keep

    def items(self):
        return self.data.items()

    async def flush(self) -> None:
        """Durable writes are immediate here."""


class TableStore(DictStore):
    """Mailboxes in a changelog-backed Faust table.

    ``keep`` updates only the worker's memory: a mailbox is written to the changelog when it
    opens and once its Result is out, not for every score filed in between — after a crash an
    open mailbox is restored and answered by its deadline with whatever arrives, and a closed
    one stays closed.

    ``save`` serializes the mailbox *now* (Faust's ``table[key] = value`` serializes it only
    when its buffer drains; by then the mailbox may have been closed in memory — CI caught
    that loss) and queues it; :meth:`flush` hands the queue to the producer, and the agent
    awaits it before moving to the next event. That order is what makes an offset commit safe:
    Faust flushes the producer before it commits, but its own send buffer (``send_soon``, what
    ``table[key] = value`` and ``send_changelog`` use) only "best effort", giving up after
    100 ms — a request whose offset was committed while its open mailbox still sat in that
    buffer was lost across a restart (CI caught that too). Sent with an explicit partition,
    a save also works outside any event (the deadline timer).
    """

    def __init__(self, table) -> None:
        super().__init__(table.data)
        self.table = table
        self.pending: list[tuple[int, str, bytes]] = []

    def save(self, request_id: str, box: dict) -> None:
        self.data[request_id] = box
        self.pending.append((box["partition"], request_id, json.dumps(box, separators=(",", ":")).encode()))

    async def flush(self) -> None:
        """Hand every queued snapshot to the producer (in order); returns once they are queued there."""
        pending, self.pending = self.pending, []
        topic = self.table.changelog_topic
        for partition, key, value in pending:
            await topic.send(key=key, value=value, partition=partition,
                             key_serializer=self.table.key_serializer, value_serializer="raw")
