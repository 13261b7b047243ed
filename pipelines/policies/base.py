"""What a policy sees (scores), what it says (a decision), and the interface every policy has."""

from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Any, Callable, Collection, Mapping, Sequence

__all__ = ["Decision", "Policy", "ScoreView"]


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


Accuracy = Callable[[], Mapping[str, tuple[float, int]]]  # model -> (recent accuracy, labels)


class Policy:
    """Every policy: an order of the answering models per request, a decision, learning from feedback.

    ``order`` runs when a request opens (its result is kept in the mailbox, so a restarted
    worker continues with the same order); ``decide`` after every score and at the deadline;
    ``learn`` when feedback for a request arrives, with every model's reward (1/0 for a
    correct/wrong class, minus the absolute error for a number).
    """

    name = "policy"

    def __init__(self, ranking: Sequence[str]) -> None:
        self.ranking = tuple(ranking)

    @classmethod
    def from_spec(cls, spec, ranking: Sequence[str], accuracy: "Accuracy", task: str, min_labels: int) -> "Policy":
        """Built from the spec's ``policy`` (a PolicySpec) — what ``pipelines/plugins.py`` registers."""
        return cls(ranking)

    def order(self, features: Mapping[str, Any], set_aside: AbstractSet[str] = frozenset()) -> tuple[str, ...]:
        """The ranking for one request; set-aside models go last (chosen only when nothing else answers)."""
        return _aside_last(self.ranking, set_aside)

    def decide(self, scores: Mapping[str, ScoreView], deadline_at_ms: float, now_ms: float,
               down: AbstractSet[str] = frozenset(), ranking: Sequence[str] | None = None) -> Decision | None:
        raise NotImplementedError

    def learn(self, ranking: Sequence[str], features: Mapping[str, Any], rewards: Mapping[str, float]) -> None:
        """Feedback for a request decided with ``ranking``; most policies learn nothing."""

    def warm(self, rewards: Mapping[str, Sequence[float]], models: Collection[str] | None = None) -> int:
        """Start from the recent rewards of ``models`` (default: the answering ones) in the score
        state restored after a restart; how many were used."""
        return 0


def _aside_last(ranking: Sequence[str], set_aside: AbstractSet[str]) -> tuple[str, ...]:
    if not set_aside:
        return tuple(ranking)
    return tuple([m for m in ranking if m not in set_aside] + [m for m in ranking if m in set_aside])
