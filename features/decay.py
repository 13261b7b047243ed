"""Decay of a model seen in its errors: River's ADWIN and Page-Hinkley on each model's error stream.

Fed from feedback (0 right / 1 wrong, or the absolute error for regression). ADWIN watches the
mean error in an adaptive window and fires when two sub-windows differ; Page-Hinkley fires on a
sustained increase. Either one is a decay alert for that model, and a reason in the pipeline's
decay verdict.

Where the change happened (what a retrain should learn from) is estimated from each model's
recent errors, not taken from ADWIN's window: after a detection ADWIN keeps whole buckets, and on
an abrupt change from 5 % to 40 % errors its window still reached 200–850 labels back before
the change (three seeds). :meth:`ErrorDrift.change_point` is the least-squares estimate of one change in the mean
(the split that maximises the cumulative sum's excursion), which sharpens as labels arrive.

>>> watch = ErrorDrift()
>>> alerts = [a for i in range(3000) for a in watch.update("xgb", float(i >= 1500 and i % 2 == 0), at_ms=i)]
>>> [(a["model_id"], a["cause"]) for a in alerts][:1]
[('xgb', 'adwin')]
>>> watch.change_point("xgb")
(1500, 1500)
"""

from __future__ import annotations

from collections import deque

import numpy as np
from river import drift

__all__ = ["ErrorDrift", "change_point"]


def change_point(errors) -> int:
    """Index of the first element after the most likely single change in the mean of ``errors``
    (0 when there is none to speak of: fewer than 2 values or a constant sequence)."""
    x = np.asarray(errors, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0:
        return 0
    excursion = np.abs(np.cumsum(x - x.mean()))[:-1]
    return int(np.argmax(excursion)) + 1


class ErrorDrift:
    """An ADWIN and a Page-Hinkley detector per model, and the last ``history`` errors of each
    (with the time of their requests) to place a change."""

    def __init__(self, delta: float = 0.002, threshold: float = 50.0, history: int = 20_000) -> None:
        self.delta = delta
        self.threshold = threshold
        self._detectors: dict[str, tuple] = {}
        self._history: dict[str, deque] = {}
        self.history = history
        self.seen: dict[str, int] = {}

    def update(self, model_id: str, error: float, at_ms: float = 0.0) -> list[dict]:
        """One labelled request's error (``at_ms``: when the request came); the alerts of any
        detector that fired."""
        if model_id not in self._detectors:
            self._detectors[model_id] = (drift.ADWIN(delta=self.delta), drift.PageHinkley(threshold=self.threshold))
            self._history[model_id] = deque(maxlen=self.history)
        self.seen[model_id] = self.seen.get(model_id, 0) + 1
        self._history[model_id].append((at_ms, error))
        alerts = []
        for name, detector in zip(("adwin", "page_hinkley"), self._detectors[model_id]):
            detector.update(error)
            if detector.drift_detected:
                alerts.append({"kind": "decay", "model_id": model_id, "cause": name,
                               "reason": f"{model_id}'s error rate changed ({name.replace('_', '-')}, after "
                                         f"{self.seen[model_id]} labels)",
                               "figures": {"labels": float(self.seen[model_id])}})
        return alerts

    def change_point(self, model_id: str, since_ms: float | None = None) -> tuple[float, int]:
        """(time of the first request after the most likely change in ``model_id``'s error rate,
        labels seen since then) over its recent history — or only the part from ``since_ms`` on."""
        history = [(at, e) for at, e in self._history.get(model_id, ()) if since_ms is None or at >= since_ms]
        if not history:
            return (since_ms or 0.0), 0
        cut = change_point([e for _, e in history])
        return history[cut][0], len(history) - cut
