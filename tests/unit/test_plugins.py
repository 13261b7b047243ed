"""One registration point: a throw-away flavour and policy, each one module plus one registration,
reach spec validation, the registry, loading, the policy factory and the CLI's choices."""

import sys
import textwrap

import pytest
from click.testing import CliRunner

from pipelines import registry
from pipelines.flavours import load_model
from pipelines.flavours.base import sha256_of
from pipelines.plugins import FLAVOURS, POLICIES, register_flavour, register_policy
from pipelines.policies import ScoreView, policy_for
from pipelines.spec import PipelineSpec, SpecError
from streams.models_cli import models

FLAVOUR = '''
from pipelines.flavours.base import Model, Outcome


class Constant(Model):
    """Answers the number in its artifact, whatever the features."""

    def __init__(self, spec, value):
        super().__init__(spec)
        self.value = value

    def _predict(self, matrix):
        return [Outcome(self.value, None, None) for _ in matrix]


def load(spec, data):
    return Constant(spec, float(data.decode()))
'''

POLICY = '''
from pipelines.policies.base import Decision, Policy


class Last(Policy):
    """The least preferred model that answered, at once."""

    name = "last"

    def decide(self, scores, deadline_at_ms, now_ms, down=frozenset(), order=None):
        for model in reversed(order or self.ranking):
            if model in scores and scores[model].status == "ok":
                return Decision("ok", f"{model}, the last that answered", scores[model])
        return None
'''


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    FLAVOURS.pop("constant", None)
    POLICIES.pop("last", None)
    for name in ("throwaway_flavour", "throwaway_policy"):
        sys.modules.pop(name, None)


def _spec(flavour: str, artifact, policy: str = "preference") -> dict:
    sha = sha256_of(artifact) if artifact.is_file() else None
    return {"pipeline": "plug", "policy": policy, "models": [
        {"id": "c", "flavour": flavour, "artifact": str(artifact), "sha256": sha, "role": "champion", "group": "g",
         "features": ["x"]},
        {"id": "d", "flavour": flavour, "artifact": str(artifact), "sha256": sha, "role": "challenger", "group": "g",
         "features": ["x"]}]}


def test_plugins__a_new_flavour_is_one_module_and_one_registration(plugin_dir):
    (plugin_dir / "throwaway_flavour.py").write_text(textwrap.dedent(FLAVOUR))
    artifact = plugin_dir / "answer.txt"
    artifact.write_text("42")
    with pytest.raises(SpecError, match="constant"):  # unknown before its registration
        PipelineSpec.from_dict(_spec("constant", artifact))
    assert "constant" not in CliRunner().invoke(models, ["register", "--help"]).output

    register_flavour("constant", "throwaway_flavour", "txt")

    spec = PipelineSpec.from_dict(_spec("constant", artifact))  # the spec's validation knows it
    champion = spec.models[0]
    model = load_model(champion)  # verified and loaded through its module
    assert [o.prediction for o in model.score_batch([{"x": 1.0}, {"x": 2.0}])] == [42.0, 42.0]
    record = registry.event("plug", "c", "1", "register", "shadow", "constant", sha256=sha256_of(artifact))
    assert record["flavour"] == "constant"  # the registry's events accept it
    help_text = CliRunner().invoke(models, ["register", "--help"]).output
    assert "constant" in help_text and "xgboost" in help_text  # the CLI's choice derives from the registry


def test_plugins__a_new_policy_is_one_module_and_one_registration(plugin_dir, tmp_path):
    (plugin_dir / "throwaway_policy.py").write_text(textwrap.dedent(POLICY))
    with pytest.raises(SpecError, match="last"):
        PipelineSpec.from_dict(_spec("external", tmp_path, policy="last"))

    register_policy("last", "throwaway_policy:Last.from_spec")

    spec = PipelineSpec.from_dict(_spec("external", tmp_path, policy="last"))
    policy = policy_for(spec.policy, spec.ranking)
    scores = {m: ScoreView(m, "ok", 1) for m in ("c", "d")}
    decision = policy.decide(scores, deadline_at_ms=100.0, now_ms=0.0)
    assert policy.name == "last" and decision.score.model_id == "d"


def test_plugins__registrations_are_checked():
    with pytest.raises(ValueError, match="module:callable"):
        register_policy("broken", "no_colon_here")
    assert "broken" not in POLICIES
