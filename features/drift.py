"""Drift of live values against the reference profile, per feature, and the share of requests
unlike the training population.

The test is chosen by sample size, as Evidently's defaults do: with at most 1,000 live values a
statistical test (Kolmogorov–Smirnov for numbers, chi-square for categories; drift when
p < 0.05, divided by the number of features tested together), above that a distance whose threshold does not shrink with n (PSI ≥ 0.2 for numbers,
Jensen–Shannon distance ≥ 0.1 for categories) — with many rows every test finds "significant"
but harmless differences. Every statistic is computed and reported; ``method`` says which one
decided.

>>> reference = {"kind": "numeric", "edges": [0.0, 5.0, 10.0], "shares": [0.5, 0.5],
...              "sample": [float(v % 10) for v in range(1000)], "min": 0.0, "max": 9.99}
>>> feature_drift(reference, [float(v % 10) for v in range(500)])["drifted"]
False
>>> feature_drift(reference, [9.0] * 500)["drifted"]
True
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from features.profile import category

__all__ = ["feature_drift", "psi", "unlike_share"]

SMALL = 1000
P_VALUE = 0.05
PSI_DRIFT = 0.2
JS_DRIFT = 0.1
_EPS = 1e-4


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two distributions over the same bins."""
    e = np.clip(np.asarray(expected, dtype=float), _EPS, None)
    a = np.clip(np.asarray(actual, dtype=float), _EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def feature_drift(reference: Mapping[str, Any], values: Sequence[Any], p_value: float = P_VALUE) -> dict[str, Any]:
    """Drift statistics of live ``values`` against one feature's reference.

    ``p_value``: the significance of the small-sample tests; a monitor testing many features at
    once divides 0.05 by their number (Bonferroni), or a stationary stream would "drift" in
    some feature most windows.
    """
    live = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not live:
        return {"method": "none", "drifted": False, "n": 0}
    if reference["kind"] == "numeric":
        return _numeric(reference, np.asarray(live, dtype=float), p_value)
    return _categorical(reference, [category(v) for v in live], p_value)


def _numeric(reference: Mapping[str, Any], live: np.ndarray, p_value: float) -> dict[str, Any]:
    edges = np.asarray(reference["edges"], dtype=float)
    clipped = np.clip(live, edges[0], edges[-1])  # out-of-range values land in the outer bins
    counts = np.histogram(clipped, bins=edges)[0] if len(edges) > 1 else np.array([len(live)])
    value_psi = psi(reference["shares"], counts / counts.sum())
    ks = stats.ks_2samp(np.asarray(reference["sample"], dtype=float), live)
    if len(live) <= SMALL:
        method, drifted, score = "ks", bool(ks.pvalue < p_value), float(ks.pvalue)
    else:
        method, drifted, score = "psi", value_psi >= PSI_DRIFT, value_psi
    return {"method": method, "drifted": drifted, "score": score, "psi": value_psi, "ks_statistic": float(ks.statistic),
            "ks_p_value": float(ks.pvalue), "n": int(len(live))}


def _categorical(reference: Mapping[str, Any], live: list[str], p_value: float) -> dict[str, Any]:
    expected = dict(reference["categories"])
    labels = sorted(set(expected) | set(live))
    counts = pd.Series(live).value_counts()
    observed = np.array([counts.get(k, 0) for k in labels], dtype=float)
    shares = np.array([expected.get(k, 0.0) for k in labels])
    js = float(jensenshannon(np.clip(shares, _EPS, None), np.clip(observed / observed.sum(), _EPS, None), base=2))
    expected_counts = np.clip(shares, _EPS, None)
    expected_counts = expected_counts / expected_counts.sum() * observed.sum()
    chi = stats.chisquare(observed, expected_counts)
    if len(live) <= SMALL:
        method, drifted, score = "chi_square", bool(chi.pvalue < p_value), float(chi.pvalue)
    else:
        method, drifted, score = "jensen_shannon", js >= JS_DRIFT, js
    unknown = float(sum(counts.get(k, 0) for k in labels if k not in expected) / len(live))
    return {"method": method, "drifted": drifted, "score": score, "jensen_shannon": js,
            "chi_square_p_value": float(chi.pvalue), "unknown_share": unknown, "n": len(live)}


def unlike_share(profile: Mapping[str, Any], frame: pd.DataFrame) -> float:
    """Share of requests with a feature outside the training range, an unseen category or a missing value."""
    if frame.empty:
        return 0.0
    unlike = np.zeros(len(frame), dtype=bool)
    for name, entry in profile["features"].items():
        if name not in frame.columns:
            unlike[:] = True
            continue
        column = frame[name]
        if entry["kind"] == "numeric":
            numbers = pd.to_numeric(column, errors="coerce")
            unlike |= (numbers.isna() | (numbers < entry["min"]) | (numbers > entry["max"])).to_numpy()
        else:
            unlike |= (~column.map(category).isin(entry["categories"])).to_numpy() | column.isna().to_numpy()
    return float(unlike.mean())
