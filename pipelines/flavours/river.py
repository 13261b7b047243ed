"""River online models, pickled — loaded only from the registry, after the SHA-256 matched.

Pickle can run code, so a River artifact is trusted exactly as far as the registry is: it is
never taken from a Kafka message, and :func:`pipelines.flavours.load_model` verifies the
bytes against the SHA-256 recorded when it was registered before this module unpickles them.
"""

from __future__ import annotations

import pickle
from typing import Any, Mapping, Sequence

from river import base, metrics, utils

from pipelines.flavours.base import ArtifactError, Model, Outcome
from pipelines.spec import ModelSpec

__all__ = ["RiverModel", "load", "save"]


class RiverModel(Model):
    """Scores row by row (River's ``predict_proba_one`` costs ~2 µs; no matrix needed) and learns
    from labelled examples one at a time, in the order they come.

    ``metric`` is River's progressive validation of the learner: every example is predicted
    *before* it is learned (what ``river.evaluate.progressive_val_score`` does), over a rolling
    window — Accuracy for classifiers, MAE for regressors.
    """

    def __init__(self, spec: ModelSpec, model, window: int = 500) -> None:
        super().__init__(spec)
        self.model = model
        self._proba = hasattr(model, "predict_proba_one")
        self.classifier = isinstance(getattr(model, "_last_step", model), base.Classifier)
        self._binary = self.classifier and not getattr(model, "_multiclass", False)
        self.metric = utils.Rolling(metrics.Accuracy if self.classifier else metrics.MAE, window_size=window)
        self.learned = 0

    def learn(self, row: Mapping[str, Any], label: Any) -> bool:
        """Predict, score the prediction, then ``learn_one``; False if the row lacks a feature."""
        x = {name: row.get(name) for name in self.features} if self.features else dict(row)
        if any(value is None or isinstance(value, str) for value in x.values()):
            return False
        y = self._target(label)
        prediction = self.model.predict_one(x)
        if prediction is not None:
            self.metric.update(y, prediction)
        self.model.learn_one(x, y)
        self.learned += 1
        return True

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
