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
