"""Reference profile, GX suite, drift statistics, decay verdict — and the proof on Agrawal, small."""

import numpy as np
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


def test_error_drift__adwin_and_page_hinkley_on_a_model_error_stream():
    watch = ErrorDrift()
    rng = np.random.default_rng(0)
    before = [a for _ in range(2000) for a in watch.update("m", float(rng.random() < 0.05))]
    after = [a for _ in range(1000) for a in watch.update("m", float(rng.random() < 0.5))]
    assert before == [] and {a["cause"] for a in after} >= {"adwin"}


def test_quality__a_covariate_shift_fires_the_verdict_the_control_never_and_gx_flags_bad_values(tmp_path):
    result = run_quality(requests=8000, shift_at=4000, window=1000, workdir=tmp_path)
    assert result["false_before_shift"] == 0 and result["false_on_control"] == 0
    assert result["first_verdict_after"] is not None and result["first_verdict_after"] <= 1000
    assert all(w["decay"] for w in result["shifted"] if w["first"] >= 4000)
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
