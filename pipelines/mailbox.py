"""Mailboxes: one per request, filed with scores as they arrive, closed once with a decision.

A mailbox is a small JSON-able dict. The rendezvous (``pipelines/rendezvous.py``) keeps them in
a store: :class:`DictStore` here (tests, tools), a changelog-backed Faust table in a worker
(``tables/mailboxes.py``), so an open request survives a worker restart and a closed one stays
closed (late scores are counted, never re-emitted). The functions here are pure.

>>> box = new_mailbox(partition=2)
>>> open_mailbox(box, {"deadline_ms": None, "tenant": None, "reply_to": None, "sent_at": None},
...              now_ms=1000, default_deadline_ms=50)["deadline_at"]
1050
"""

from __future__ import annotations

from typing import Any, Mapping

from pipelines.policies import Decision, ScoreView
from schemas.codec import field_names

__all__ = ["DictStore", "close_mailbox", "file_score", "is_open", "new_mailbox", "open_mailbox", "result_record", "score_views"]

_SCORE_KEYS = tuple(k for k in field_names("Score") if k != "request_id")  # what a mailbox keeps of a Score
_SUMMARY_KEYS = field_names("Result", "scores")  # what a Result says of each


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
    """The Result of a decided mailbox; its reason names models set aside, and says so when the
    request itself never arrived (answered from its scores)."""
    score = decision.score
    reason = decision.reason
    if box["meta"].get("aside"):
        reason += f"; set aside: {', '.join(box['meta']['aside'])}"
    if box["meta"].get("orphan"):
        reason = f"the request never reached the rendezvous, answered from its scores: {reason}"
    return {
        "request_id": request_id,
        "prediction": score.prediction if score else None,
        "probabilities": dict(score.probabilities) if score and score.probabilities else None,
        "model_id": score.model_id if score else None,
        "model_version": score.model_version if score else None,
        "policy": policy,
        "reason": reason,
        "scores": [
            {k: s.get(k) for k in _SUMMARY_KEYS}
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
