"""Best recent accuracy: the answer of the model that has been right most often lately.

Each request's ranking is the answering models sorted by their recent accuracy on feedback
(the score-state window); models without ``min_labels`` labels yet follow in preference order.
Then it is a preference schedule over that ranking: the best model's answer the moment it
arrives, the next best when it failed, the best available at the deadline.

>>> policy = BestRecent(["xgb", "lr"], accuracy=lambda: {"xgb": (0.71, 500), "lr": (0.93, 500)})
>>> policy.order({})
('lr', 'xgb')
"""

from __future__ import annotations

from typing import AbstractSet, Any, Mapping, Sequence

from pipelines.policies.base import Accuracy, _aside_last
from pipelines.policies.preference import PreferenceSchedule

__all__ = ["BestRecent"]


class BestRecent(PreferenceSchedule):
    name = "best_recent"
    top = "the most accurate lately"

    def __init__(self, ranking: Sequence[str], accuracy: Accuracy, min_labels: int = 50) -> None:
        super().__init__(ranking)
        self.accuracy = accuracy
        self.min_labels = min_labels

    @classmethod
    def from_spec(cls, spec, ranking, accuracy, task, min_labels) -> "BestRecent":
        return cls(ranking, accuracy, min_labels)

    def order(self, features: Mapping[str, Any], set_aside: AbstractSet[str] = frozenset()) -> tuple[str, ...]:
        known = {m: value for m, (value, n) in self.accuracy().items() if n >= self.min_labels}
        ranked = sorted(self.ranking, key=lambda m: (m not in known, -known.get(m, 0.0)))  # stable: ties keep preference
        return _aside_last(ranked, set_aside)
