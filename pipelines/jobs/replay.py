"""Replay: archived traffic through a candidate model, offline, compared with what the live models said.

The decoy archived every request (``DATA_DIR/<p>/archive``) and the rendezvous every Score
it received (``DATA_DIR/<p>/scores``). A candidate scores the archived requests in the same
micro-batches the model groups use; its answers are compared with each live model's recorded
answers (agreement), with feedback where there is some (accuracy), and its batch latency is
measured. An external model cannot be run here: its report is built from its own recorded
Scores (it has been scoring live as a shadow or challenger).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

__all__ = ["ReplayReport", "recorded_report", "replay", "save_report"]


@dataclass
class ReplayReport:
    model_id: str
    model_version: str
    rows: int
    batch: int
    latency_ms: dict[str, float]               # p50 / p99 / max per micro-batch of ``batch`` rows
    agreement: dict[str, float]                # live model -> share of common requests answered alike
    compared: dict[str, int]                   # live model -> common requests
    accuracy: dict[str, float] = field(default_factory=dict)   # candidate and live models, vs feedback
    labelled: int = 0
    errors: int = 0
    predictions: dict[str, dict[str, int]] = field(default_factory=dict)  # model -> prediction -> count
    positive_rate: dict[str, float] = field(default_factory=dict)         # model -> mean p("1")
    since: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rows(archive: pd.DataFrame, features: tuple[str, ...]) -> list[dict]:
    columns = [c for c in archive.columns if c.startswith("f_")]
    names = [c[2:] for c in columns]
    frame = archive[columns].astype(object).where(archive[columns].notna(), None)
    rows = [dict(zip(names, values)) for values in frame.itertuples(index=False, name=None)]
    return [{k: r.get(k) for k in features} for r in rows] if features else rows


def _compare(candidate: pd.DataFrame, scores: pd.DataFrame, feedback: Mapping[str, Any] | None, model_id: str):
    """Agreement with each live model and accuracy on feedback; ``candidate`` has request_id, prediction."""
    live = scores[(scores["status"] == "ok") & (scores["model_id"] != model_id)]
    merged = live.merge(candidate[["request_id", "prediction"]], on="request_id", suffixes=("", "_candidate"))
    agreement, compared = {}, {}
    for other, group in merged.groupby("model_id"):
        compared[other] = int(len(group))
        agreement[other] = float((group["prediction"] == group["prediction_candidate"]).mean())
    accuracy, labelled = {}, 0
    if feedback:
        labels = pd.Series({rid: str(label) for rid, label in feedback.items()}, name="label")
        mine = candidate.set_index("request_id")["prediction"].dropna()
        common = mine.index.intersection(labels.index)
        labelled = int(len(common))
        if labelled:
            accuracy[model_id] = float((mine.loc[common] == labels.loc[common]).mean())
            for other, group in live.groupby("model_id"):
                theirs = group.set_index("request_id")["prediction"]
                both = theirs.index.intersection(labels.index)
                if len(both):
                    accuracy[other] = float((theirs.loc[both] == labels.loc[both]).mean())
    return agreement, compared, accuracy, labelled


def _distributions(candidate: pd.DataFrame, scores: pd.DataFrame, model_id: str):
    frames = {model_id: candidate}
    for other, group in scores[scores["status"] == "ok"].groupby("model_id"):
        if other != model_id:
            frames[other] = group
    predictions = {m: {str(k): int(v) for k, v in f["prediction"].value_counts().sort_index().items()}
                   for m, f in frames.items()}
    positive = {m: float(f["probability"].mean()) for m, f in frames.items() if f["probability"].notna().any()}
    return predictions, positive


def replay(model, archive: pd.DataFrame, scores: pd.DataFrame, feedback: Mapping[str, Any] | None = None,
           batch: int = 64, since: str | None = None, progress=None) -> tuple[ReplayReport, pd.DataFrame]:
    """Score ``archive`` (see :func:`tables.archive.read_archive`) with a loaded ``model``."""
    rows = _rows(archive, tuple(model.features))
    ids = archive["request_id"].tolist()
    out: list[dict] = []
    timings: list[float] = []
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        began = time.perf_counter()
        outcomes = model.score_batch(chunk)
        timings.append((time.perf_counter() - began) * 1000.0)
        for rid, (prediction, probabilities, error) in zip(ids[start:start + batch], outcomes):
            out.append({"request_id": rid, "prediction": None if prediction is None else str(prediction),
                        "probability": (probabilities or {}).get("1"), "error": error})
        if progress:
            progress(len(chunk))
    candidate = pd.DataFrame(out, columns=["request_id", "prediction", "probability", "error"])
    agreement, compared, accuracy, labelled = _compare(candidate, scores, feedback, model.spec.id)
    predictions, positive = _distributions(candidate, scores, model.spec.id)
    report = ReplayReport(
        model_id=model.spec.id, model_version=model.spec.version, rows=len(candidate), batch=batch,
        latency_ms=_quantiles(timings), agreement=agreement, compared=compared, accuracy=accuracy,
        labelled=labelled, errors=int(candidate["error"].notna().sum()), predictions=predictions,
        positive_rate=positive, since=since,
    )
    return report, candidate


def recorded_report(model_id: str, version: str, scores: pd.DataFrame, feedback: Mapping[str, Any] | None = None,
                    since: str | None = None) -> tuple[ReplayReport, pd.DataFrame]:
    """The same comparison from a model's own recorded Scores (external models, already live)."""
    mine = scores[scores["model_id"] == model_id]
    candidate = mine[mine["status"] == "ok"][["request_id", "prediction", "probability"]].copy()
    agreement, compared, accuracy, labelled = _compare(candidate, scores, feedback, model_id)
    predictions, positive = _distributions(candidate, scores, model_id)
    report = ReplayReport(
        model_id=model_id, model_version=version, rows=len(candidate), batch=1,
        latency_ms=_quantiles(mine["latency_ms"].dropna().tolist()), agreement=agreement, compared=compared,
        accuracy=accuracy, labelled=labelled, errors=int((mine["status"] != "ok").sum()),
        predictions=predictions, positive_rate=positive, since=since,
    )
    return report, candidate


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    array = np.asarray(values)
    return {"p50": float(np.percentile(array, 50)), "p99": float(np.percentile(array, 99)), "max": float(array.max())}


def save_report(report: ReplayReport, candidate: pd.DataFrame, directory: Path) -> Path:
    """``<model>-<time>.json`` (the comparison) and ``.csv`` (the candidate's answer per request)."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"{report.model_id}-{time.strftime('%Y%m%dT%H%M%S')}"
    stem.with_suffix(".json").write_text(json.dumps(report.to_dict(), indent=2))
    candidate.to_csv(stem.with_suffix(".csv"), index=False)
    return stem.with_suffix(".json")
