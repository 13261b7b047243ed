"""Weighted vote (classification) or weighted average (regression) of the answering models.

Waits for every answering model that is not down, or the deadline, then combines what
arrived. Weights come from the spec (``weights: {xgb: 2, lr: 1}``; missing models weigh 1) or,
with ``weights: accuracy``, from each model's recent accuracy on feedback (0.5 until it has
labels; for regression ``1 / (1 + recent MAE)``). The Result names the heaviest model that
voted for the winning answer.

>>> vote = WeightedVote(["a", "b", "c"], weights={"a": 1, "b": 1, "c": 3})
>>> scores = {m: ScoreView(m, prediction=p) for m, p in (("a", 1), ("b", 1), ("c", 0))}
>>> decision = vote.decide(scores, deadline_at_ms=100, now_ms=10)
>>> decision.score.prediction, decision.score.model_id
(0, 'c')
"""

from __future__ import annotations

from dataclasses import replace
from typing import AbstractSet, Any, Mapping, Sequence

from pipelines.policies.base import Accuracy, Decision, Policy, ScoreView

__all__ = ["WeightedVote"]


class WeightedVote(Policy):
    name = "vote"

    def __init__(self, ranking: Sequence[str], weights: Any = None, accuracy: Accuracy | None = None,
                 task: str = "classification") -> None:
        super().__init__(ranking)
        self.weights = weights
        self.accuracy = accuracy
        self.task = task

    @classmethod
    def from_spec(cls, spec, ranking, accuracy, task, min_labels) -> "WeightedVote":
        return cls(ranking, spec.weights, accuracy, task)

    def decide(self, scores: Mapping[str, ScoreView], deadline_at_ms: float, now_ms: float,
               down: AbstractSet[str] = frozenset(), ranking: Sequence[str] | None = None) -> Decision | None:
        ranking = self.ranking if ranking is None else ranking
        waiting = [m for m in ranking if m not in scores and m not in down]
        if waiting and now_ms < deadline_at_ms:
            return None
        ok = [scores[m] for m in ranking if m in scores and scores[m].ok]
        if not ok:
            if waiting or any(m not in scores for m in ranking):
                missing = [m for m in ranking if m not in scores]
                return Decision("timeout", f"deadline passed with no answer from {', '.join(missing)}",
                                by_deadline=True, missing=tuple(waiting))
            failed = [f"{s.model_id} ({s.status}{': ' + s.error if s.error else ''})" for s in scores.values()]
            return Decision("error", f"every model failed: {', '.join(failed)}")
        weights = self._weights([s.model_id for s in ok])
        combine = self._vote if self.task == "classification" else self._average
        score, reason = combine(ok, weights)
        if waiting:
            reason += f"; deadline passed without {', '.join(waiting)}"
        return Decision("ok", reason, score, by_deadline=bool(waiting), missing=tuple(waiting))

    def _weights(self, model_ids: list[str]) -> dict[str, float]:
        if self.weights == "accuracy":
            known = self.accuracy() if self.accuracy else {}
            if self.task == "classification":
                return {m: known[m][0] if m in known else 0.5 for m in model_ids}
            return {m: 1.0 / (1.0 - known[m][0]) if m in known else 0.5 for m in model_ids}  # -MAE is stored
        given = self.weights or {}
        return {m: float(given.get(m, 1.0)) for m in model_ids}

    def _vote(self, ok: list[ScoreView], weights: dict[str, float]) -> tuple[ScoreView, str]:
        tally: dict[str, float] = {}
        for s in ok:
            tally[str(s.prediction)] = tally.get(str(s.prediction), 0.0) + weights[s.model_id]
        winner = max(tally, key=tally.get)
        voters = sorted((s for s in ok if str(s.prediction) == winner), key=lambda s: -weights[s.model_id])
        probabilities = _average_probabilities(ok, weights)
        score = replace(voters[0], probabilities=probabilities or voters[0].probabilities)
        parts = [f"{label} ← {', '.join(f'{s.model_id} ({weights[s.model_id]:.2f})' for s in ok if str(s.prediction) == label)}"
                 for label in sorted(tally, key=lambda k: -tally[k])]
        return score, f"weighted vote: {'; '.join(parts)}"

    def _average(self, ok: list[ScoreView], weights: dict[str, float]) -> tuple[ScoreView, str]:
        if sum(weights.values()) <= 0:  # every weight zero: a plain average
            weights = {s.model_id: 1.0 for s in ok}
        value = sum(float(s.prediction) * weights[s.model_id] for s in ok) / sum(weights.values())
        heaviest = max(ok, key=lambda s: weights[s.model_id])
        parts = ", ".join(f"{s.model_id} {float(s.prediction):.4g} ({weights[s.model_id]:.2f})" for s in ok)
        return replace(heaviest, prediction=value, probabilities=None), f"weighted average of {parts}"


def _average_probabilities(ok: list[ScoreView], weights: dict[str, float]) -> dict[str, float] | None:
    having = [s for s in ok if s.probabilities]
    total = sum(weights[s.model_id] for s in having)
    if not having or total <= 0:
        return None
    labels = {label for s in having for label in s.probabilities}
    return {label: sum(weights[s.model_id] * s.probabilities.get(label, 0.0) for s in having) / total
            for label in sorted(labels)}
