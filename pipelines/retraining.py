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

A first retrain learns from ``min_rows`` rows: enough to beat a model of the old concept, not
always enough to reach the best model on the new one (the drift matrix saw retrained models stay
a few points below a River learner or a model trained on more rows). So the lineage is retrained
again each time the labelled requests since the change double, ``refinements`` times: its newest
version that is not a candidate still under evaluation, on all the rows since the same change
(the automatic retrain registers it only if it beats that version on the newest of them, and
the McNemar gate promotes it). A new decay in the lineage replaces these plans with its own.

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

With ``refinements``, the newest version is retrained again as the rows since the change double:

>>> plan = RetrainPlanner(ErrorDrift(), min_rows=300, cooldown_s=3600, clock=lambda: 0.0, refinements=2)
>>> plan.follow["xgb"] = _FollowUp(since_ms=2e6, rows=300, next_at=600, left=2)  # as a first job leaves it
>>> newest = {"xgb": "xgb-r1"}.get            # its first retrain was promoted
>>> def run(labels):                          # each job runs at once (agents/feedback.py: a process)
...     jobs = [j for _ in range(labels) for j in plan.on_label(newest)]
...     for job in jobs:
...         plan.finished(job)
...     return [(j.model_id, j.rows, j.refinement) for j in jobs]
>>> run(1000)                                 # the first job has not finished: nothing yet
[]
>>> plan.finished(RetrainJob("xgb", 2e6, 300, "adwin"))
>>> run(25)                                   # due since 600 rows: at the next check (every 25 labels)
[('xgb-r1', 1325, 1)]
>>> run(2000)                                 # when they doubled again
[('xgb-r1', 2650, 2)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from features.decay import ErrorDrift

__all__ = ["RetrainJob", "RetrainPlanner", "generation", "lineage", "retrainable"]

BATCH_FLAVOURS = ("sklearn", "xgboost")


def retrainable(model) -> bool:
    """Can ``model`` (a :class:`~pipelines.spec.ModelSpec`) be retrained in batch when it decays?"""
    return model.flavour in BATCH_FLAVOURS and model.role not in ("canary", "shadow", "retired")


def lineage(model_id: str) -> str:
    """The model a retrained version descends from: ``xgb`` for ``xgb``, ``xgb-r1``, ``xgb-r2``.

    >>> lineage("xgb-r12"), lineage("risk-r1-model"), lineage("lr")
    ('xgb', 'risk-r1-model', 'lr')
    """
    return re.sub(r"(-r\d+)+$", "", model_id)


def generation(model_id: str) -> int:
    """Which retrain of its lineage ``model_id`` is: 0 for the original, 2 for ``xgb-r2``."""
    found = re.search(r"-r(\d+)$", model_id)
    return int(found.group(1)) if found else 0


@dataclass
class RetrainJob:
    model_id: str
    since_ms: float  # the first request after the estimated change
    rows: int        # labelled requests since then, when the job became ready
    cause: str       # the detector that fired
    refinement: int = 0  # 0: the retrain a decay asked for; k: its k-th retrain as the rows doubled

    @property
    def why(self) -> str:
        if self.refinement:
            return f"was due for refinement {self.refinement} (the labelled requests since its change doubled)"
        return f"decayed ({self.cause})"


@dataclass
class _Pending:
    cause: str
    labels: int = 0


@dataclass
class _FollowUp:
    since_ms: float  # the change the lineage's retrains learn from
    rows: int        # labelled requests since then (counted from the first job's figure)
    next_at: int     # retrain again at this many
    left: int        # refinements still to come
    cause: str = "decay"
    running: bool = True  # its last job has not finished (see finished())


class RetrainPlanner:
    """Pending retrains of decayed models; :meth:`on_label` returns those that have become ready."""

    def __init__(self, drift: ErrorDrift, min_rows: int, cooldown_s: float, clock: Callable[[], float],
                 check_every: int = 25, refinements: int = 0) -> None:
        self.drift, self.min_rows, self.cooldown_ms = drift, min_rows, cooldown_s * 1000.0
        self.clock, self.check_every, self.refinements = clock, check_every, refinements
        self.pending: dict[str, _Pending] = {}
        self.follow: dict[str, _FollowUp] = {}  # lineage -> its next retrain on the same change
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
        self.follow.pop(lineage(model_id), None)  # a new change: the old one's plans are moot
        return True

    def on_label(self, newest: Callable[[str], str | None] = lambda root: root) -> list[RetrainJob]:
        """After each label: the pending retrains that now have ``min_rows`` labels after their
        change, and the refinements due. ``newest``: a lineage's version to retrain again (its
        newest live one), or ``None`` while a candidate of it is still under evaluation."""
        ready = []
        for root, plan in list(self.follow.items()):
            plan.rows += 1
            if plan.running or plan.rows < plan.next_at or plan.rows % self.check_every and plan.rows > plan.next_at:
                continue
            model_id = newest(root)
            if model_id is None:  # wait for the candidate's verdict (checked every check_every labels)
                continue
            refinement = self.refinements - plan.left + 1
            ready.append(RetrainJob(model_id, plan.since_ms, plan.rows, plan.cause, refinement))
            plan.left, plan.next_at, plan.running = plan.left - 1, 2 * plan.rows, True
            if not plan.left:
                del self.follow[root]
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
                if self.refinements:
                    self.follow[lineage(model_id)] = _FollowUp(since_ms, rows, 2 * rows, self.refinements, pending.cause)
        return ready

    def finished(self, job: RetrainJob) -> None:
        """``job`` ended (registered, rejected or failed): its lineage's next refinement may come.
        Until then none does: it would retrain the version the job is replacing, beside it."""
        plan = self.follow.get(lineage(job.model_id))
        if plan is not None:
            plan.running = False

    def forget(self, keep: Callable[[str], bool]) -> None:
        """Drop the pending retrains of models that can no longer be retrained (retired, demoted…)."""
        self.pending = {m: p for m, p in self.pending.items() if keep(m)}
