"""Reference profile, GX suite, drift statistics, decay verdict — and the proof on Agrawal, small."""

import numpy as np
import pandas as pd
import pytest

from benchmarks.quality import FEATURES, agrawal_frame, run_quality
from features.decay import ErrorDrift
from features.drift import feature_drift, psi, unlike_share
from features.profile import build_profile, category
from features.quality import decay_verdict


@pytest.fixture(scope="module")
def profile():
    return build_profile(agrawal_frame(5000, seed=1), FEATURES)


def test_profile__codes_are_categories_and_measures_are_numbers(profile):
    kinds = {name: entry["kind"] for name, entry in profile["features"].items()}
    assert kinds == {"salary": "numeric", "commission": "numeric", "age": "numeric", "elevel": "categorical",
                     "car": "categorical", "zipcode": "categorical", "hvalue": "numeric", "hyears": "numeric",
                     "loan": "numeric"}
    assert set(profile["features"]["elevel"]["categories"]) == {"0", "1", "2", "3", "4"}
    assert 20_000 <= profile["features"]["salary"]["min"] < profile["features"]["salary"]["max"] <= 150_000
    assert category(3.0) == category(3) == category("3") == "3"
    with pytest.raises(ValueError, match="no column 'colour'"):
        build_profile(agrawal_frame(10, seed=1), ["colour"])


def test_drift__each_test_by_sample_size_and_the_statistics_behind_it(profile):
    same, shifted = agrawal_frame(3000, seed=2), agrawal_frame(3000, seed=2, shift_at=0)
    salary = profile["features"]["salary"]
    small, large = feature_drift(salary, same["salary"][:500].tolist()), feature_drift(salary, same["salary"].tolist())
    assert (small["method"], small["drifted"], large["method"], large["drifted"]) == ("ks", False, "psi", False)
    moved = feature_drift(salary, shifted["salary"].tolist())
    assert moved["drifted"] and moved["psi"] > 0.2 and moved["ks_p_value"] < 0.001
    car = profile["features"]["car"]
    assert feature_drift(car, same["car"][:800].tolist())["method"] == "chi_square"
    unknown = feature_drift(car, [99.0] * 300 + same["car"][:900].tolist())
    assert unknown["method"] == "jensen_shannon" and unknown["unknown_share"] == 0.25 and unknown["drifted"]
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0 and psi([0.5, 0.5], [0.9, 0.1]) > 0.5
    assert feature_drift(salary, [None, float("nan")]) == {"method": "none", "drifted": False, "n": 0}


def test_unlike_share__out_of_range_unseen_codes_and_missing_values(profile):
    frame = agrawal_frame(100, seed=5)
    assert unlike_share(profile, frame) < 0.05
    frame.loc[:9, "salary"] = 1e9
    frame.loc[10:19, "car"] = 99.0
    frame.loc[20:29, "age"] = np.nan
    assert unlike_share(profile, frame) >= 0.3


def test_decay_verdict__two_drifted_features_or_many_unlike_requests_or_a_model_decaying():
    one = {"age": {"drifted": True, "method": "psi", "score": 0.4}, "car": {"drifted": False}}
    two = {**one, "car": {"drifted": True, "method": "jensen_shannon", "score": 0.3}}
    assert decay_verdict(one, 0.01, [])[0] is False
    assert decay_verdict(two, 0.01, [])[0] is True
    assert decay_verdict({}, 0.2, [])[0] is True
    decayed, reasons = decay_verdict({}, 0.0, ["x"], [{"reason": "xgb's error rate changed (adwin, after 900 labels)"}])
    assert decayed and reasons == ["xgb's error rate changed (adwin, after 900 labels)", "1 expectations failed"]


def test_error_drift__adwin_on_a_model_error_stream_says_from_what_to_what():
    watch = ErrorDrift()
    rng = np.random.default_rng(0)
    before = [a for _ in range(2000) for a in watch.update("m", float(rng.random() < 0.05))]
    after = [a for _ in range(1000) for a in watch.update("m", float(rng.random() < 0.5))]
    assert before == [] and {a["cause"] for a in after} == {"adwin"}
    assert {a["kind"] for a in after} == {"decay"} and {a["direction"] for a in after} == {"up"}
    first = after[0]
    assert first["figures"]["error_before"] < 0.1 < 0.3 < first["figures"]["error_after"]
    assert "rose from" in first["reason"]


def test_error_drift__an_improving_model_is_reported_as_improvement_never_as_decay():
    """A learner getting better (errors 40 % -> 5 %) is a change of the mean too: ADWIN finds it,
    the alert says it fell; no alert is decay, so nothing is retrained."""
    from pipelines.retraining import RetrainPlanner

    watch = ErrorDrift()
    plan = RetrainPlanner(watch, min_rows=100, cooldown_s=0, clock=lambda: 0.0)
    rng = np.random.default_rng(1)
    alerts = [a for i in range(6000) for a in watch.update("river", float(rng.random() < (0.4 if i < 3000 else 0.05)))]
    assert alerts and {a["kind"] for a in alerts} == {"improvement"} and {a["cause"] for a in alerts} == {"adwin"}
    assert "fell from" in alerts[0]["reason"] and "not decay" in alerts[0]["reason"]
    assert not any(plan.on_decay(a, retrainable=True) for a in alerts) and not plan.pending


@pytest.mark.parametrize("rate", [0.02, 0.1, 0.3])
def test_error_drift__no_decay_on_a_long_stationary_stream(rate):
    """200,000 labels of one model whose error rate never changes (about 17 minutes of a 200/s
    pipeline, every request labelled): no decay alert (benchmarks/alarms.py runs hours of it)."""
    watch = ErrorDrift()
    rng = np.random.default_rng(7)
    errors = (rng.random(200_000) < rate).astype(float)
    assert [a["reason"] for e in errors for a in watch.update("m", e) if a["kind"] == "decay"] == []


def test_drift_watch__persistence_and_a_level_from_the_false_alarms_allowed_per_day():
    from features.profile import build_profile
    from features.quality import DriftWatch
    from pipelines.jobs.train import AGRAWAL_FEATURES, agrawal_rows

    reference = pd.DataFrame([x for x, _ in agrawal_rows(5000, seed=1)])
    watch = DriftWatch(build_profile(reference, list(AGRAWAL_FEATURES)), false_alarms_per_day=0.1, persistence=2)
    # more windows a day (shorter ones) test at a stricter level; a looser rate at a laxer one
    assert watch.significance(5) < watch.significance(60) < DriftWatch(watch.profile, 10, 2).significance(60)
    assert DriftWatch(watch.profile, 0.1, 1).significance(60) < watch.significance(60)
    live = pd.DataFrame([x for x, _ in agrawal_rows(400, seed=9)])
    shifted = live.assign(salary=live["salary"] * 1.5)
    first, second, calm = watch.check(shifted, 10), watch.check(shifted, 10), watch.check(live, 10)
    assert first["salary"]["window_drifted"] and not first["salary"]["drifted"]  # one window is not enough
    assert second["salary"]["drifted"] and second["salary"]["streak"] == 2
    assert not calm["salary"]["drifted"] and calm["salary"]["streak"] == 0  # the streak ends with the drift


def test_quality__a_covariate_shift_fires_the_verdict_the_control_never_and_gx_flags_bad_values(tmp_path):
    result = run_quality(requests=8000, shift_at=4000, window=1000, workdir=tmp_path)
    assert result["false_before_shift"] == 0 and result["false_on_control"] == 0
    # a feature is flagged once it drifted in 2 windows in a row (DriftWatch.persistence): the
    # second window after the shift, and every one after it
    assert result["first_verdict_after"] is not None and result["first_verdict_after"] <= 2000
    assert all(w["decay"] for w in result["shifted"] if w["first"] >= 5000)
    assert all(w["drift"]["salary"]["window_drifted"] for w in result["shifted"] if w["first"] >= 4000)
    bad = result["bad"]
    assert bad["gx_success"] is False
    failed = " ".join(bad["failed"])
    assert "not_be_null on salary" in failed and "between on age" in failed and "in_set on car" in failed
    assert (tmp_path / "gx").exists()


def test_quality__gx_keeps_only_the_newest_validation_results(tmp_path):
    import pandas as pd

    from features.profile import build_profile
    from features.quality import QualityMonitor
    from pipelines.jobs.train import AGRAWAL_FEATURES, agrawal_rows

    frame = pd.DataFrame([x for x, _ in agrawal_rows(1000)])
    monitor = QualityMonitor("p", build_profile(frame, list(AGRAWAL_FEATURES)), tmp_path / "gx", keep_results=2)
    for i in range(4):
        monitor.check(frame.iloc[i * 250:(i + 1) * 250])
    stored = [d for d in (tmp_path / "gx").rglob("validations/*/*/*") if d.is_dir()]
    assert len(stored) == 2
