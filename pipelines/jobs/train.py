"""Train the demo's models on River's synthetic Agrawal loan-application stream and write a spec.

Three real models in the spec, none downloaded: XGBoost (champion), a logistic regression
(challenger) and a shallow decision tree as the canary (a stable, simple baseline). Beside
them, candidates to stage with ``rendezvous models register``: a second XGBoost
(``xgb2.ubj``), a River online logistic regression (``river.pkl``) and the logistic regression
exported as plain coefficients (``lr.json``) for the Java and Node.js workers in ``examples/``.
Hold-out accuracies go to ``models/metrics.json``.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Iterator

import numpy as np
import xgboost as xgb
import yaml
from river.datasets import synth
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from pipelines.flavours import river as river_flavour, sklearn as sk_flavour
from pipelines.flavours.base import sha256_of

__all__ = ["AGRAWAL_FEATURES", "agrawal_rows", "train_demo_models"]

AGRAWAL_FEATURES = ("salary", "commission", "age", "elevel", "car", "zipcode", "hvalue", "hyears", "loan")


def agrawal_rows(n: int, seed: int = 7, function: int = 2) -> Iterator[tuple[dict, int]]:
    """``n`` (features, label) pairs of loan applications from River's Agrawal generator."""
    stream = synth.Agrawal(classification_function=function, seed=seed)
    for x, y in itertools.islice(stream, n):
        yield {k: float(x[k]) for k in AGRAWAL_FEATURES}, int(y)


def _matrix(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rows = list(agrawal_rows(n, seed))
    X = np.array([[x[k] for k in AGRAWAL_FEATURES] for x, _ in rows])
    return X, np.array([y for _, y in rows])


def train_demo_models(out_dir: Path, pipeline: str = "loans", n_train: int = 20_000,
                      deadline_ms: int = 100, partitions: int = 4, seed: int = 1, groups: int = 2,
                      river: bool = False) -> Path:
    """Train lr, xgb and canary into ``out_dir/models`` and write ``out_dir/<pipeline>.yaml``.

    ``groups=2``: xgb in group ``boosted``, lr and the canary in group ``linear`` (two workers);
    ``groups=1``: all three in one group ``all`` (one worker, fewer processes on a small machine).
    ``river=True`` adds the River model as a fourth live model (challenger, group ``river`` or ``all``).
    """
    models_dir = out_dir / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    X, y = _matrix(n_train, seed)
    training = models_dir / "training.csv"  # what the models learned from: `rendezvous profile` reads it
    np.savetxt(training, np.column_stack([X, y]), delimiter=",", header=",".join([*AGRAWAL_FEATURES, "label"]),
               comments="", fmt="%.10g")

    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    sk_flavour.save(lr, models_dir / "lr.skops")
    canary = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X[: n_train // 4], y[: n_train // 4])
    sk_flavour.save(canary, models_dir / "canary.skops")
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 5, "eta": 0.3, "nthread": 2},
                        xgb.DMatrix(X, label=y), num_boost_round=60)
    booster.save_model(str(models_dir / "xgb.ubj"))
    booster2 = xgb.train({"objective": "binary:logistic", "max_depth": 4, "eta": 0.2, "nthread": 2},
                         xgb.DMatrix(X, label=y), num_boost_round=80)
    booster2.save_model(str(models_dir / "xgb2.ubj"))
    river_flavour.save(train_river(itertools.islice(zip(X, y), 5000)), models_dir / "river.pkl")
    export_linear(lr, models_dir / "lr.json")
    X_test, y_test = _matrix(4000, seed + 1000)
    metrics = {
        "lr": float((lr.predict(X_test) == y_test).mean()),
        "canary": float((canary.predict(X_test) == y_test).mean()),
        "xgb": float(((booster.inplace_predict(X_test) >= 0.5) == y_test).mean()),
        "xgb2": float(((booster2.inplace_predict(X_test) >= 0.5) == y_test).mean()),
    }
    (models_dir / "metrics.json").write_text(json.dumps({k: {"accuracy": v} for k, v in metrics.items()}, indent=2))

    def entry(model_id, flavour, file, role, group, preference):
        return {"id": model_id, "version": "1", "flavour": flavour, "artifact": f"models/{file}",
                "sha256": sha256_of(models_dir / file), "role": role, "group": group,
                "preference": preference, "features": list(AGRAWAL_FEATURES), "training_data": "models/training.csv"}

    spec = {
        "pipeline": pipeline, "deadline_ms": deadline_ms, "policy": "preference", "partitions": partitions,
        "models": [
            entry("xgb", "xgboost", "xgb.ubj", "champion", "boosted" if groups == 2 else "all", 0),
            entry("lr", "sklearn", "lr.skops", "challenger", "linear" if groups == 2 else "all", 1),
            entry("canary", "sklearn", "canary.skops", "canary", "linear" if groups == 2 else "all", 9),
        ],
    }
    if river:
        spec["models"].insert(2, entry("river", "river", "river.pkl", "challenger", "river" if groups == 2 else "all", 2))
    path = out_dir / f"{pipeline}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def train_river(pairs):
    """A River online logistic regression (scaled), trained one example at a time."""
    from river import linear_model, preprocessing

    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for x, y in pairs:
        model.learn_one(dict(zip(AGRAWAL_FEATURES, map(float, x))), bool(y))
    return model


def export_linear(pipeline, path: Path) -> None:
    """A scaled logistic regression as plain numbers any language can score:
    ``p(1) = 1 / (1 + exp(-(intercept + sum(coef[i] * x[features[i]]))))``."""
    scaler, model = pipeline[0], pipeline[-1]
    coef = model.coef_[0] / scaler.scale_
    intercept = float(model.intercept_[0] - (model.coef_[0] * scaler.mean_ / scaler.scale_).sum())
    path.write_text(json.dumps({"features": list(AGRAWAL_FEATURES), "coef": [float(c) for c in coef],
                                "intercept": intercept, "classes": [str(c) for c in model.classes_]}, indent=2))
