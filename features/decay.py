"""Decay of a model seen in its errors: River's ADWIN and Page-Hinkley on each model's error stream.

Fed from feedback (0 right / 1 wrong, or the absolute error for regression). ADWIN watches the
mean error in an adaptive window and fires when two sub-windows differ; Page-Hinkley fires on a
sustained increase. Either one is a decay alert for that model, and a reason in the pipeline's
decay verdict.

>>> watch = ErrorDrift()
>>> alerts = [a for i in range(3000) for a in watch.update("xgb", float(i >= 1500 and i % 2 == 0))]
>>> [(a["model_id"], a["cause"]) for a in alerts][:1]
[('xgb', 'adwin')]
"""

from __future__ import annotations

from river import drift

__all__ = ["ErrorDrift"]


class ErrorDrift:
    """An ADWIN and a Page-Hinkley detector per model."""

    def __init__(self, delta: float = 0.002, threshold: float = 50.0) -> None:
        self.delta = delta
        self.threshold = threshold
        self._detectors: dict[str, tuple] = {}
        self.seen: dict[str, int] = {}

    def update(self, model_id: str, error: float) -> list[dict]:
        """One labelled request's error; the alerts of any detector that fired."""
        if model_id not in self._detectors:
            self._detectors[model_id] = (drift.ADWIN(delta=self.delta), drift.PageHinkley(threshold=self.threshold))
        self.seen[model_id] = self.seen.get(model_id, 0) + 1
        alerts = []
        for name, detector in zip(("adwin", "page_hinkley"), self._detectors[model_id]):
            detector.update(error)
            if detector.drift_detected:
                alerts.append({"kind": "decay", "model_id": model_id, "cause": name,
                               "reason": f"{model_id}'s error rate changed ({name.replace('_', '-')}, after "
                                         f"{self.seen[model_id]} labels)",
                               "figures": {"labels": float(self.seen[model_id])}})
        return alerts
