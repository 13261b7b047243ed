"""Batch retraining: a new version of a scikit-learn or XGBoost model from the archive joined with feedback.

The archive (every request exactly as the models saw it) joined with ``{p}.feedback`` gives
labelled rows in arrival order — all of them, or only those since a time: after a change in the
data, the requests before it teach the old concept (:func:`change_time` places the change from
the model's recorded Scores and the labels). The oldest ``1 - holdout`` train a fresh model with the current
one's hyperparameters (scikit-learn: ``clone`` of the estimator; XGBoost: its objective, the
depth of its trees and its number of rounds); the most recent ``holdout`` judge it against the current
champion. The candidate is then registered as a shadow (``pipelines/jobs/lifecycle.retrain``,
run by ``rendezvous retrain`` and by the quality worker on decay).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["RetrainResult", "change_time", "labelled_rows", "retrain"]


def labelled_rows(archive: pd.DataFrame, feedback: dict[str, Any], features: list[str],
                  since: pd.Timestamp | None = None) -> pd.DataFrame:
    """Archived requests that have a label, oldest first: the features' columns and ``label``
    (only the requests received at or after ``since``, if given)."""
    if archive.empty:
        return pd.DataFrame(columns=[*features, "label"])
    missing = [f for f in features if f"f_{f}" not in archive.columns]
    if missing:
        raise ValueError(f"the archive has no column for features {missing}; were these requests for this model?")
    frame = archive[archive["request_id"].isin(feedback.keys())].sort_values("received_at")
    if since is not None:
        frame = frame[frame["received_at"] >= since]
    out = frame[[f"f_{f}" for f in features]].set_axis(list(features), axis=1).astype(float)
    out["label"] = frame["request_id"].map(feedback).to_numpy()
    return out.dropna().reset_index(drop=True)


def change_time(scores: pd.DataFrame, archive: pd.DataFrame, feedback: dict[str, Any], model_id: str,
                task: str = "classification") -> tuple[pd.Timestamp | None, int]:
    """When ``model_id``'s error rate changed, from its recorded Scores joined with the labels
    (the single change in the mean of its errors, in the order the requests came: as the core's
    detectors place it, ``features/decay.py``): (the first request after it, labelled requests
    since). ``(None, 0)`` without any labelled Score of the model."""
    from features.decay import change_point

    mine = scores[(scores["model_id"] == model_id) & (scores["status"] == "ok")
                  & scores["request_id"].isin(feedback.keys())]
    if mine.empty or archive.empty:
        return None, 0
    times = archive.set_index("request_id")["received_at"]
    mine = mine[mine["request_id"].isin(times.index)].assign(at=lambda f: f["request_id"].map(times)).sort_values("at")
    if mine.empty:
        return None, 0
    labels = mine["request_id"].map(lambda r: feedback[r])
    if task == "regression":
        errors = (mine["prediction"].astype(float) - labels.astype(float)).abs().to_numpy()
    else:
        truth = labels.map(lambda v: str(int(v)) if isinstance(v, (bool, np.bool_)) else str(v))
        errors = (mine["prediction"].astype(str) != truth).astype(float).to_numpy()
    cut = change_point(errors)
    return mine["at"].iloc[cut], len(mine) - cut


@dataclass
class RetrainResult:
    artifact: bytes
    metrics: dict[str, float]
    training_data: bytes  # the labelled rows used, as CSV (its SHA-256 goes into the registry)


def retrain(current, rows: pd.DataFrame, holdout: float = 0.2, task: str = "classification",
            champion=None) -> RetrainResult:
    """Train a new version like ``current`` (a loaded flavour model) on ``rows``; judge it on the newest ``holdout``."""
    cut = int(len(rows) * (1 - holdout))
    train, test = rows.iloc[:cut], rows.iloc[cut:]
    if cut < 10 or len(test) < 10:
        raise ValueError(f"{len(rows)} labelled rows are too few to train on and hold out {holdout:.0%}")
    features = list(current.features)
    X, y = train[features].to_numpy(), _targets(train["label"], task)
    flavour = current.spec.flavour
    if flavour == "sklearn":
        artifact = _sklearn(current, X, y)
    elif flavour == "xgboost":
        artifact = _xgboost(current, X, y)
    else:
        raise ValueError(f"retrain trains scikit-learn and XGBoost models; {current.spec.id} is {flavour}"
                         + (" (River models learn online from feedback)" if flavour == "river" else ""))
    from pipelines.flavours import sklearn as sk_flavour, xgboost as xgb_flavour

    loader = sk_flavour.load if flavour == "sklearn" else xgb_flavour.load
    candidate = loader(current.spec, artifact)
    metrics = {"rows_train": float(len(train)), "rows_holdout": float(len(test)),
               "holdout": _metric(candidate, test, task)}
    for name, model in (("current_holdout", current), ("champion_holdout", champion)):
        if model is not None:
            metrics[name] = _metric(model, test, task)
    if task != "regression":  # the held-out rows paired, as the live gate pairs requests (McNemar)
        mine, theirs = _right(candidate, test, task), _right(champion if champion is not None else current, test, task)
        metrics["holdout_champion_only"] = float(np.sum(theirs & ~mine))
        metrics["holdout_candidate_only"] = float(np.sum(mine & ~theirs))
    return RetrainResult(artifact, metrics, rows.to_csv(index=False).encode())


def does_not_beat(metrics: dict[str, float], task: str = "classification", current: str = "the current model") -> str | None:
    """Why a retrained candidate does not beat the model it would replace on the held-out rows
    (``metrics`` of :func:`retrain`: accuracy must be higher, MAE lower; a tie does not beat), or
    ``None`` when it does or there is nothing to compare with."""
    new, old = metrics["holdout"], metrics.get("current_holdout")
    regression = task == "regression"
    if old is None or (new < old if regression else new > old):
        return None
    name = "MAE" if regression else "accuracy"
    return (f"its held-out {name} {new:.4f} does not beat {current}'s {old:.4f} on the {int(metrics['rows_holdout'])} "
            "newest labelled requests")


def _targets(labels: pd.Series, task: str) -> np.ndarray:
    if task == "regression":
        return labels.astype(float).to_numpy()
    return labels.map(lambda v: int(v) if isinstance(v, (bool, np.bool_)) else v).to_numpy()


def _right(model, test: pd.DataFrame, task: str) -> np.ndarray:
    """Per held-out row: whether ``model`` got it right (classification)."""
    rows = test[list(model.features)].to_dict("records")
    predictions = [outcome.prediction for outcome in model.score_batch(rows)]
    return np.array([str(p) == str(t) for p, t in zip(predictions, _targets(test["label"], task))])


def _metric(model, test: pd.DataFrame, task: str) -> float:
    """Accuracy (classification) or MAE (regression) of ``model`` on ``test``."""
    rows = test[list(model.features)].to_dict("records")
    predictions = [outcome.prediction for outcome in model.score_batch(rows)]
    if task == "regression":
        return float(np.mean([abs(float(p) - float(t)) for p, t in zip(predictions, test["label"])]))
    return float(np.mean([str(p) == str(t) for p, t in zip(predictions, _targets(test["label"], task))]))


def _sklearn(current, X, y) -> bytes:
    import skops.io as sio
    from sklearn.base import clone

    return sio.dumps(clone(current.estimator).fit(X, y))


def _xgboost(current, X, y) -> bytes:
    """Same objective, depth of its deepest tree and number of rounds: an XGBoost model file keeps
    no training parameters (a loaded booster's config shows the defaults), so that is what it tells."""
    import xgboost as xgb

    booster = current.booster
    objective = booster.attr("objective") or json.loads(booster.save_config())["learner"]["objective"]["name"]
    depth = max((len(line) - len(line.lstrip("\t")) for tree in booster.get_dump() for line in tree.splitlines()
                 if "leaf=" in line), default=6)
    params = {"objective": objective, "max_depth": max(depth, 1), "nthread": 2}
    trained = xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=booster.num_boosted_rounds())
    return bytes(trained.save_raw("ubj"))
