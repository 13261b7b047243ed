"""Decay of a model seen in its errors: River's ADWIN on each model's error stream.

Fed from feedback (0 right / 1 wrong, or the absolute error for regression). ADWIN watches the
mean error in an adaptive window and fires when two sub-windows differ. Only a rise is decay (an
alert for that model, and a reason in the pipeline's decay verdict); a fall is reported as an
improvement. (Page-Hinkley ran beside it until measured: one-sided, at a delta that kept it quiet
on stationary streams, it was slower than ADWIN on every change tried and still raised false
alarms at high error rates, so it went.)

Where the change happened (what a retrain should learn from) is estimated from each model's
recent errors, not taken from ADWIN's window: after a detection ADWIN keeps whole buckets, and on
an abrupt change from 5 % to 40 % errors its window still reached 200–850 labels back before
the change (three seeds). :meth:`ErrorDrift.change_point` is the least-squares estimate of one
change in the mean (:func:`change_point`), which sharpens as labels arrive.

>>> watch = ErrorDrift()
>>> alerts = [a for i in range(3000) for a in watch.update("xgb", float(i >= 1500 and i % 2 == 0), at_ms=i)]
>>> [(a["model_id"], a["kind"], a["direction"]) for a in alerts][:1]
[('xgb', 'decay', 'up')]
>>> better = ErrorDrift()
>>> [a["kind"] for i in range(3000) for a in better.update("river", float(i < 1500 and i % 2 == 0))][:1]
['improvement']
>>> watch.change_point("xgb")
(1500, 1500)
"""

from __future__ import annotations

import itertools
from collections import deque

import numpy as np
from river import drift

__all__ = ["ErrorDrift", "change_point"]


def change_point(errors, edge: int = 10) -> int:
    """Index of the first element after the most likely single change in the mean of ``errors``
    (0 when there is none to speak of: fewer than 2 values or a constant sequence).

    The least-squares split: the one that maximises ``S_k² · n / (k (n − k))``, ``S_k`` the
    cumulative sum of deviations from the mean. (The bare ``|S_k|`` favours the middle: 48 labels
    after a change from 5 % to 50 % errors at the end of a 2,000-label window, it placed the
    change 39 labels off in the median of 20 seeds, 170 off with 30 labels; this, 1 off.) Splits
    leaving fewer than ``edge`` values on a side (or a quarter of a short sequence) are not
    considered: a lone outlier at an end is not a change."""
    x = np.asarray(errors, dtype=float)
    n = len(x)
    if n < 2 or np.ptp(x) == 0:
        return 0
    k = np.arange(1, n)
    excursion = np.cumsum(x - x.mean())[:-1]
    stat = excursion ** 2 * n / (k * (n - k))
    margin = max(1, min(edge, n // 4))
    stat[: margin - 1] = -1.0
    stat[n - margin:] = -1.0
    return int(np.argmax(stat)) + 1


class ErrorDrift:
    """An ADWIN detector per model, and the last ``history`` errors of each
    (with the time of their requests) to place a change.

    Only a *rise* of the error is decay. ADWIN is two-sided: when it cuts its window, the window it
    held until then (no change in it till now) is split where its mean most likely changed
    (:func:`change_point`), and the two sides say from what to what. A rise of at least
    ``min_rise`` is a ``decay`` alert; a fall is an ``improvement`` alert (a learner getting
    better, a fixed upstream feed), never decay; a smaller move (``min_rise``, in the error's own
    units) is no alert. ADWIN's ``delta`` is 1e-5, not River's 0.002: it kept ADWIN silent on
    200,000-label stationary error streams at 2–30 % errors (``tests/unit/test_quality.py``) and
    still flags a real change within a few dozen labels (``python -m benchmarks.alarms``,
    BENCHMARKS.md "False alarms on stationary controls").
    """

    def __init__(self, delta: float = 1e-5, history: int = 20_000, min_rise: float = 0.02) -> None:
        self.delta = delta
        self.min_rise = min_rise
        self._detectors: dict[str, drift.ADWIN] = {}
        self._history: dict[str, deque] = {}
        self.history = history
        self.seen: dict[str, int] = {}

    def update(self, model_id: str, error: float, at_ms: float = 0.0) -> list[dict]:
        """One labelled request's error (``at_ms``: when the request came); the alerts of any
        detector that fired (``kind`` ``decay`` or ``improvement``, ``direction`` up or down)."""
        if model_id not in self._detectors:
            self._detectors[model_id] = drift.ADWIN(delta=self.delta)
            self._history[model_id] = deque(maxlen=self.history)
        self.seen[model_id] = n = self.seen.get(model_id, 0) + 1
        history = self._history[model_id]
        history.append((at_ms, error))
        adwin = self._detectors[model_id]
        window = int(adwin.width) + 1  # ADWIN's window before this label, which held no change till now
        adwin.update(error)
        if not adwin.drift_detected:
            return []
        recent = np.array([e for _, e in itertools.islice(history, max(0, len(history) - window), len(history))])
        cut = change_point(recent)
        if cut == 0:
            return []
        before, after = float(recent[:cut].mean()), float(recent[cut:].mean())
        if abs(after - before) < self.min_rise:
            return []
        return [self._alert(model_id, before, after, n)]

    @staticmethod
    def _alert(model_id: str, before: float, after: float, labels: int) -> dict:
        rose = after > before
        if rose:
            reason = f"{model_id}'s error rose from {before:.3g} to {after:.3g} (adwin, after {labels} labels)"
        else:
            reason = (f"{model_id}'s error fell from {before:.3g} to {after:.3g} (adwin, after {labels} labels): "
                      "an improvement, not decay")
        return {"kind": "decay" if rose else "improvement", "model_id": model_id, "cause": "adwin",
                "direction": "up" if rose else "down", "reason": reason,
                "figures": {"labels": float(labels), "error_before": before, "error_after": after}}

    def change_point(self, model_id: str, since_ms: float | None = None) -> tuple[float, int]:
        """(time of the first request after the most likely change in ``model_id``'s error rate,
        labels seen since then) over its recent history — or only the part from ``since_ms`` on."""
        history = [(at, e) for at, e in self._history.get(model_id, ()) if since_ms is None or at >= since_ms]
        if not history:
            return (since_ms or 0.0), 0
        cut = change_point([e for _, e in history])
        return history[cut][0], len(history) - cut
