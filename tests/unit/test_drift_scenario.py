"""The drift proof (benchmarks/drift.py), small: after an abrupt concept drift with delayed labels the
bandit moves answers to the online learner, whose accuracy recovers; the static policy never does."""

import pytest

from benchmarks.drift import run_drift, train_models


@pytest.fixture(scope="module")
def artifacts():
    return train_models()


def test_drift__the_bandit_shifts_answers_to_the_learner_and_accuracy_recovers(artifacts):
    run = run_drift("ucb", requests=5000, drift_at=1500, label_delay=100, artifacts=artifacts)
    n, d = len(run.chosen), run.drift_at
    assert run.accuracy(d - 1000, d) > 0.95  # xgb knew the old concept
    assert run.accuracy(d, d + 300, "xgb_right") < 0.6  # and is lost after the drift
    assert run.accuracy(n - 1000, n, "learner_right") > 0.9  # the online learner learned the new one
    assert run.labels_until_shift() is not None and run.chosen[-1000:].count("learner") > 900
    assert run.accuracy(n - 1000, n) > 0.9 and run.recovery_requests() is not None


def test_drift__a_static_preference_never_recovers(artifacts):
    run = run_drift("preference", requests=5000, drift_at=1500, label_delay=100, artifacts=artifacts)
    assert run.chosen[-1000:].count("xgb") > 900 and run.accuracy(4000, 5000) < 0.6
    assert run.labels_until_shift() is None


def test_drift__the_decayed_champion_is_retrained_on_the_new_concept_and_promoted(artifacts):
    """Under a static preference nothing else saves the answers: the core's detectors see xgb decay,
    a retrain learns the rows after the change, the new version wins on live feedback and is promoted."""
    run = run_drift("preference", requests=6000, drift_at=1500, label_delay=100, artifacts=artifacts,
                    retrain_min_rows=400)
    kinds = [(kind, model) for _, kind, model, _ in run.events]
    assert ("retrained", "xgb-r1") in kinds and ("promoted", "xgb-r1") in kinds, run.events
    retrained_at = next(i for i, kind, _, _ in run.events if kind == "retrained")
    assert retrained_at > run.drift_at + 400 + 100  # only after 400 labels of post-change requests
    n = len(run.chosen)
    assert run.chosen[-1000:].count("xgb-r1") > 900 and run.accuracy(n - 1000, n) > 0.95
    assert run.best()[0] in ("xgb-r1", "learner") and run.labels_until_within() is not None
    assert "canary-r1" not in run.model_right  # the baseline is never retrained
