"""scikit-learn models, persisted with skops and loaded only with an allow-list of types.

Scoring a micro-batch of a few rows through scikit-learn costs its per-call checks and
dispatch, not arithmetic: ~270 µs for the demo's scaler + logistic regression, ~100 µs for its
depth-3 tree (2 rows; 2-core VM). For the models where ``predict_proba`` is a few array
operations — standard scalers followed by a binary logistic regression, a single-output
decision tree — :func:`compile_scorer` gives a numpy function instead, *verified at load*
against the estimator's own ``predict_proba`` on a probe of 256 rows (else scikit-learn scores).
"""

from __future__ import annotations

from typing import Callable

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
        self.scorer = compile_scorer(estimator, len(self.features)) if self._proba else None

    def _predict(self, matrix: np.ndarray) -> list[Outcome]:
        if not self._proba:
            return [Outcome(_plain(p), None, None) for p in self.estimator.predict(matrix)]
        proba = self.scorer(matrix) if self.scorer is not None else self.estimator.predict_proba(matrix)
        labels = self.estimator.classes_[proba.argmax(axis=1)]
        return [
            Outcome(_plain(label), dict(zip(self._classes, map(float, row))), None)
            for label, row in zip(labels, proba)
        ]


def compile_scorer(estimator, n_features: int) -> Callable[[np.ndarray], np.ndarray] | None:
    """A numpy ``predict_proba`` for ``estimator``, or ``None`` when it is not one of the shapes
    below or the probe disagrees with scikit-learn (by more than 1e-9)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    steps = [step for _, step in estimator.steps] if isinstance(estimator, Pipeline) else [estimator]
    *before, last = steps
    if not n_features or not all(isinstance(step, StandardScaler) for step in before):
        return None
    candidates: list[Callable[[np.ndarray], np.ndarray]] = []
    if isinstance(last, LogisticRegression) and len(last.classes_) == 2 and last.coef_.shape[0] == 1:
        weights, bias = last.coef_[0].astype(np.float64), float(last.intercept_[0])
        for scaler in reversed(before):  # w·(x - m)/s + b = (w/s)·x + (b - (w/s)·m)
            scale = scaler.scale_ if scaler.with_std and scaler.scale_ is not None else 1.0
            mean = scaler.mean_ if scaler.with_mean and scaler.mean_ is not None else 0.0
            weights = weights / scale
            bias = bias - float(np.dot(weights, np.broadcast_to(mean, weights.shape)))
        # binary: one-vs-rest gives expit(z); the multinomial form gives softmax([-z, z]) = expit(2z)
        candidates = [_logistic(weights, bias, 1.0), _logistic(weights, bias, 2.0)]
    elif isinstance(last, DecisionTreeClassifier) and not before and last.n_outputs_ == 1:
        candidates = [_tree(last)]
    if not candidates:
        return None
    probe = _probe(steps, n_features)
    try:
        expected = estimator.predict_proba(probe)
    except Exception:
        return None
    return next((c for c in candidates if np.allclose(c(probe), expected, rtol=0, atol=1e-9)), None)


def _logistic(weights: np.ndarray, bias: float, factor: float) -> Callable[[np.ndarray], np.ndarray]:
    from scipy.special import expit  # scikit-learn's own logistic function, without overflow warnings

    def proba(matrix: np.ndarray) -> np.ndarray:
        positive = expit(factor * (matrix @ weights + bias))
        return np.column_stack([1.0 - positive, positive])

    return proba


def _tree(tree) -> Callable[[np.ndarray], np.ndarray]:
    n_classes, predict = int(tree.n_classes_), tree.tree_.predict

    def proba(matrix: np.ndarray) -> np.ndarray:
        out = predict(np.ascontiguousarray(matrix, dtype=np.float32))[:, :n_classes]
        total = out.sum(axis=1, keepdims=True)
        total[total == 0.0] = 1.0
        return out / total

    return proba


def _probe(steps: list, n_features: int) -> np.ndarray:
    """256 rows around where the model looks: a scaler's mean ± 4 standard deviations, a tree's
    thresholds ± 1, else ±100 — and the exact thresholds (ties go the same way)."""
    rng = np.random.default_rng(0)
    low, high = np.full(n_features, -100.0), np.full(n_features, 100.0)
    scaler = next((s for s in steps if hasattr(s, "mean_") and s.mean_ is not None), None)
    if scaler is not None:
        low, high = scaler.mean_ - 4 * scaler.scale_, scaler.mean_ + 4 * scaler.scale_
    rows = rng.uniform(low, high, size=(256, n_features))
    tree = getattr(steps[-1], "tree_", None)
    if tree is not None:
        for column, (feature, threshold) in enumerate((f, t) for f, t in zip(tree.feature, tree.threshold) if f >= 0):
            rows[column % 256, feature] = threshold
            rows[(column + 128) % 256, feature] = np.nextafter(np.float32(threshold), np.float32(np.inf))
    return rows


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
