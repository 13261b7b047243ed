"""When to retrain, and from which data: decay alerts of the core's detectors become retrain jobs.

A model's error detectors (``features/decay.py``) fire a few dozen labels after its error rate
changed. Retraining then, on everything archived, teaches the old concept again: issue 19 saw a
retrained XGBoost learn 5,436 rows, mostly from before the change, and score exactly like the
model it replaced. So a decay opens a *pending* retrain for that model, and the job is only
ready once ``min_rows`` labelled requests came after the change — placed by the error history's
change-point estimate, re-estimated as labels arrive (it sharpens with them), and never before
half of them came after the detection. The job names the
model and the change's time: the retrain learns from the requests since then, nothing older
(``Lifecycle.retrain(since=...)``).

Every decayed model is retrained that can be in batch (scikit-learn, XGBoost) and is not the
canary (the stable baseline) or a candidate already under evaluation (a shadow); a model is
retrained at most once per ``cooldown_s``.

>>> from features.decay import ErrorDrift
>>> watch = ErrorDrift()
>>> plan = RetrainPlanner(watch, min_rows=300, cooldown_s=3600, clock=lambda: 0.0)
>>> jobs = []
>>> for i in range(4000):
...     error = float(i % 10 == 0) if i < 2000 else float(i % 2 == 0)    # 10 % wrong, then 50 %
...     for alert in watch.update("xgb", error, at_ms=1000.0 * i):
...         _ = plan.on_decay(alert, retrainable=True)
...     jobs += plan.on_label()
>>> [(job.model_id, job.since_ms, job.rows >= 300) for job in jobs]
[('xgb', 2000000.0, True)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from features.decay import ErrorDrift

__all__ = ["RetrainJob", "RetrainPlanner", "retrainable"]

BATCH_FLAVOURS = ("sklearn", "xgboost")


def retrainable(model) -> bool:
    """Can ``model`` (a :class:`~pipelines.spec.ModelSpec`) be retrained in batch when it decays?"""
    return model.flavour in BATCH_FLAVOURS and model.role not in ("canary", "shadow", "retired")


@dataclass
class RetrainJob:
    model_id: str
    since_ms: float  # the first request after the estimated change
    rows: int        # labelled requests since then, when the job became ready
    cause: str       # the detector that fired


@dataclass
class _Pending:
    cause: str
    labels: int = 0


class RetrainPlanner:
    """Pending retrains of decayed models; :meth:`on_label` returns those that have become ready."""

    def __init__(self, drift: ErrorDrift, min_rows: int, cooldown_s: float, clock: Callable[[], float],
                 check_every: int = 25) -> None:
        self.drift, self.min_rows, self.cooldown_ms = drift, min_rows, cooldown_s * 1000.0
        self.clock, self.check_every = clock, check_every
        self.pending: dict[str, _Pending] = {}
        self.started: dict[str, float] = {}  # model -> when its last job became ready (ms)
        self.cuts: dict[str, float] = {}     # model -> the change its last job learned from (ms)

    def on_decay(self, alert: dict, retrainable: bool) -> bool:
        """A decay alert of the core's detectors: a pending retrain for its model (True), unless it
        cannot be retrained, already waits, or was retrained less than ``cooldown_s`` ago."""
        model_id = alert.get("model_id")
        if alert.get("kind") != "decay" or not model_id or not retrainable or model_id in self.pending:
            return False
        last = self.started.get(model_id)
        if last is not None and self.clock() - last < self.cooldown_ms:
            return False
        self.pending[model_id] = _Pending(alert.get("cause", "decay"))
        return True

    def on_label(self) -> list[RetrainJob]:
        """After each label: the pending retrains that now have ``min_rows`` labels after their change."""
        ready = []
        for model_id, pending in list(self.pending.items()):
            pending.labels += 1
            # a placement from a few dozen labels after the detection can pick an older, smaller change
            # (measured: 514 requests early, half the retrain set before the change): wait for half
            # the rows after the detection itself first
            if pending.labels % self.check_every or pending.labels < self.min_rows // 2:
                continue
            # the change after the one its last retrain learned from (a history may hold both)
            since_ms, rows = self.drift.change_point(model_id, self.cuts.get(model_id))
            if rows >= self.min_rows:
                del self.pending[model_id]
                self.started[model_id], self.cuts[model_id] = self.clock(), since_ms
                ready.append(RetrainJob(model_id, since_ms, rows, pending.cause))
        return ready

    def forget(self, keep: Callable[[str], bool]) -> None:
        """Drop the pending retrains of models that can no longer be retrained (retired, demoted…)."""
        self.pending = {m: p for m, p in self.pending.items() if keep(m)}
