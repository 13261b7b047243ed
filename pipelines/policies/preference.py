"""The book's *preference schedule*: answer with the most preferred model that answered.

Return the top-preference model's answer the moment it arrives; otherwise the best-ranked
answer available once every higher-ranked model has failed (or is known to be down), or
once the deadline passes. No answer at the deadline is a timeout; every model failing
before it is an error. Canary and shadow scores are never in the ranking.

>>> policy = PreferenceSchedule(["lr", "xgb"])
>>> policy.decide({"xgb": ScoreView("xgb", prediction=1)}, deadline_at_ms=100, now_ms=10) is None
True
>>> policy.decide({"xgb": ScoreView("xgb", prediction=1)}, deadline_at_ms=100, now_ms=100).reason
'deadline passed; xgb was the best answer available (lr had not answered)'
"""

from __future__ import annotations

from typing import AbstractSet, Mapping, Sequence

from pipelines.policies.base import Decision, Policy, ScoreView

__all__ = ["PreferenceSchedule"]


class PreferenceSchedule(Policy):
    """Preference schedule over ``ranking`` (model ids, most preferred first)."""

    name = "preference"
    top = "the top preference"  # how the reason names the first model of a request's ranking

    def decide(
        self,
        scores: Mapping[str, ScoreView],
        deadline_at_ms: float,
        now_ms: float,
        down: AbstractSet[str] = frozenset(),
        ranking: Sequence[str] | None = None,
    ) -> Decision | None:
        """A decision now, or ``None`` to keep waiting.

        ``down`` holds models known to be down: nobody waits for them, but their
        answer is still taken when it comes. ``ranking``: this request's order (default: the
        policy's).
        """
        waiting: list[str] = []
        failed: list[str] = []
        for model_id in self.ranking if ranking is None else ranking:
            score = scores.get(model_id)
            if score is None:
                waiting.append(model_id)
            elif score.ok:
                return self._answer(score, waiting, failed, down, deadline_at_ms, now_ms)
            else:
                failed.append(f"{model_id} ({score.status}{': ' + score.error if score.error else ''})")
        if not waiting:
            return Decision("error", f"every model failed: {', '.join(failed)}")
        if now_ms >= deadline_at_ms:
            reason = f"deadline passed with no answer from {', '.join(waiting)}"
            return Decision("timeout", reason, by_deadline=True, missing=tuple(waiting))
        return None

    def _answer(self, score, waiting, failed, down, deadline_at_ms, now_ms) -> Decision | None:
        alive = [m for m in waiting if m not in down]
        if not alive:
            return Decision("ok", self._why(score.model_id, waiting, failed), score)
        if now_ms >= deadline_at_ms:
            reason = f"deadline passed; {score.model_id} was the best answer available ({', '.join(alive)} had not answered)"
            return Decision("ok", reason, score, by_deadline=True, missing=tuple(alive))
        return None


    def _why(self, model_id: str, down: list[str], failed: list[str]) -> str:
        if not down and not failed:
            return f"{model_id} is {self.top} and answered"
        return _fallen_back(model_id, down, failed)


def _fallen_back(model_id: str, down: list[str], failed: list[str]) -> str:
    parts = [f"failed: {', '.join(failed)}"] if failed else []
    parts += [f"down: {', '.join(down)}"] if down else []
    return f"{model_id} answered; higher-ranked models {'; '.join(parts)}"
