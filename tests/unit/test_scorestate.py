"""Per-model score state: River's rolling metrics, merged exactly across partitions, JSON round trip."""

import json

import pytest

from pipelines.scorebook import ScoreBook, correct


def ok(prediction, latency_ms=1.0):
    return {"prediction": prediction, "status": "ok", "latency_ms": latency_ms}


def test_scorestate__accuracy_agreement_and_chosen_share():
    book = ScoreBook(window=100)
    for truth in (1, 1, 1, 0):
        rewards = book.labelled(0, truth, {"a": ok(1), "b": ok(truth), "canary": ok(1)}, chosen="a", canary="canary")
    assert rewards == {"a": 0.0, "b": 1.0, "canary": 0.0}
    summary = book.summary()
    assert summary["a"]["accuracy"] == 0.75 and summary["b"]["accuracy"] == 1.0
    assert summary["b"]["agreement_canary"] == 0.75 and summary["b"]["agreement_answer"] == 0.75
    assert summary["a"]["chosen_share"] == 1.0 and summary["b"]["chosen_share"] == 0.0
    assert summary["canary"]["agreement_canary"] is None  # not compared with itself


def test_scorestate__partitions_merge_exactly_and_the_window_forgets():
    book = ScoreBook(window=2)
    book.labelled(0, 1, {"a": ok(1)}, None)
    book.labelled(1, 1, {"a": ok(0)}, None)
    book.labelled(1, 1, {"a": ok(0)}, None)
    book.labelled(1, 1, {"a": ok(0)}, None)  # partition 1 keeps its last 2
    assert book.accuracy()["a"] == (pytest.approx(1 / 3), 3)
    assert book.summary()["a"]["labelled"] == 4


def test_scorestate__errors_and_late_scores_are_counted_not_learned():
    book = ScoreBook()
    book.scored(0, {"model_id": "a", "status": "ok", "latency_ms": 2.0})
    book.scored(0, {"model_id": "a", "status": "error", "latency_ms": 9.0})
    book.scored(0, {"model_id": "a", "status": "late", "latency_ms": 50.0})
    assert book.labelled(0, 1, {"a": {"status": "error", "prediction": None}}, None) == {}
    summary = book.summary()["a"]
    assert (summary["scores"], summary["errors"], summary["late"], summary["latency_p50_ms"]) == (3, 1, 1, 2.0)


def test_scorestate__regression_tracks_mae_and_rewards_minus_the_error():
    book = ScoreBook(task="regression")
    assert book.labelled(0, 10.0, {"a": ok(7.0)}, "a") == {"a": -3.0}
    book.labelled(0, 10.0, {"a": ok(11.0)}, "a")
    assert book.summary()["a"]["mae"] == 2.0 and book.accuracy()["a"] == (-2.0, 2)


def test_scorestate__rows_round_trip_through_json_as_the_changelog_holds_them():
    book = ScoreBook(window=50)
    for i in range(30):
        book.labelled(i % 4, i % 2, {"a": ok(1, latency_ms=i), "c": ok(0)}, chosen="a", canary="c")
        book.scored(i % 4, {"model_id": "a", "status": "ok", "latency_ms": float(i)})
    rows = book.dump_dirty()
    assert {key for key, _, _ in rows} == {f"{m}@{p}" for m in "ac" for p in range(4)} and book.dump_dirty() == []
    restored = ScoreBook(window=50)
    assert restored.restore((key, json.loads(value)) for key, _, value in rows) == 8
    assert restored.summary() == book.summary()


@pytest.mark.parametrize("truth,prediction,same", [(1, True, True), ("1", 1.0, True), (0, 1, False), ("fraud", "fraud", True)])
def test_scorestate__labels_compare_across_types(truth, prediction, same):
    assert correct(truth, prediction) is same


def test_scorestate__a_restored_row_is_merged_before_what_came_since():
    old = ScoreBook(window=4)
    for truth in (1, 1, 0):
        old.labelled(0, truth, {"a": ok(1)}, "a")
    [(key, _, value)] = old.dump_dirty()
    book = ScoreBook(window=4)
    book.labelled(0, 1, {"a": ok(1)}, "a")  # arrived after the restart, before the table was read
    book.labelled(0, 0, {"a": ok(1)}, "a")
    assert book.restore([(key, value)]) == 1
    assert book.accuracy()["a"] == (0.5, 4)  # window 4: 1 0 | 1 0 (the oldest, right, fell out)
    assert book.summary()["a"]["labelled"] == 5 and book.rewards() == {"a": [1.0, 0.0, 1.0, 0.0]}


def test_scorestate__a_label_applied_again_is_a_no_op_also_after_a_restore():
    book = ScoreBook(window=50)
    scores = {"lr": {"prediction": 1, "status": "ok"}, "xgb": {"prediction": 0, "status": "ok"}}
    assert book.labelled(0, 1, scores, chosen="lr", request_id="r1") == {"lr": 1.0, "xgb": 0.0}
    assert book.labelled(0, 1, scores, chosen="lr", request_id="r1") == {}  # replayed after a crash
    restored = ScoreBook(window=50)
    restored.restore((key, json.loads(value)) for key, _, value in book.dump_dirty())
    assert restored.labelled(0, 1, {"lr": scores["lr"]}, chosen=None, request_id="r1") == {}
    assert restored.labelled(0, 0, {"lr": scores["lr"]}, chosen=None, request_id="r2") == {"lr": 0.0}
    assert restored.summary()["lr"]["labelled"] == 2 and restored.summary()["xgb"]["labelled"] == 1
