"""The rendezvous role's state machine over a mailbox mapping, with an injected clock."""

from dataclasses import replace

import pytest

from pipelines.rendezvous import Rendezvous
from pipelines.spec import PipelineSpec
from pipelines.mailbox import DictStore

SPEC = PipelineSpec.from_dict({"pipeline": "p", "deadline_ms": 100, "models": [
    {"id": "a", "flavour": "external", "role": "champion", "group": "a"},
    {"id": "b", "flavour": "external", "role": "challenger", "group": "b"},
    {"id": "c", "flavour": "external", "role": "canary", "group": "c"},
]})


class Clock:
    def __init__(self):
        self.now = 1_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def server(clock):
    return Rendezvous(SPEC, DictStore(), clock=clock, miss_limit=2)


def request(rid, deadline_ms=None):
    return {"request_id": rid, "features": {"x": 1.0}, "deadline_ms": deadline_ms, "tenant": "t",
            "reply_to": None, "sent_at": 5}


def score(rid, model, status="ok", prediction=1):
    return {"request_id": rid, "model_id": model, "model_version": "1", "role": "champion",
            "prediction": prediction, "probabilities": None, "latency_ms": 0.5, "status": status, "error": None}


def test_rendezvous__top_choice_answers_at_once(server, clock):
    assert server.on_request(request("r1"), 3) == []
    clock.now += 4
    [(rid, partition, result)] = server.on_score(score("r1", "a", prediction=0), 3)
    assert (rid, partition) == ("r1", 3)
    assert result["status"] == "ok" and result["model_id"] == "a" and result["latency_ms"] == 4
    assert result["tenant"] == "t" and result["sent_at"] == 5


def test_rendezvous__scores_before_the_request_are_kept(server):
    assert server.on_score(score("r1", "a"), 0) == []
    [(_, _, result)] = server.on_request(request("r1"), 0)
    assert result["model_id"] == "a"


def test_rendezvous__deadline_fires_through_due_with_best_available(server, clock):
    server.on_request(request("r1", deadline_ms=50), 1)
    server.on_score(score("r1", "b", prediction=7), 1)
    clock.now += 49
    assert server.due() == []
    clock.now += 1
    [(rid, _, result)] = server.due()
    assert result["model_id"] == "b" and result["prediction"] == 7 and "deadline passed" in result["reason"]
    assert server.mailboxes.get(rid)["done"] == "ok"


def test_rendezvous__overdue_says_when_a_deadline_passed_and_its_overshoot_is_recorded(server, clock):
    class Seen:
        def __init__(self):
            self.overshoots = []

        def __getattr__(self, name):  # every other Telemetry event: ignored
            return lambda *args, **kwargs: None

        def overshoot(self, seconds):
            self.overshoots.append(seconds)

    server.metrics = seen = Seen()
    server.on_request(request("r1", deadline_ms=50), 1)
    server.on_request(request("r2", deadline_ms=80), 1)
    clock.now += 49
    assert not server.overdue()
    clock.now += 4  # r1's deadline was 3 ms ago
    assert server.overdue()
    [(rid, _, result)] = server.due()
    assert rid == "r1" and result["status"] == "timeout"
    assert not server.overdue()  # r2 is due in 27 ms
    assert seen.overshoots == [0.003]
    server.on_score(score("r2", "a"), 1)  # answered before its deadline: no overshoot
    assert seen.overshoots == [0.003] and not server.overdue()


def test_rendezvous__no_answer_is_one_timeout_then_late_scores_are_counted(server, clock):
    server.on_request(request("r1"), 0)
    clock.now += 100
    [(_, _, result)] = server.due()
    assert result["status"] == "timeout" and result["prediction"] is None
    assert server.due() == []
    assert server.on_score(score("r1", "a"), 0) == []
    assert server.late["a"] == 1


def test_rendezvous__duplicate_request_gets_no_second_result(server):
    server.on_request(request("r1"), 0)
    assert server.on_score(score("r1", "a"), 0)
    assert server.on_request(request("r1"), 0) == []
    assert server.stats["duplicate_requests"] == 1


def test_rendezvous__canary_is_recorded_never_chosen(server, clock):
    server.on_request(request("r1"), 0)
    server.on_score(score("r1", "c"), 0)
    [(_, _, result)] = server.on_score(score("r1", "a"), 0)
    assert result["model_id"] == "a" and {s["model_id"] for s in result["scores"]} == {"a", "c"}


def test_rendezvous__model_down_after_missed_deadlines_is_not_waited_for(server, clock):
    for rid in ("r1", "r2"):
        server.on_request(request(rid), 0)
        server.on_score(score(rid, "b"), 0)
    clock.now += 100
    assert len(server.due()) == 2
    assert server.fallback.down == {"a"}
    server.on_request(request("r3"), 0)
    [(_, _, result)] = server.on_score(score("r3", "b"), 0)
    assert "set aside: a (missed" in result["reason"]
    clock.now += 1
    server.on_score(score("r1", "a"), 0)  # a's score of a request whose deadline passed: still late
    assert server.fallback.down == {"a"}
    server.on_score(score("r3", "a"), 0)  # before r3's deadline (after b answered it): it is back
    assert server.fallback.down == set()


def test_rendezvous__a_model_running_behind_is_set_aside_once_not_every_few_requests(server, clock):
    """Every score of ``a`` comes 150 ms after its request (deadline 100 ms): one alert that sets
    it aside, none that brings it back, however many late scores arrive; one when it is punctual."""
    for i in range(40):
        server.on_request(request(f"r{i}"), 0)
        server.on_score(score(f"r{i}", "b"), 0)
        clock.now += 50
        server.due()
        if i >= 3:
            server.on_score(score(f"r{i - 3}", "a"), 0)
    kinds = [(a["kind"], a["cause"]) for a in server.alerts if a["model_id"] == "a"]
    assert kinds == [("fallback", "late")] and server.fallback.down == {"a"}
    server.on_request(request("fast"), 0)
    server.on_score(score("fast", "a"), 0)
    assert [a["kind"] for a in server.alerts if a["model_id"] == "a"][-1] == "recovered" and not server.fallback.down


def test_rendezvous__recover_rearms_open_mailboxes_from_the_table(clock):
    table = DictStore()
    first = Rendezvous(SPEC, table, clock=clock)
    first.on_request(request("r1"), 2)
    second = Rendezvous(SPEC, table, clock=clock)  # a restarted worker: table restored, no timers
    assert second.recover() == 1 and second.recover() == 0
    clock.now += 100
    [(rid, partition, result)] = second.due()
    assert rid == "r1" and partition == 2 and result["status"] == "timeout"


class CountingStore(DictStore):
    def __init__(self):
        super().__init__()
        self.saved = []

    def save(self, request_id, box, final=False):
        self.saved.append((request_id, box["done"], final))
        super().save(request_id, box, final)


def test_rendezvous__every_change_is_marked_for_the_changelog_and_final_only_once_its_result_is_out(clock):
    store = CountingStore()
    server = Rendezvous(SPEC, store, clock=clock)
    server.on_request(request("r1"), 0)
    server.on_score(score("r1", "c"), 0)   # canary: does not decide
    assert store.saved == [("r1", None, False)] * 2  # open: written by the commit hook (coalesced)
    assert server.on_score(score("r1", "a"), 0)  # decides: closed in memory, not yet final
    assert all(not final for _, _, final in store.saved) and store.get("r1")["done"] == "ok"
    server.confirm("r1")                   # the Result went to the producer
    assert store.saved[-1] == ("r1", "ok", True)
    server.on_score(score("r1", "b"), 0)   # late: filed, so its feedback counts after a restart too
    assert store.saved[-1] == ("r1", "ok", True)
    assert set(store.get("r1")["scores"]) == {"a", "b", "c"}


def test_rendezvous__a_replayed_label_that_overtakes_its_request_is_joined_when_the_request_comes(clock):
    server = Rendezvous(SPEC, DictStore(), clock=clock)
    server.remember_answered({"r1": clock()})
    server.on_score(score("r1", "a"), 0)
    assert server.on_feedback({"request_id": "r1", "label": 1}, 0) == (None, None)  # parked, not refused
    assert server.book.summary()["a"]["labelled"] == 0
    server.on_request(request("r1"), 0)
    assert server.book.summary()["a"]["labelled"] == 1 and [e["request_id"] for e in server.examples] == ["r1"]
    assert server.on_feedback({"request_id": "r2", "label": 1}, 0)[1].startswith("feedback for unknown request")


def test_rendezvous__a_request_answered_before_a_crash_that_lost_its_mailbox_still_joins_its_feedback(clock):
    server = Rendezvous(SPEC, DictStore(), clock=clock)
    server.remember_answered({"r1": clock()})  # its Result is on the results topic
    server.on_score(score("r1", "a"), 0)       # redelivered after the crash, before the request
    assert server.on_request(request("r1"), 0) == []  # not answered again
    assert server.due() == [] and server.stats["duplicate_requests"] == 1
    example, refused = server.on_feedback({"request_id": "r1", "label": 1}, 0)
    assert refused is None and example["features"] == request("r1")["features"]
    assert server.book.summary()["a"]["labelled"] == 1
    server.on_score(score("r1", "b"), 0)  # replayed after its label: the label counts for it too, once
    server.on_score(score("r1", "b"), 0)
    assert server.book.summary()["b"]["labelled"] == 1 and server.book.summary()["a"]["labelled"] == 1


def test_rendezvous__unconfirmed_close_is_decided_again_after_a_restart(clock):
    store = CountingStore()
    server = Rendezvous(SPEC, store, clock=clock)
    server.on_request(request("r1"), 0)
    server.on_score(score("r1", "a"), 0)   # decided, but the worker stops before confirm()
    durable = DictStore({rid: dict(box, scores={}, done=None) for rid, box in [("r1", store.get("r1"))]})
    restarted = Rendezvous(SPEC, durable, clock=clock)  # what the changelog holds: open
    assert restarted.recover() == 1
    [(_, _, result)] = restarted.on_score(score("r1", "a"), 0)  # the score is replayed
    assert result["status"] == "ok"


def test_rendezvous__requests_answered_before_a_restart_are_never_answered_again(server, clock):
    server.remember_answered({"r1": 1.0})  # read back from the results topic on assignment
    assert server.on_request(request("r1"), 0) == []
    assert server.on_score(score("r1", "a"), 0) == []
    clock.now += 1000
    assert server.due() == [] and server.recover() == 0
    assert server.late["a"] == 1


def test_rendezvous__a_result_is_answered_in_its_requests_encoding(server):
    server.on_request(request("r-json"), 0, "json")
    server.on_request(request("r-avro"), 0, "avro")
    assert server.encoding_of("r-json", "avro") == "json"
    assert server.encoding_of("r-avro", "json") == "avro"
    assert server.encoding_of("unknown", "avro") == "avro"


def test_rendezvous__scores_whose_request_never_arrives_answer_it_after_the_grace(clock):
    server = Rendezvous(SPEC, DictStore(), clock=clock, orphan_grace_ms=2000)
    assert server.on_score(score("lost", "b"), 2) == []
    clock.now += 1999
    assert server.due() == []                      # the request may still come
    clock.now += 1
    [(rid, partition, result)] = server.due()
    assert (rid, partition) == ("lost", 2) and result["status"] == "ok" and result["model_id"] == "b"
    assert result["reason"].startswith("the request never reached the rendezvous, answered from its scores")
    assert server.on_request(request("lost"), 2) == []   # arriving late, it is a duplicate
    assert server.stats["orphans"] == 1 and server.stats["duplicate_requests"] == 1


def test_rendezvous__a_request_arriving_within_the_grace_is_no_orphan(clock):
    server = Rendezvous(SPEC, DictStore(), clock=clock, orphan_grace_ms=2000)
    server.on_score(score("r1", "b"), 0)
    clock.now += 10
    assert server.on_request(request("r1"), 0) == []    # waits for a, the champion
    [(_, _, result)] = server.on_score(score("r1", "a"), 0)
    assert result["model_id"] == "a" and "never reached" not in result["reason"]
    clock.now += 5000
    assert server.due() == [] and server.stats["orphans"] == 0


def test_rendezvous__an_orphan_with_a_long_deadline_waits_for_the_rest_of_it(clock):
    long = PipelineSpec.from_dict({**SPEC.to_dict(), "deadline_ms": 5000})
    server = Rendezvous(long, DictStore(), clock=clock, orphan_grace_ms=2000)
    server.on_score(score("r1", "b"), 0)
    clock.now += 2000
    assert server.due() == []                      # opened from its scores; a may still answer
    [(_, _, result)] = server.on_score(score("r1", "a"), 0)
    assert result["model_id"] == "a"


def answered(server, rid, predictions, partition=0):
    """Open ``rid`` and file a score per model: model -> prediction."""
    server.on_request(request(rid), partition)
    out = []
    for model, prediction in predictions.items():
        out += server.on_score(score(rid, model, prediction=prediction), partition)
    return out


def test_feedback__joins_scores_and_answer_and_emits_the_labelled_example(server):
    [(_, _, result)] = answered(server, "r1", {"a": 1, "b": 0, "c": 0})[:1]
    assert result["model_id"] == "a"
    example, refused = server.on_feedback({"request_id": "r1", "label": 0, "observed_at": 7}, 0, {"x": 1.0})
    assert refused is None and example == {"request_id": "r1", "features": {"x": 1.0}, "label": 0, "observed_at": 7}
    summary = server.book.summary()
    assert (summary["a"]["accuracy"], summary["b"]["accuracy"], summary["a"]["chosen_share"]) == (0.0, 1.0, 1.0)
    assert summary["b"]["agreement_canary"] == 1.0 and summary["b"]["agreement_answer"] == 0.0


def test_feedback__unknown_expired_and_duplicate_labels_are_refused_with_the_reason(server, clock):
    assert "unknown request 'nope'" in server.on_feedback({"request_id": "nope", "label": 1}, 0, None)[1]
    answered(server, "r1", {"a": 1})
    assert server.on_feedback({"request_id": "r1", "label": 1}, 0, {"x": 1.0})[1] is None
    assert "already received" in server.on_feedback({"request_id": "r1", "label": 0}, 0, {"x": 1.0})[1]
    answered(server, "r2", {"a": 1})
    clock.now += (SPEC.feedback_ttl_s + 1) * 1000
    assert "expired request 'r2'" in server.on_feedback({"request_id": "r2", "label": 1}, 0, {"x": 1.0})[1]
    assert server.stats["feedback_unknown"] == server.stats["feedback_expired"] == server.stats["feedback_duplicate"] == 1


def test_feedback__late_scores_still_count_for_their_model(server):
    answered(server, "r1", {"a": 1})  # a is the top preference: answered before b scored
    server.on_score(score("r1", "b", prediction=1), 0)
    server.on_feedback({"request_id": "r1", "label": 1}, 0, {"x": 1.0})
    summary = server.book.summary()
    assert summary["b"]["accuracy"] == 1.0 and summary["b"]["late"] == 1


def test_feedback__a_model_worse_than_the_canary_is_set_aside_with_an_alert_and_comes_back(clock):
    spec = PipelineSpec.from_dict({**SPEC.to_dict(), "fallback": {"min_labels": 20, "accuracy_margin": 0.1, "window": 40}})
    server = Rendezvous(spec, DictStore(), clock=clock)
    for i in range(30):  # a is always wrong, b and the canary right
        answered(server, f"r{i}", {"a": 0, "b": 1, "c": 1})
        server.on_feedback({"request_id": f"r{i}", "label": 1}, 0, {"x": 1.0})
    assert [(a["kind"], a["model_id"], a["cause"]) for a in server.alerts] == [("fallback", "a", "accuracy")]
    [(_, _, result)] = answered(server, "next", {"a": 0, "b": 1})
    assert result["model_id"] == "b" and "set aside: a (recent accuracy" in result["reason"]
    server.alerts.clear()
    for i in range(40):  # a recovers
        answered(server, f"s{i}", {"a": 1, "b": 1, "c": 1})
        server.on_feedback({"request_id": f"s{i}", "label": 1}, 0, {"x": 1.0})
    assert [a["kind"] for a in server.alerts] == ["recovered"] and server.fallback.set_aside == set()


def test_feedback__the_bandit_learns_from_it_and_shifts_answers(clock):
    spec = PipelineSpec.from_dict({**SPEC.to_dict(), "policy": {"name": "bandit", "algorithm": "epsilon_greedy",
                                                                "epsilon": 0.05, "seed": 4}})
    server = Rendezvous(spec, DictStore(), clock=clock)
    chosen = []
    for i in range(300):
        [(_, _, result)] = answered(server, f"r{i}", {"a": 0, "b": 1, "c": 0})[:1] or [(0, 0, {"model_id": None})]
        chosen.append(result["model_id"])
        server.on_feedback({"request_id": f"r{i}", "label": 1}, 0, {"x": 1.0})
    assert chosen[-100:].count("b") >= 85, chosen[-100:].count("b")
    assert "bandit's pick" in result["reason"]


def test_rendezvous__a_registry_change_keeps_what_the_bandit_learned(clock):
    spec = PipelineSpec.from_dict({**SPEC.to_dict(), "policy": {"name": "bandit", "seed": 1}})
    server = Rendezvous(spec, DictStore(), clock=clock)
    server.policy.order({})
    server.policy.learn(("b", "a"), {}, {"b": 1.0, "a": 0.0})
    before = server.policy
    server.update(replace(spec, models=spec.models[:2]))
    assert server.policy is before and server.policy.pulls() == {"b": 1, "a": 1}
    assert server.policy.policy.mean("b") == 1.0 and server.policy.policy.mean("a") == 0.0


def test_feedback__a_shadow_with_an_auto_promote_rule_is_put_forward_once_it_beats_the_champion(clock):
    spec = PipelineSpec.from_dict({**SPEC.to_dict(), "models": [*SPEC.to_dict()["models"],
                                                                {"id": "new", "flavour": "external", "role": "shadow"}]})
    spec = replace(spec, models=tuple(replace(m, auto_promote=0.95) if m.id == "new" else m for m in spec.models))
    server = Rendezvous(spec, DictStore(), clock=clock)
    for i in range(40):  # the champion a is wrong on every fourth request, new never
        answered(server, f"r{i}", {"a": 0 if i % 4 == 0 else 1, "new": 1})
        server.on_feedback({"request_id": f"r{i}", "label": 1}, 0, {"x": 1.0})
    assert server.promotions == []  # 10 discordant pairs: too few to say
    for i in range(40, 80):
        answered(server, f"r{i}", {"a": 0 if i % 4 == 0 else 1, "new": 1})
        server.on_feedback({"request_id": f"r{i}", "label": 1}, 0, {"x": 1.0})
    [found] = server.promotions
    assert (found["model_id"], found["champion"], found["champion_only"], found["candidate_only"]) == ("new", "a", 0, 20)
    assert found["p_value"] == pytest.approx(0.5 ** 20)


def test_feedback__a_retrained_shadow_starts_its_gate_from_its_held_out_pairs_against_that_champion(clock):
    """A retrain paired the candidate with the champion on held-out rows neither learned (0 vs 18):
    live, the gate starts there, and two discordant requests settle it; against another champion
    the held-out pairs do not count."""
    def run(prior):
        spec = PipelineSpec.from_dict({**SPEC.to_dict(), "models": [*SPEC.to_dict()["models"],
                                                                    {"id": "new", "flavour": "external", "role": "shadow"}]})
        spec = replace(spec, models=tuple(replace(m, auto_promote=0.95, prior=prior) if m.id == "new" else m
                                          for m in spec.models))
        server = Rendezvous(spec, DictStore(), clock=clock)
        for i in range(8):  # the champion a is wrong on every fourth request, new never
            answered(server, f"{prior}-r{i}", {"a": 0 if i % 4 == 0 else 1, "new": 1})
            server.on_feedback({"request_id": f"{prior}-r{i}", "label": 1}, 0, {"x": 1.0})
        return server.promotions

    [found] = run((("a", 0, 18),))
    assert (found["champion_only"], found["candidate_only"]) == (0, 20)
    assert run((("b", 0, 18),)) == [] and run(()) == []


def test_feedback__a_model_whose_errors_jump_raises_a_decay_alert(clock):
    server = Rendezvous(SPEC, DictStore(), clock=clock)
    for i in range(3000):  # a is right until request 1500, then wrong half the time
        answered(server, f"r{i}", {"a": 1 if i < 1500 or i % 2 else 0, "b": 1})
        server.on_feedback({"request_id": f"r{i}", "label": 1}, 0, {"x": 1.0})
    decay = [a for a in server.alerts if a["kind"] == "decay"]
    assert decay and {a["model_id"] for a in decay} == {"a"} and decay[0]["cause"] == "adwin"


def test_rendezvous__scores_that_arrive_together_are_all_filed_before_deciding(server):
    server.on_request(request("r1"), 0)
    [(_, _, result)] = server.on_scores([score("r1", "a"), score("r1", "b"), score("r1", "c")], 0)
    assert result["model_id"] == "a" and {s["model_id"] for s in result["scores"]} == {"a", "b", "c"}
    assert server.on_scores([score("r1", "b")], 0) == [] and server.late["b"] == 1


def test_rendezvous__closed_mailboxes_are_forgotten_after_the_feedback_ttl(clock):
    server = Rendezvous(replace(SPEC, feedback_ttl_s=10), DictStore(), clock=clock)
    server.on_request(request("old"), 0)
    [(rid, _, _)] = server.on_score(score("old", "a"), 0)
    server.confirm(rid)
    clock.now += 5_000
    server.on_request(request("waiting", deadline_ms=60_000), 1)  # still open at expiry time: kept
    assert server.expire() == 0
    clock.now += 5_000  # 10 s after "old" opened
    assert server.expire() == 1 and server.mailboxes.get("old") is None
    assert server.mailboxes.get("waiting") is not None and server.stats["mailboxes_forgotten"] == 1
    _, refused = server.on_feedback({"request_id": "old", "label": 1}, 0)
    assert "unknown request" in refused


def test_rendezvous__restored_closed_mailboxes_get_their_retention_back(clock):
    store = DictStore()
    first = Rendezvous(replace(SPEC, feedback_ttl_s=10), store, clock=clock)
    first.on_request(request("r1"), 0)
    [(rid, _, _)] = first.on_score(score("r1", "a"), 0)
    first.confirm(rid)
    restarted = Rendezvous(replace(SPEC, feedback_ttl_s=10), store, clock=clock)  # the table came back
    restarted.recover()
    clock.now += 10_000
    assert restarted.expire() == 1 and store.get("r1") is None


def test_rendezvous__a_decayed_model_is_retrained_from_its_change_once_enough_labels_came(clock, tmp_path):
    """auto_retrain: the champion's errors jump at request 1,500; the engine's detectors fire, and
    once 300 labelled requests came after the change a job names the model and the change's time.
    The canary decays too but is not retrained; the challenger never decays."""
    artifact = tmp_path / "m.skops"
    artifact.write_bytes(b"not read here")
    spec = PipelineSpec.from_dict({"pipeline": "p", "deadline_ms": 100,
                                   "quality": {"auto_retrain": True, "retrain_min_rows": 300, "enabled": False},
                                   "models": [
        {"id": "a", "flavour": "sklearn", "role": "champion", "group": "a", "artifact": str(artifact)},
        {"id": "b", "flavour": "external", "role": "challenger", "group": "b"},
        {"id": "c", "flavour": "sklearn", "role": "canary", "group": "c", "artifact": str(artifact)},
    ]})
    server = Rendezvous(spec, DictStore(), clock=clock)
    opened = {}
    for i in range(3000):
        rid, label = f"r{i}", i % 2
        clock.now += 10
        opened[rid] = clock.now
        server.on_request(request(rid), 0)
        wrong = i >= 1500 and i % 3 == 0  # a and c: right always, then wrong a third of the time
        for model in "abc":
            server.on_score(score(rid, model, prediction=1 - label if wrong and model != "b" else label), 0)
        server.on_feedback({"request_id": rid, "label": label}, 0)
        if server.retrain_jobs:
            break
    [job] = server.retrain_jobs
    assert job.model_id == "a" and job.rows >= 300
    assert abs(job.since_ms - opened["r1500"]) <= 10 * 30, (job.since_ms, opened["r1500"])  # within 30 requests
    assert any(a["kind"] == "decay" and a["model_id"] == "c" for a in server.alerts)  # the canary decayed: not retrained
    assert not any(a["kind"] == "decay" and a["model_id"] == "b" for a in server.alerts)
    assert any("retrained once 300 labelled requests" in a["reason"] for a in server.alerts if a["model_id"] == "a")


def test_rendezvous__a_retrained_lineage_is_retrained_again_as_the_rows_since_its_change_double(clock, tmp_path):
    """retrain_refinements: after the first retrain (a -> a-r1), the rows since the same change
    doubling retrain the newest live version (a-r1), on them all; not while a-r1 is still a
    shadow under evaluation."""
    artifact = tmp_path / "m.skops"
    artifact.write_bytes(b"not read here")
    models = [{"id": "a", "flavour": "sklearn", "role": "champion", "group": "a", "artifact": str(artifact)},
              {"id": "b", "flavour": "external", "role": "challenger", "group": "b"}]
    quality = {"auto_retrain": True, "retrain_min_rows": 200, "retrain_refinements": 1, "enabled": False}
    spec = PipelineSpec.from_dict({"pipeline": "p", "deadline_ms": 100, "quality": quality, "models": models})
    server = Rendezvous(spec, DictStore(), clock=clock)
    jobs, promoted_at = [], None
    for i in range(4000):
        rid, label = f"r{i}", i % 2
        clock.now += 10
        server.on_request(request(rid), 0)
        wrong = i >= 1000 and i % 3 == 0
        for model in [m.id for m in server.spec.models]:
            score_of_a = model.startswith("a") and not (model == "a" and wrong)
            server.on_score(score(rid, model, prediction=label if score_of_a or model == "b" and not wrong else 1 - label), 0)
        server.on_feedback({"request_id": rid, "label": label}, 0)
        jobs += server.retrain_jobs
        for job in server.retrain_jobs:
            server.retrains.finished(job)  # as agents/feedback.py says when its process ended
        server.retrain_jobs.clear()
        if len(jobs) == 1 and len(server.spec.models) == 2:  # what `rendezvous retrain` registers: a shadow
            server.update(PipelineSpec.from_dict({"pipeline": "p", "deadline_ms": 100, "quality": quality, "models": [
                *models, {"id": "a-r1", "flavour": "sklearn", "role": "shadow", "group": "a", "artifact": str(artifact)}]}))
            shadow_until = i + 1000
        if len(jobs) == 1 and i == shadow_until:  # promoted 1,000 requests later
            promoted_at = i
            server.update(PipelineSpec.from_dict({"pipeline": "p", "deadline_ms": 100, "quality": quality, "models": [
                {**models[0], "role": "challenger"}, models[1],
                {"id": "a-r1", "flavour": "sklearn", "role": "champion", "group": "a", "artifact": str(artifact)}]}))
    first, second = jobs
    assert (first.model_id, first.refinement) == ("a", 0) and first.rows >= 200
    # doubled while a-r1 was a shadow: it waited, and came on the first check after the promotion
    assert (second.model_id, second.refinement, second.since_ms) == ("a-r1", 1, first.since_ms)
    assert second.rows > 2 * first.rows and promoted_at is not None
    assert "refinement 1" in second.why
