"""The batch-scoring interface every flavour implements, and artifact verification."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from pipelines.spec import ModelSpec

__all__ = ["ArtifactError", "Model", "Outcome", "score_record", "sha256_of", "verify_artifact"]


class ArtifactError(RuntimeError):
    """A model artifact is missing, tampered with, or not safe to load."""


class Outcome(NamedTuple):
    prediction: Any
    probabilities: dict[str, float] | None
    error: str | None


def score_record(spec: ModelSpec, request_id: str, outcome: "Outcome", latency_ms: float) -> dict:
    """The Score (``schemas/avro/Score.avsc``) of one model's outcome for one request."""
    prediction, probabilities, error = outcome
    return {"request_id": request_id, "model_id": spec.id, "model_version": spec.version, "role": spec.role,
            "prediction": prediction, "probabilities": probabilities, "latency_ms": latency_ms,
            "status": "error" if error else "ok", "error": error}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_artifact(spec: ModelSpec) -> bytes:
    """The artifact's bytes, read once; refused if missing, without a recorded SHA-256, or different.

    Loaders parse exactly these bytes, so nothing can swap the file between check and load.
    """
    if spec.artifact is None or not spec.artifact.exists():
        raise ArtifactError(f"model {spec.id}: artifact {spec.artifact} does not exist")
    if not spec.sha256:
        raise ArtifactError(f"model {spec.id}: no sha256 recorded in the spec; refusing to load unverified bytes")
    data = spec.artifact.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != spec.sha256:
        raise ArtifactError(
            f"model {spec.id}: artifact {spec.artifact} has SHA-256 {actual}, the spec records {spec.sha256}; refusing to load it"
        )
    return data


class Model:
    """A loaded model: turns feature dicts into a matrix in the spec's feature order and scores it."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.features = spec.features

    def score_batch(self, rows: Sequence[Mapping[str, Any]]) -> list[Outcome]:
        """One outcome per row; a row the model cannot take gets an error, not the whole batch."""
        matrix = np.empty((len(rows), len(self.features)), dtype=np.float64)
        outcomes: list[Outcome | None] = [None] * len(rows)
        good: list[int] = []
        for i, row in enumerate(rows):
            problem = self._fill(matrix[i], row)
            if problem:
                outcomes[i] = Outcome(None, None, problem)
            else:
                good.append(i)
        if good:
            for i, outcome in zip(good, self._predict(matrix[good])):
                outcomes[i] = outcome
        return outcomes  # type: ignore[return-value]

    def _fill(self, out: np.ndarray, row: Mapping[str, Any]) -> str | None:
        for j, name in enumerate(self.features):
            value = row.get(name)
            if value is None or isinstance(value, (str, bool)):
                return f"feature '{name}' is {'missing' if value is None else repr(value)}; {self.spec.id} needs a number"
            out[j] = value
            if not math.isfinite(out[j]):
                return f"feature '{name}' is not finite"
        return None

    def _predict(self, matrix: np.ndarray) -> list[Outcome]:  # pragma: no cover - abstract
        raise NotImplementedError
