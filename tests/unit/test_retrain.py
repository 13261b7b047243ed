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
    # the held-out rows paired (no champion given: against the current model): consistent with both accuracies
    only_new, only_old = result.metrics["holdout_candidate_only"], result.metrics["holdout_champion_only"]
    assert (only_new - only_old) / 540 == pytest.approx(result.metrics["holdout"] - result.metrics["current_holdout"])
    assert only_new > 10 * max(only_old, 1)
    if flavour == "xgboost":
        [(params, kwargs)] = calls  # the current model's depth, objective and rounds
        assert (params["max_depth"], params["objective"], kwargs["num_boost_round"]) == (4, "binary:logistic", 30)
    assert result.training_data.startswith(b"salary,commission")


def test_does_not_beat__a_tie_or_worse_is_not_registered_by_an_automatic_retrain():
    from pipelines.jobs.retrain import does_not_beat

    figures = {"holdout": 1.0, "current_holdout": 1.0, "rows_holdout": 120.0}
    assert does_not_beat(figures, current="xgb") == ("its held-out accuracy 1.0000 does not beat xgb's 1.0000 on the "
                                                     "120 newest labelled requests")
    assert does_not_beat({**figures, "holdout": 0.99}) and does_not_beat({**figures, "current_holdout": 0.9}) is None
    assert does_not_beat({"holdout": 3.0, "current_holdout": 2.5, "rows_holdout": 50.0}, "regression").startswith(
        "its held-out MAE 3.0000")
    assert does_not_beat({"holdout": 2.0, "current_holdout": 2.5, "rows_holdout": 50.0}, "regression") is None
    assert does_not_beat({"holdout": 0.5, "rows_holdout": 50.0}) is None  # nothing to compare with


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


def test_retrain__since_the_change_it_learns_the_new_concept_only(tmp_path):
    """A model of function 2 meets function 0 from request 2,000 on: its recorded Scores and the
    labels place the change there, and a retrain since then learns from post-change rows alone —
    and beats a retrain on everything on the new concept."""
    from sklearn.tree import DecisionTreeClassifier

    from pipelines.jobs.retrain import change_time

    before, after = archive_and_feedback(2000, 2), archive_and_feedback(1500, 0)
    after[0]["request_id"] = [f"s{i}" for i in range(1500)]
    after[0]["received_at"] += pd.Timedelta(seconds=2000)
    archive = pd.concat([before[0], after[0]], ignore_index=True)
    feedback = {**before[1], **{f"s{i[1:]}": y for i, y in after[1].items()}}
    old = labelled_rows(before[0], before[1], list(AGRAWAL_FEATURES))
    spec = ModelSpec("m", "sklearn", "champion", "g", features=AGRAWAL_FEATURES)
    tree = DecisionTreeClassifier(max_depth=6, random_state=0).fit(old[list(AGRAWAL_FEATURES)].to_numpy(), old["label"])
    sk_flavour.save(tree, tmp_path / "m")
    current = sk_flavour.load(spec, (tmp_path / "m").read_bytes())
    rows = archive[[f"f_{k}" for k in AGRAWAL_FEATURES]].set_axis(list(AGRAWAL_FEATURES), axis=1).to_dict("records")
    scores = pd.DataFrame({"request_id": archive["request_id"], "model_id": "m", "status": "ok",
                           "prediction": [str(o.prediction) for o in current.score_batch(rows)]})

    cut, labelled_after = change_time(scores, archive, feedback, "m")
    change = archive.loc[2000, "received_at"]
    assert abs((cut - change).total_seconds()) <= 100, (cut, change)  # within 100 requests of the change
    assert 1200 <= labelled_after <= 1500

    since = labelled_rows(archive, feedback, list(AGRAWAL_FEATURES), cut)
    assert len(since) == sum(1 for r in archive.loc[archive["received_at"] >= cut, "request_id"] if r in feedback)
    new_concept = {tuple(x) for x in after[0][[f"f_{k}" for k in AGRAWAL_FEATURES]].to_numpy()}
    share = np.mean([tuple(x) in new_concept for x in since[list(AGRAWAL_FEATURES)].to_numpy()])
    assert share >= 0.93, share  # at most a few requests from before the change
    focused = retrain(current, since, holdout=0.2)
    everything = retrain(current, labelled_rows(archive, feedback, list(AGRAWAL_FEATURES)), holdout=0.2)
    # both are judged on the newest 20 % (post-change rows); the one that learnt the new concept only wins
    assert focused.metrics["holdout"] > everything.metrics["holdout"] + 0.02, (focused.metrics, everything.metrics)
    assert focused.metrics["holdout"] > focused.metrics["current_holdout"] + 0.1, focused.metrics
