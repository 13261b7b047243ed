"""What a policy sees (scores) and what it says (a decision)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["Decision", "ScoreView"]


@dataclass(frozen=True)
class ScoreView:
    """One model's score as the policy sees it."""

    model_id: str
    status: str = "ok"
    prediction: Any = None
    model_version: str = "1"
    role: str = "champion"
    latency_ms: float = 0.0
    probabilities: Mapping[str, float] | None = None
    error: str | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "ScoreView":
        return cls(
            model_id=record["model_id"], status=record["status"], prediction=record.get("prediction"),
            model_version=record.get("model_version", "1"), role=record.get("role", "champion"),
            latency_ms=float(record.get("latency_ms", 0.0)), probabilities=record.get("probabilities"),
            error=record.get("error"),
        )

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Decision:
    """The policy's verdict: ``status`` ok | timeout | error, the chosen score, and why."""

    status: str
    reason: str
    score: ScoreView | None = None
    by_deadline: bool = False
    missing: tuple[str, ...] = ()  # models waited for that had not answered by the deadline
