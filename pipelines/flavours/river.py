"""River online models, pickled — loaded only from the registry, after the SHA-256 matched.

Pickle can run code, so a River artifact is trusted exactly as far as the registry is: it is
never taken from a Kafka message, and :func:`pipelines.flavours.load_model` verifies the
bytes against the SHA-256 recorded when it was registered before this module unpickles them.
"""

from __future__ import annotations

import pickle
from collections import deque
from typing import Any, Mapping, Sequence

from river import base, drift, metrics, utils

from pipelines.flavours.base import ArtifactError, Model, Outcome
from pipelines.promotion import beats
from pipelines.spec import LearningSpec, ModelSpec

__all__ = ["RiverModel", "load", "save"]

TAKE_OVER = 0.99  # confidence that the fresh copy does better (McNemar's exact test, as promotions use)
TRIAL = 25        # × grace: examples a waiting copy learns beside the learner before it is dropped


class RiverModel(Model):
    """Scores row by row (River's ``predict_proba_one`` costs ~2 µs; no matrix needed) and learns
    from labelled examples one at a time, in the order they come.

    ``metric`` is River's progressive validation of the learner: every example is predicted
    *before* it is learned (what ``river.evaluate.progressive_val_score`` does), over a rolling
    window — Accuracy for classifiers, MAE for regressors.

    When those errors rise (ADWIN), the spec's ``learning.adapt`` says what happens: a fresh copy
    (River's ``clone()``: same hyperparameters, nothing learned) grows beside the learner and takes
    over once it does better on the last ``grace`` examples where the two differ, by McNemar's
    exact test at 99 % (``background``); the one it replaced then stays beside it on the same
    terms, and whichever waits is dropped after ``25 × grace`` examples without winning. Or the
    fresh copy replaces it at once (``reset``). A learner that adapts by itself (a Hoeffding
    *adaptive* tree swaps subtrees) is seldom replaced: BENCHMARKS.md, *online learners*.
    """

    def __init__(self, spec: ModelSpec, model, window: int = 500, learning: LearningSpec | None = None) -> None:
        super().__init__(spec)
        self.model = model
        self._proba = hasattr(model, "predict_proba_one")
        self.classifier = isinstance(getattr(model, "_last_step", model), base.Classifier)
        self._binary = self.classifier and not getattr(model, "_multiclass", False)
        self.metric = utils.Rolling(metrics.Accuracy if self.classifier else metrics.MAE, window_size=window)
        self.learned = 0
        self.adapt(learning or LearningSpec())

    def adapt(self, learning: LearningSpec) -> None:
        """How to react when its own error rate drifts (the spec's ``learning`` section)."""
        self.learning = learning
        self._detector = drift.ADWIN(delta=learning.delta)
        self.fresh = None                 # the copy grown in the background since the last drift
        self._errors: deque = deque()     # the last `grace` examples where one of the two did better: the fresh one?
        self._trial = 0                   # examples the fresh copy has learned
        self.drifts, self.replaced = 0, 0

    def learn(self, row: Mapping[str, Any], label: Any) -> bool:
        """Predict, score the prediction, then ``learn_one``; False if the row lacks a feature. A
        drift in its own errors resets or replaces the learner (:meth:`adapt`)."""
        x = {name: row.get(name) for name in self.features} if self.features else dict(row)
        if any(value is None or isinstance(value, str) for value in x.values()):
            return False
        y = self._target(label)
        prediction = self.model.predict_one(x)
        if prediction is not None:
            self.metric.update(y, prediction)
        self.model.learn_one(x, y)
        self.learned += 1
        if self.learning.adapt != "none" and prediction is not None:
            self._watch(x, y, self._error(prediction, y))
        return True

    def _error(self, prediction, y) -> float:
        if prediction is None:
            return 1.0 if self.classifier else 0.0
        return float(prediction != y) if self.classifier else abs(float(prediction) - float(y))

    def _watch(self, x: dict, y, error: float) -> None:
        if self.fresh is not None:
            mine = self._error(self.fresh.predict_one(x), y)
            self.fresh.learn_one(x, y)
            self._trial += 1
            if mine != error:  # a discordant example: only one of the two did better
                self._errors.append(mine < error)
                if len(self._errors) > self.learning.grace:
                    self._errors.popleft()
                fresh_only = sum(self._errors)
                if beats(len(self._errors) - fresh_only, fresh_only, TAKE_OVER)[0]:
                    # it takes over; the one it replaces keeps learning beside it for a trial of its own,
                    # and comes back if it proves better again (it may know what both concepts share)
                    self.model, self.fresh, self._errors, self._trial = self.fresh, self.model, deque(), 0
                    self.replaced += 1
            if self.fresh is not None and self._trial >= TRIAL * self.learning.grace:
                self.fresh = None  # it never proved better: the learner had adapted by itself
        before = self._detector.estimation
        self._detector.update(error)
        # ADWIN fires on any change of the mean: only more errors call for a new learner (a fresh
        # one that improves is a change too — reacting to it replaced a learner up to 6 times)
        if self._detector.drift_detected and self._detector.estimation > before:
            self.drifts += 1
            if self.learning.adapt == "reset":
                self.model = self.model.clone()
                self.replaced += 1
            elif self.fresh is None:
                self.fresh, self._errors, self._trial = self.model.clone(), deque(), 0

    def _target(self, label: Any):
        if not self.classifier:
            return float(label)
        if self._binary and str(label) in ("0", "1", "0.0", "1.0", "True", "False"):
            return str(label) in ("1", "1.0", "True")  # River's binary classifiers learn True/False
        return label

    def dump(self) -> bytes:
        """The learned state, for a checkpoint in the registry."""
        return pickle.dumps(self.model, protocol=pickle.HIGHEST_PROTOCOL)

    def score_batch(self, rows: Sequence[Mapping[str, Any]]) -> list[Outcome]:
        out = []
        for row in rows:
            x = {name: row.get(name) for name in self.features} if self.features else dict(row)
            missing = [name for name, value in x.items() if value is None]
            if missing:
                out.append(Outcome(None, None, f"feature '{missing[0]}' is missing; {self.spec.id} needs it"))
                continue
            if self._proba:
                proba = self.model.predict_proba_one(x)
                if proba:
                    label = max(proba, key=proba.get)
                    out.append(Outcome(_plain(label), {str(_plain(k)): float(v) for k, v in proba.items()}, None))
                    continue
            out.append(Outcome(_plain(self.model.predict_one(x)), None, None))
        return out


def _plain(value):
    """Numpy scalars to Python; River's binary True/False to 1/0, as the other flavours answer."""
    if isinstance(value, bool):
        return int(value)
    return value.item() if hasattr(value, "item") else value


def load(spec: ModelSpec, data: bytes) -> RiverModel:
    model = pickle.loads(data)  # verified bytes from the registry only (see module doc)
    module = type(model).__module__
    if not module.startswith("river."):
        raise ArtifactError(f"model {spec.id}: the pickle holds a {module}.{type(model).__name__}, not a River model")
    return RiverModel(spec, model)


def save(model, path) -> None:
    with open(path, "wb") as handle:
        pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)
