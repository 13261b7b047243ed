"""The preference schedule, driven by an explicit clock (``now_ms``): no sleeps, no Faust."""

from pipelines.policies import PreferenceSchedule, ScoreView, policy_for

RANKING = ["lr", "xgb", "tree"]
DEADLINE = 100


def ok(model_id, prediction=1):
    return ScoreView(model_id, prediction=prediction)


def failed(model_id):
    return ScoreView(model_id, status="error", error="boom")


def decide(scores, now_ms, down=frozenset()):
    return PreferenceSchedule(RANKING).decide({s.model_id: s for s in scores}, DEADLINE, now_ms, down)


def test_preference__top_choice_is_returned_the_moment_it_arrives():
    decision = decide([ok("lr", 7)], now_ms=3)
    assert decision.status == "ok" and decision.score.prediction == 7
    assert not decision.by_deadline
    assert decision.reason == "lr is the top preference and answered"


def test_preference__lower_choice_waits_for_higher_ones():
    assert decide([ok("xgb"), ok("tree")], now_ms=99) is None


def test_preference__lower_choice_wins_at_the_deadline_and_names_the_missing():
    decision = decide([ok("tree", 3)], now_ms=100)
    assert decision.status == "ok" and decision.score.model_id == "tree"
    assert decision.by_deadline and decision.missing == ("lr", "xgb")


def test_preference__best_ranked_among_answers_wins_at_the_deadline():
    assert decide([ok("tree"), ok("xgb")], now_ms=150).score.model_id == "xgb"


def test_preference__failed_higher_choice_hands_over_at_once():
    decision = decide([failed("lr"), ok("xgb", 5)], now_ms=4)
    assert decision.score.model_id == "xgb" and not decision.by_deadline
    assert "failed: lr (error: boom)" in decision.reason


def test_preference__down_model_is_not_waited_for():
    decision = decide([ok("xgb")], now_ms=4, down={"lr"})
    assert decision.score.model_id == "xgb" and "down: lr" in decision.reason


def test_preference__down_model_answer_is_still_taken():
    assert decide([ok("lr", 2), ok("xgb")], now_ms=4, down={"lr"}).score.model_id == "lr"


def test_preference__no_answer_by_the_deadline_is_a_timeout():
    assert decide([], now_ms=99) is None
    decision = decide([], now_ms=100)
    assert decision.status == "timeout" and decision.score is None
    assert decision.missing == ("lr", "xgb", "tree")


def test_preference__all_failed_is_an_error_before_the_deadline():
    decision = decide([failed("lr"), failed("xgb"), failed("tree")], now_ms=1)
    assert decision.status == "error" and "every model failed" in decision.reason


def test_preference__scores_of_unranked_models_are_never_chosen():
    decision = decide([ScoreView("canary", role="canary")], now_ms=100)
    assert decision.status == "timeout"


def test_preference__policy_for_knows_preference_only():
    assert policy_for("preference", RANKING).ranking == tuple(RANKING)
