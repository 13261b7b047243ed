"""The reference profile: what the training population looked like, per feature.

Built once from the training data (``rendezvous profile``): for each feature its kind
(numeric or categorical), null fraction, quantile range, decile bin edges with the reference
share in each bin (for PSI), a sample of values (for Kolmogorov–Smirnov) or the category
frequencies (for chi-square and Jensen–Shannon). From it, a Great Expectations suite
(:func:`build_suite`): column presence and type, values within the 0.1–99.9% quantile range,
null fraction, allowed categories.

Stored under ``DATA_DIR/<pipeline>/profiles/<training data SHA-256>/`` (``profile.json``,
``suite.json``) — the same SHA-256 the registry records for models trained on that data — and
``profiles/current`` names the one live monitors use.

>>> import pandas as pd
>>> profile = build_profile(pd.DataFrame({"age": range(100), "car": ["a", "b"] * 50}), ["age", "car"])
>>> profile["features"]["age"]["kind"], profile["features"]["car"]["categories"]
('numeric', {'a': 0.5, 'b': 0.5})
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

__all__ = ["build_profile", "build_suite", "category", "current_profile", "save_profile"]

SAMPLE = 2000             # values kept per numeric feature for KS
MAX_CATEGORIES = 25       # whole numbers with more distinct values than this are measures, not codes


def _kind(series: pd.Series) -> str:
    """Categorical: text, booleans, or whole numbers with at most ``MAX_CATEGORIES`` values (codes)."""
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        return "categorical"
    values = series.dropna().to_numpy(dtype=float)
    if len(values) and np.all(values == np.round(values)) and len(np.unique(values)) <= MAX_CATEGORIES:
        return "categorical"
    return "numeric"


def category(value: Any) -> str:
    """One spelling per category: ``3``, ``3.0`` and ``"3"`` are the same code."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, float, np.integer, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def build_profile(frame: pd.DataFrame, features: Sequence[str], seed: int = 0) -> dict[str, Any]:
    """The reference of every feature in ``features`` from the training ``frame``."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"rows": int(len(frame)), "features": {}}
    for name in features:
        if name not in frame.columns:
            raise ValueError(f"the training data has no column {name!r} (it has {sorted(frame.columns)})")
        series = frame[name]
        values = series.dropna()
        entry: dict[str, Any] = {"kind": _kind(series), "null_fraction": float(series.isna().mean()),
                                 "dtype": str(series.dtype)}
        if entry["kind"] == "numeric":
            numbers = values.astype(float).to_numpy()
            edges = np.unique(np.quantile(numbers, np.linspace(0, 1, 11)))
            counts = np.histogram(numbers, bins=edges)[0] if len(edges) > 1 else np.array([len(numbers)])
            entry.update(min=float(np.quantile(numbers, 0.001)), max=float(np.quantile(numbers, 0.999)),
                         mean=float(numbers.mean()), std=float(numbers.std()), edges=edges.tolist(),
                         shares=(counts / max(counts.sum(), 1)).tolist(),
                         sample=rng.choice(numbers, min(SAMPLE, len(numbers)), replace=False).tolist(),
                         distinct=int(len(np.unique(numbers))))
        else:
            shares = values.map(category).value_counts(normalize=True)
            entry["categories"] = {str(k): float(v) for k, v in shares.items()}
        out["features"][name] = entry
    return out


def build_suite(profile: dict[str, Any], name: str):
    """A GX ExpectationSuite from ``profile``: presence, type, range, nulls, allowed categories."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=name)
    for column, entry in profile["features"].items():
        suite.add_expectation(gx.expectations.ExpectColumnToExist(column=column))
        suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(
            column=column, mostly=max(0.0, 1.0 - entry["null_fraction"] - 0.01)))
        if entry["kind"] == "numeric":
            suite.add_expectation(gx.expectations.ExpectColumnValuesToBeInTypeList(
                column=column, type_list=["float64", "int64", "float32", "int32", "float", "int"]))
            suite.add_expectation(gx.expectations.ExpectColumnValuesToBeBetween(
                column=column, min_value=entry["min"], max_value=entry["max"], mostly=0.99))
        else:
            numeric_codes = entry["dtype"].startswith(("float", "int"))
            codes = [float(k) for k in entry["categories"]] if numeric_codes else sorted(entry["categories"])
            suite.add_expectation(gx.expectations.ExpectColumnValuesToBeInSet(column=column, value_set=codes, mostly=0.99))
    return suite


def save_profile(profile: dict[str, Any], suite_json: dict, folder: Path, data: bytes) -> Path:
    """Write ``profile`` and its suite under ``folder/<sha256 of data>/`` and make it current."""
    sha = hashlib.sha256(data).hexdigest()
    target = Path(folder) / sha
    target.mkdir(parents=True, exist_ok=True)
    (target / "profile.json").write_text(json.dumps({**profile, "training_data_sha256": sha}))
    (target / "suite.json").write_text(json.dumps(suite_json, indent=2, default=str))
    (Path(folder) / "current").write_text(sha)
    return target


def current_profile(folder: Path) -> dict[str, Any] | None:
    """The profile live monitors use (``None`` before ``rendezvous profile`` ran)."""
    pointer = Path(folder) / "current"
    if not pointer.exists():
        return None
    return json.loads((Path(folder) / pointer.read_text().strip() / "profile.json").read_text())
