"""Deployment spec parsing: valid specs load, invalid ones name the field."""

import pytest

from pipelines.spec import PipelineSpec, SpecError, load_spec

BASE = {
    "pipeline": "loans",
    "deadline_ms": 80,
    "models": [
        {"id": "lr", "flavour": "sklearn", "artifact": "m/lr.skops", "role": "champion", "group": "a", "preference": 1},
        {"id": "xgb", "flavour": "xgboost", "artifact": "m/x.ubj", "role": "challenger", "group": "b", "preference": 0},
        {"id": "old", "flavour": "sklearn", "artifact": "m/o.skops", "role": "canary", "group": "a"},
        {"id": "java", "flavour": "external", "role": "shadow", "group": "j"},
    ],
}


def test_spec__ranking_puts_the_champion_first_then_follows_preference_and_skips_canary_and_shadow():
    spec = PipelineSpec.from_dict(BASE)
    assert spec.ranking == ("lr", "xgb")  # lr is champion although xgb has the lower preference
    no_champion = {**BASE, "models": [dict(m, role="challenger") if m["id"] == "lr" else m for m in BASE["models"]]}
    assert PipelineSpec.from_dict(no_champion).ranking == ("xgb", "lr")
    assert {g: [m.id for m in ms] for g, ms in spec.groups.items()} == {"a": ["lr", "old"], "b": ["xgb"]}


def test_spec__round_trips_through_yaml(tmp_path):
    import yaml

    path = tmp_path / "loans.yaml"
    path.write_text(yaml.safe_dump(BASE))
    spec = load_spec(path)
    assert spec.deadline_ms == 80 and spec.model("lr").artifact == tmp_path / "m/lr.skops"
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(spec.to_dict()))
    assert load_spec(again).models == spec.models
    assert load_spec(again).learning == spec.learning and spec.learning.adapt == "background"  # the default


@pytest.mark.parametrize(
    "change, field",
    [
        ({"pipeline": "bad name!"}, "'pipeline'"),
        ({"models": []}, "'models'"),
        ({"deadline_ms": 0}, "'deadline_ms'"),
        ({"policy": "coin"}, "'policy'"),
        ({"models": [{"id": "a", "flavour": "torch", "artifact": "x"}]}, "'models[0].flavour'"),
        ({"models": [{"id": "a", "flavour": "sklearn"}]}, "'models[0].artifact'"),
        ({"models": [{"id": "a", "flavour": "sklearn", "artifact": "x", "role": "boss"}]}, "'models[0].role'"),
        ({"models": [{"id": "a", "flavour": "sklearn", "artifact": "x", "role": "canary"}]}, "champion or challenger"),
        ({"learning": {"adapt": "forget"}}, "'learning.adapt'"),
        ({"learning": {"delta": 2}}, "'learning.delta'"),
        ({"learning": {"grace": 0}}, "'learning.grace'"),
        ({"quality": {"retrain_min_rows": -1}}, "'quality.retrain_min_rows'"),
        ({"quality": {"retrain_refinements": -1}}, "'quality.retrain_refinements'"),
        ({"quality": {"false_alarms_per_day": 0}}, "'quality.false_alarms_per_day'"),
        ({"quality": {"drift_persistence": 0}}, "'quality.drift_persistence'"),
    ],
)
def test_spec__invalid_field_is_named(change, field):
    with pytest.raises(SpecError, match=field.replace("[", r"\[").replace("]", r"\]")):
        PipelineSpec.from_dict({**BASE, **change})


def test_spec__quality_states_its_false_alarm_rate_and_persistence():
    default = PipelineSpec.from_dict({**BASE, "quality": {}}).quality
    assert (default.false_alarms_per_day, default.drift_persistence) == (0.1, 2)
    tuned = PipelineSpec.from_dict({**BASE, "quality": {"false_alarms_per_day": 1, "drift_persistence": 3}}).quality
    assert (tuned.false_alarms_per_day, tuned.drift_persistence) == (1.0, 3)
    assert PipelineSpec.from_dict(PipelineSpec.from_dict({**BASE, "quality": {"drift_persistence": 3}}).to_dict()
                                  ).quality.drift_persistence == 3


def test_spec__missing_file_says_what_to_do(tmp_path):
    with pytest.raises(SpecError, match="rendezvous demo"):
        load_spec(tmp_path / "nope.yaml")


def test_spec__checks_have_defaults_and_are_validated():
    spec = PipelineSpec.from_dict(BASE)
    assert spec.latency_budget_ms == 40 and spec.checks.min_rows == 100
    tuned = PipelineSpec.from_dict({**BASE, "checks": {"latency_budget_ms": 25, "min_agreement": 0.9}})
    assert tuned.latency_budget_ms == 25 and tuned.checks.min_agreement == 0.9
    with pytest.raises(SpecError, match="checks.min_agreement"):
        PipelineSpec.from_dict({**BASE, "checks": {"min_agreement": 1.5}})
    with pytest.raises(SpecError, match="unknown keys"):
        PipelineSpec.from_dict({**BASE, "checks": {"min_agreemnt": 0.5}})
