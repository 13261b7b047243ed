"""Automatic fallback: which models stop being chosen, and when they come back.

Three reasons set a model aside, each undone by its own recovery:

* **late** — it missed ``miss_limit`` deadlines in a row: nobody waits for it any more (without
  this a dead top-preference model would add the full deadline to every request); back the
  moment a score of it arrives before its request's deadline. (A score that comes after it is
  no sign of punctuality: when that brought a model back, a group running behind was set aside
  and back every few requests, two alerts each time — 541 in the first minutes of issue 24's
  control.)
* **errors** — ``error_limit`` error scores in a row; back at its next good score;
* **accuracy** — over at least ``min_labels`` labelled requests its recent accuracy is below
  the canary's by more than ``accuracy_margin``; back once within half that margin (the
  hysteresis keeps it from flapping).

A set-aside model still scores every request (so its accuracy keeps being measured) and is
still answered with when nothing better arrived; the policy just never prefers it. Every
switch is returned as an alert for ``{p}.alerts``.

>>> guard = Fallback(FallbackSpec(error_limit=2), miss_limit=2)
>>> guard.missed(["lr"]), [a["reason"] for a in guard.missed(["lr"])], sorted(guard.set_aside)
([], ['lr set aside: missed 2 deadlines in a row'], ['lr'])
>>> [a["kind"] for a in guard.scored("lr", "ok")], sorted(guard.set_aside)
(['recovered'], [])
"""

from __future__ import annotations

from typing import Iterable, Mapping

from pipelines.spec import FallbackSpec

__all__ = ["Fallback"]


class Fallback:
    """Per-model reasons to be set aside, and the alerts of every change."""

    def __init__(self, spec: FallbackSpec = FallbackSpec(), miss_limit: int = 3) -> None:
        self.spec = spec
        self.miss_limit = miss_limit
        self.reasons: dict[str, dict[str, str]] = {}  # model -> kind (late | errors | accuracy) -> why
        self._misses: dict[str, int] = {}
        self._errors: dict[str, int] = {}

    @property
    def down(self) -> set[str]:
        """Models not waited for (missed deadlines)."""
        return {m for m, why in self.reasons.items() if "late" in why}

    @property
    def set_aside(self) -> set[str]:
        """Models the policy does not choose while another answer is available."""
        return {m for m, why in self.reasons.items() if why}

    def missed(self, model_ids: Iterable[str]) -> list[dict]:
        """These models had not answered when a request's deadline passed."""
        alerts = []
        for model_id in model_ids:
            self._misses[model_id] = count = self._misses.get(model_id, 0) + 1
            if count >= self.miss_limit:
                alerts += self._set(model_id, "late", f"missed {count} deadlines in a row")
        return alerts

    def scored(self, model_id: str, status: str, punctual: bool = True) -> list[dict]:
        """A score of this model arrived (``status`` ok | error); ``punctual``: before its
        request's deadline."""
        alerts = []
        if punctual:
            self._misses[model_id] = 0
            alerts += self._clear(model_id, "late", "answered before the deadline again")
        if status == "error":
            self._errors[model_id] = count = self._errors.get(model_id, 0) + 1
            if count >= self.spec.error_limit:
                alerts += self._set(model_id, "errors", f"{count} errors in a row")
        else:
            self._errors[model_id] = 0
            alerts += self._clear(model_id, "errors", "scored without error again")
        return alerts

    def judge(self, accuracy: Mapping[str, tuple[float, int]], canary: str | None) -> list[dict]:
        """Compare every model's recent (accuracy, labelled count) with the canary's."""
        if canary is None or canary not in accuracy:
            return []
        base, base_n = accuracy[canary]
        if base_n < self.spec.min_labels:
            return []
        margin, alerts = self.spec.accuracy_margin, []
        for model_id, (value, n) in accuracy.items():
            if model_id == canary or n < self.spec.min_labels:
                continue
            why = f"recent accuracy {value:.3f} over {n} labels, canary {base:.3f}"
            if value < base - margin:
                alerts += self._set(model_id, "accuracy", f"{why}: below it by more than {margin:.3f}")
            elif value >= base - margin / 2:
                alerts += self._clear(model_id, "accuracy", why)
        return alerts

    def _set(self, model_id: str, kind: str, why: str) -> list[dict]:
        reasons = self.reasons.setdefault(model_id, {})
        if kind in reasons:
            return []
        reasons[kind] = why
        return [{"kind": "fallback", "model_id": model_id, "cause": kind, "reason": f"{model_id} set aside: {why}"}]

    def _clear(self, model_id: str, kind: str, why: str) -> list[dict]:
        reasons = self.reasons.get(model_id)
        if not reasons or kind not in reasons:
            return []
        del reasons[kind]
        return [{"kind": "recovered", "model_id": model_id, "cause": kind, "reason": f"{model_id} back: {why}"}]
