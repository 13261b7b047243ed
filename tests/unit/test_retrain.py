"""Batch retraining from archive + feedback, and the auto-promotion rule (McNemar's exact test)."""

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from pipelines.flavours import sklearn as sk_flavour, xgboost as xgb_flavour
from pipelines.jobs.retrain import labelled_rows, retrain
from pipelines.promotion import beats
from pipelines.spec import ModelSpec
from pipelines.jobs.train import AGRAWAL_FEATURES, agrawal_rows


def archive_and_feedback(n: int, function: int):
    pairs = list(agrawal_rows(n, seed=3, function=function))
    archive = pd.DataFrame({"request_id": [f"r{i}" for i in range(n)],
                            "received_at": pd.to_datetime(np.arange(n), unit="s", utc=True),
                            **{f"f_{k}": [x[k] for x, _ in pairs] for k in AGRAWAL_FEATURES}})
    feedback = {f"r{i}": y for i, (_, y) in enumerate(pairs) if i % 10}  # every tenth request unlabelled
    return archive, feedback


def test_labelled_rows__joins_in_arrival_order_and_names_missing_features():
    archive, feedback = archive_and_feedback(50, 2)
    rows = labelled_rows(archive.sample(frac=1, random_state=1), feedback, list(AGRAWAL_FEATURES))
    assert len(rows) == 45 and rows["salary"].tolist() == archive[archive.request_id.isin(feedback)]["f_salary"].tolist()
    with pytest.raises(ValueError, match="no column for features \\['colour'\\]"):
        labelled_rows(archive, feedback, ["colour"])


@pytest.mark.parametrize("flavour", ["sklearn", "xgboost"])
def test_retrain__a_model_of_the_old_concept_retrained_on_the_new_one_beats_it(tmp_path, flavour, monkeypatch):
    old = list(agrawal_rows(3000, seed=1, function=2))
    X = np.array([[x[k] for k in AGRAWAL_FEATURES] for x, _ in old])
    y = np.array([label for _, label in old])
    spec = ModelSpec("m", flavour, "champion", "g", features=AGRAWAL_FEATURES)
    if flavour == "sklearn":
        from sklearn.tree import DecisionTreeClassifier

        sk_flavour.save(DecisionTreeClassifier(max_depth=6).fit(X, y), tmp_path / "m")
        current = sk_flavour.load(spec, (tmp_path / "m").read_bytes())
    else:
        booster = xgb.train({"objective": "binary:logistic", "max_depth": 4, "eta": 0.3}, xgb.DMatrix(X, label=y), 30)
        current = xgb_flavour.load(spec, bytes(booster.save_raw("ubj")))
    calls = []
    real_train = xgb.train
    monkeypatch.setattr(xgb, "train", lambda params, *a, **k: calls.append((params, k)) or real_train(params, *a, **k))
    archive, feedback = archive_and_feedback(3000, 0)  # the concept drifted: function 0 now
    result = retrain(current, labelled_rows(archive, feedback, list(AGRAWAL_FEATURES)), holdout=0.2)
    assert result.metrics["rows_train"] == 2160 and result.metrics["rows_holdout"] == 540
    assert result.metrics["holdout"] > 0.9 > result.metrics["current_holdout"], result.metrics
    if flavour == "xgboost":
        [(params, kwargs)] = calls  # the current model's depth, objective and rounds
        assert (params["max_depth"], params["objective"], kwargs["num_boost_round"]) == (4, "binary:logistic", 30)
    assert result.training_data.startswith(b"salary,commission")


def test_retrain__river_and_too_few_rows_are_refused_with_what_to_do():
    archive, feedback = archive_and_feedback(20, 2)

    class River:
        spec, features = ModelSpec("r", "river", "challenger", "g"), AGRAWAL_FEATURES

    with pytest.raises(ValueError, match="too few"):
        retrain(River(), labelled_rows(archive, feedback, list(AGRAWAL_FEATURES)))
    archive, feedback = archive_and_feedback(200, 2)
    with pytest.raises(ValueError, match="River models learn online"):
        retrain(River(), labelled_rows(archive, feedback, list(AGRAWAL_FEATURES)))


def test_beats__needs_enough_discordant_pairs_and_significance():
    assert beats(0, 19, 0.95) == (False, pytest.approx(0.5 ** 19))  # significant, but too few pairs
    assert beats(5, 25, 0.95)[0] and not beats(25, 5, 0.95)[0]
    assert beats(0, 0, 0.95) == (False, 1.0)
