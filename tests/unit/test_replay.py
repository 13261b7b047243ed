"""Replay on a known archive: the comparison's numbers are exactly what the archive implies."""

import time

import pytest

from pipelines.promotion import promotion_checks
from pipelines.flavours import load_model
from pipelines.jobs.replay import recorded_report, replay, save_report
from pipelines.spec import PipelineSpec, load_spec
from pipelines.jobs.train import agrawal_rows, train_demo_models
from tables.archive import ParquetArchive, ScoreArchive, read_archive, read_scores


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return load_spec(train_demo_models(tmp_path_factory.mktemp("models"), n_train=2000))


@pytest.fixture(scope="module")
def archive(tmp_path_factory, trained):
    """200 archived requests; 'live' recorded lr's own answers on 150 of them and the opposite on 50."""
    base = tmp_path_factory.mktemp("archive")
    rows = [x for x, _ in agrawal_rows(200, seed=3)]
    lr = load_model(trained.model("lr"))
    answers = [o.prediction for o in lr.score_batch(rows)]
    requests, scores = ParquetArchive(base / "archive"), ScoreArchive(base / "scores")
    now = time.time()
    for i, (row, answer) in enumerate(zip(rows, answers)):
        rid = f"r{i}"
        requests.add({"request_id": rid, "features": row}, b"", 0, i, now)
        recorded = answer if i < 150 else 1 - answer
        scores.add({"request_id": rid, "model_id": "live", "model_version": "1", "role": "champion",
                    "prediction": recorded, "probabilities": {"1": 0.9 if recorded else 0.1}, "status": "ok",
                    "latency_ms": 2.0}, now)
        if i % 10 == 0:  # the external model answered every tenth request, always 1
            scores.add({"request_id": rid, "model_id": "ext", "model_version": "3", "role": "shadow",
                        "prediction": 1, "probabilities": None, "status": "ok", "latency_ms": 7.0}, now)
    requests.flush(), scores.flush()
    feedback = {f"r{i}": answers[i] for i in range(0, 200, 2)}  # the truth is lr's answer, on every other one
    return read_archive(base / "archive"), read_scores(base / "scores"), feedback, answers


def test_replay__agreement_accuracy_and_distributions_are_exact(trained, archive, tmp_path):
    requests, scores, feedback, answers = archive
    report, candidate = replay(load_model(trained.model("lr")), requests, scores, feedback, batch=64)
    assert report.rows == 200 and report.errors == 0 and report.batch == 64
    assert report.compared["live"] == 200 and report.agreement["live"] == 150 / 200
    assert report.compared["ext"] == 20
    assert report.labelled == 100 and report.accuracy["lr"] == 1.0
    assert report.accuracy["live"] == sum(1 for i in range(0, 150, 2)) / 100  # right on the 75 of the first 150
    assert report.predictions["lr"] == {str(k): answers.count(k) for k in sorted(set(answers))}
    assert report.latency_ms["p99"] >= report.latency_ms["p50"] > 0
    assert set(candidate["request_id"]) == {f"r{i}" for i in range(200)}
    path = save_report(report, candidate, tmp_path / "replays")
    assert path.exists() and path.with_suffix(".csv").read_text().count("\n") == 201


def test_replay__an_external_model_is_judged_on_its_recorded_scores(archive):
    requests, scores, feedback, answers = archive
    report, _ = recorded_report("ext", "3", scores, feedback)
    assert report.rows == 20 and report.latency_ms["p50"] == 7.0
    live_says_one = sum(1 for i in range(0, 200, 10) if (answers[i] if i < 150 else 1 - answers[i]) == 1)
    assert report.agreement["live"] == live_says_one / 20


def test_replay__checks_pass_and_fail_for_the_right_reasons(trained, archive):
    requests, scores, feedback, _ = archive
    report, _ = replay(load_model(trained.model("lr")), requests, scores, feedback)
    spec = PipelineSpec.from_dict({**trained.to_dict(), "checks": {"min_agreement": 0.7, "min_rows": 100}})
    features = trained.model("lr").features
    ok = {c.name: c for c in promotion_checks("lr", features, spec, features, None, report, "live")}
    assert all(c.ok for c in ok.values()), ok
    strict = PipelineSpec.from_dict({**trained.to_dict(), "checks": {"min_agreement": 0.8, "min_rows": 500,
                                                                      "min_accuracy": 1.0}})
    failed = {c.name: c for c in promotion_checks("lr", [*features, "income"], strict, features, None, report, "live")
              if not c.ok}
    assert set(failed) == {"features", "traffic", "agreement"}
    assert "income" in failed["features"].detail and "75.0%" in failed["agreement"].detail
    broken = promotion_checks("lr", features, spec, features, "model lr: refusing to load it", None, "live")
    assert [c.name for c in broken if not c.ok] == ["loads", "replay"]
