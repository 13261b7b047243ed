"""scikit-learn models, persisted with skops and loaded only with an allow-list of types."""

from __future__ import annotations

import numpy as np
import skops.io as sio

from pipelines.flavours.base import ArtifactError, Model, Outcome
from pipelines.spec import ModelSpec

__all__ = ["SklearnModel", "load", "save"]

# Types a skops file may contain beyond skops' own defaults; anything else is refused.
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")


class SklearnModel(Model):
    def __init__(self, spec: ModelSpec, estimator) -> None:
        super().__init__(spec)
        self.estimator = estimator
        self._classes = [str(c) for c in getattr(estimator, "classes_", [])]
        self._proba = hasattr(estimator, "predict_proba") and bool(self._classes)

    def _predict(self, matrix: np.ndarray) -> list[Outcome]:
        if not self._proba:
            return [Outcome(_plain(p), None, None) for p in self.estimator.predict(matrix)]
        proba = self.estimator.predict_proba(matrix)
        labels = self.estimator.classes_[proba.argmax(axis=1)]
        return [
            Outcome(_plain(label), dict(zip(self._classes, map(float, row))), None)
            for label, row in zip(labels, proba)
        ]


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def load(spec: ModelSpec, data: bytes) -> SklearnModel:
    untrusted = sio.get_untrusted_types(data=data)
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise ArtifactError(f"model {spec.id}: skops file holds untrusted types {refused}; refusing to load it")
    estimator = sio.loads(data, trusted=untrusted)
    return SklearnModel(spec, estimator)


def save(estimator, path) -> None:
    sio.dump(estimator, path)
