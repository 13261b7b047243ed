"""Vote, best-recent and bandit policies: pure decisions over scores, a deadline and a clock."""

import numpy as np
import pytest

from pipelines.policies import Bandit, BestRecent, ScoreView, WeightedVote, policy_for
from pipelines.spec import PolicySpec, SpecError


def views(**predictions):
    return {m: ScoreView(m, prediction=p) for m, p in predictions.items()}


def test_vote__waits_for_every_live_model_then_the_majority_wins():
    vote = WeightedVote(["a", "b", "c"])
    assert vote.decide(views(a=1, b=0), deadline_at_ms=100, now_ms=10) is None
    decision = vote.decide(views(a=1, b=0, c=1), deadline_at_ms=100, now_ms=10)
    assert (decision.status, decision.score.prediction, decision.by_deadline) == ("ok", 1, False)
    assert decision.reason.startswith("weighted vote: 1 ← a (1.00), c (1.00); 0 ← b")


def test_vote__does_not_wait_for_a_down_model_and_votes_with_what_came_by_the_deadline():
    vote = WeightedVote(["a", "b", "c"])
    assert vote.decide(views(a=1, b=1), 100, 10, down={"c"}).score.prediction == 1
    late = vote.decide(views(a=0), 100, 100)
    assert late.score.prediction == 0 and late.missing == ("b", "c") and "deadline passed without b, c" in late.reason


def test_vote__accuracy_weights_come_from_the_score_state():
    vote = WeightedVote(["a", "b", "c"], weights="accuracy",
                        accuracy=lambda: {"a": (0.9, 100), "b": (0.3, 100), "c": (0.3, 100)})
    assert vote.decide(views(a=1, b=0, c=0), 100, 10).score.prediction == 1  # 0.9 > 0.3 + 0.3


def test_vote__regression_is_a_weighted_average_and_probabilities_are_averaged():
    average = WeightedVote(["a", "b"], weights={"a": 3, "b": 1}, task="regression")
    assert average.decide(views(a=10.0, b=2.0), 100, 10).score.prediction == pytest.approx(8.0)
    vote = WeightedVote(["a", "b"])
    scores = {"a": ScoreView("a", prediction=1, probabilities={"0": 0.2, "1": 0.8}),
              "b": ScoreView("b", prediction=1, probabilities={"0": 0.4, "1": 0.6})}
    assert vote.decide(scores, 100, 10).score.probabilities == pytest.approx({"0": 0.3, "1": 0.7})


def test_vote__every_model_failing_is_an_error_and_nothing_by_the_deadline_a_timeout():
    vote = WeightedVote(["a", "b"])
    failed = {m: ScoreView(m, status="error", error="boom") for m in "ab"}
    assert vote.decide(failed, 100, 10).status == "error"
    assert vote.decide({}, 100, 100).status == "timeout"


def test_best_recent__ranks_by_recent_accuracy_and_keeps_preference_without_enough_labels():
    accuracy = {"a": (0.6, 200), "b": (0.8, 200), "c": (0.99, 3)}
    policy = BestRecent(["a", "b", "c"], accuracy=lambda: accuracy, min_labels=50)
    assert policy.order({}) == ("b", "a", "c")
    assert policy.order({}, set_aside={"b"}) == ("a", "c", "b")
    ranking = policy.order({})
    assert policy.decide(views(a=0), 100, 10, ranking=ranking) is None  # waits for b
    assert policy.decide(views(a=0, b=1), 100, 10, ranking=ranking).reason == "b is the most accurate lately and answered"


@pytest.mark.parametrize("algorithm", ["epsilon_greedy", "ucb", "thompson"])
def test_bandit__learns_from_delayed_rewards_which_model_to_pick(algorithm):
    policy = Bandit(["a", "b"], PolicySpec("bandit", algorithm=algorithm, epsilon=0.05, seed=3))
    pending = []
    for _ in range(400):
        pending.append(policy.order({}))
        if len(pending) > 20:  # rewards arrive 20 requests later
            policy.learn(pending.pop(0), {}, {"a": 0.0, "b": 1.0})
    picks = [policy.order({})[0] for _ in range(100)]
    assert picks.count("b") >= 80, picks.count("b")


def test_bandit__follows_a_drift_because_rewards_are_a_rolling_window():
    policy = Bandit(["a", "b"], PolicySpec("bandit", algorithm="ucb", window=100, seed=1))
    for step in range(1200):
        ranking = policy.order({})
        a_right = step < 600  # a is right before the drift, b after it
        policy.learn(ranking, {}, {"a": float(a_right), "b": float(not a_right)})
    assert [policy.order({})[0] for _ in range(50)].count("b") >= 40


def test_bandit__every_model_that_answered_learns_from_each_label_once():
    """Every answering model scored the request: the label tells each its reward, not only the pick's."""
    policy = Bandit(["a", "b", "c"], PolicySpec("bandit", algorithm="ucb", window=3, seed=1))
    policy.learn(("a", "b", "c"), {}, {"a": 1.0, "b": 0.0})  # c failed or was late: no reward, nothing learned
    assert policy.policy.mean("a") == 1.0 and policy.policy.mean("b") == 0.0 and policy.policy.mean("c") is None
    for _ in range(3):
        policy.learn(("b", "a", "c"), {}, {"a": 0.0, "b": 1.0, "c": 1.0})
    assert policy.policy.mean("a") == 0.0 and policy.policy.mean("b") == 1.0  # the window (3) forgot the first label
    assert len(policy.policy.rewards["a"]) == 3 and policy.pulls() == {"a": 4, "b": 4, "c": 3}


@pytest.mark.parametrize("algorithm", ["ucb", "thompson"])
def test_bandit__after_a_drift_it_converges_within_500_labels_and_stays(algorithm):
    """Issue 19's bars, small: once the new best model leads by >= 10 points, >= 80% of answers go
    to it within 500 labels, and they stay there; before the drift exploration costs <= 1 point."""
    rng = np.random.default_rng(5)
    policy = Bandit(["a", "b"], PolicySpec("bandit", algorithm=algorithm, window=300, seed=2))
    picks, right, pending = [], [], []
    for step in range(4000):
        p = {"a": 0.90, "b": 0.75} if step < 2000 else {"a": 0.55, "b": 0.85}  # b leads by 30 points after
        outcome = {m: float(rng.random() < p[m]) for m in p}
        ranking = policy.order({})
        picks.append(ranking[0])
        right.append(outcome[ranking[0]])
        pending.append((ranking, outcome))
        if len(pending) > 50:  # labels arrive 50 requests late
            policy.learn(*(lambda r, o: (r, {}, o))(*pending.pop(0)))
    share_b = np.convolve(np.array([m == "b" for m in picks], float), np.ones(100) / 100, mode="valid")
    converged = next(t for t in range(2000, len(share_b)) if share_b[t] >= 0.8)
    assert converged - 2000 <= 500, converged - 2000
    assert share_b[converged:].min() >= 0.6  # no swing back
    assert 0.90 - np.mean(right[1000:2000]) <= 0.02  # sampling noise of 1,000 draws included
    assert [m for m in picks[1000:2000]].count("a") >= 950


def test_bandit__linucb_picks_per_request_from_the_features():
    policy = Bandit(["a", "b"], PolicySpec("bandit", algorithm="linucb", window=10_000, seed=2))
    for step in range(1500):
        x = {"x": float(step % 2)}
        ranking = policy.order(x)
        policy.learn(ranking, x, {"a": float(x["x"] == 0), "b": float(x["x"] == 1)})  # a right on x=0, b on x=1
    low = [policy.order({"x": 0.0})[0] for _ in range(50)]
    high = [policy.order({"x": 1.0})[0] for _ in range(50)]
    assert low.count("a") >= 40 and high.count("b") >= 40, (low.count("a"), high.count("b"))


def test_bandit__the_pick_is_bounded_by_the_deadline_and_falls_back_in_preference_order():
    policy = Bandit(["a", "b", "c"], PolicySpec("bandit", algorithm="epsilon_greedy", epsilon=0.0, seed=1))
    ranking = ("c", "a", "b")
    assert policy.decide(views(a=1), 100, 10, ranking=ranking) is None  # waits for its pick c
    late = policy.decide(views(a=1), 100, 100, ranking=ranking)
    assert late.score.model_id == "a" and late.by_deadline
    failed = {"c": ScoreView("c", status="error"), "a": ScoreView("a", prediction=0)}
    assert policy.decide(failed, 100, 10, ranking=ranking).score.model_id == "a"


def test_policy_spec__validates_and_policy_for_builds_each():
    assert isinstance(policy_for(PolicySpec.from_dict({"name": "vote", "weights": {"a": 2}}), ["a"]), WeightedVote)
    assert isinstance(policy_for(PolicySpec.from_dict("best_recent"), ["a"]), BestRecent)
    assert policy_for(PolicySpec.from_dict({"name": "bandit", "algorithm": "linucb"}), ["a"]).contextual
    for bad, field in [({"name": "dice"}, "policy"), ({"name": "bandit", "algorithm": "oracle"}, "policy.algorithm"),
                       ({"name": "vote", "weights": {"a": -1}}, "policy.weights"), ({"epsilon": 2}, "policy.epsilon"),
                       ({"colour": "red"}, "unknown keys")]:
        with pytest.raises(SpecError, match=field.replace(".", r"\.")):
            PolicySpec.from_dict(bad)


def test_bandit__after_a_restart_it_starts_from_the_score_state_rewards():
    policy = Bandit(["a", "b"], PolicySpec("bandit", algorithm="epsilon_greedy", epsilon=0.0, seed=1))
    assert policy.warm({"a": [0.0] * 30, "b": [1.0] * 30, "gone": [1.0]}) == 60
    assert [policy.order({})[0] for _ in range(20)] == ["b"] * 20
    assert Bandit(["a"], PolicySpec("bandit", algorithm="linucb")).warm({"a": [1.0]}) == 0


def test_bandit__a_promoted_shadow_starts_from_the_rewards_it_earned_as_a_shadow():
    """Full information: a shadow scores every request, so its rewards are learned though it is
    never pulled. Promoted, it is not an unknown arm picked blindly until its first label."""
    policy = Bandit(["a", "b"], PolicySpec("bandit", algorithm="ucb", seed=1))
    for _ in range(300):
        ranking = policy.order({})
        assert "shadow" not in ranking
        policy.learn(ranking, {}, {"a": 1.0, "b": 0.0, "shadow": 0.0})
    policy.ranking = ["a", "b", "shadow"]  # the registry promoted it (Rendezvous.update)
    assert [policy.order({})[0] for _ in range(50)] == ["a"] * 50
