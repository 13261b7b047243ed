"""The fallback rule: set aside on errors, missed deadlines or accuracy below the canary's; back on recovery."""

from pipelines.fallback import Fallback
from pipelines.spec import FallbackSpec, SpecError

import pytest


def test_fallback__errors_in_a_row_set_a_model_aside_until_it_scores_well_again():
    guard = Fallback(FallbackSpec(error_limit=3))
    assert guard.scored("a", "error") == [] and guard.scored("a", "ok") == []  # an ok resets the count
    alerts = [a for _ in range(3) for a in guard.scored("a", "error")]
    assert [(a["kind"], a["cause"]) for a in alerts] == [("fallback", "errors")] and guard.set_aside == {"a"}
    assert guard.down == set()  # set aside, but still waited for: it answers, just badly
    [back] = guard.scored("a", "ok")
    assert back["kind"] == "recovered" and guard.set_aside == set()


def test_fallback__accuracy_below_the_canary_by_the_margin_with_hysteresis():
    guard = Fallback(FallbackSpec(accuracy_margin=0.1, min_labels=50))
    assert guard.judge({"a": (0.5, 40), "canary": (0.9, 40)}, "canary") == []  # too few labels
    [alert] = guard.judge({"a": (0.75, 60), "canary": (0.9, 60)}, "canary")
    assert alert["cause"] == "accuracy" and "0.750 over 60 labels, canary 0.900" in alert["reason"]
    assert guard.judge({"a": (0.82, 60), "canary": (0.9, 60)}, "canary") == []  # within the margin, not within half
    [back] = guard.judge({"a": (0.86, 60), "canary": (0.9, 60)}, "canary")
    assert back["kind"] == "recovered" and guard.set_aside == set()


def test_fallback__no_canary_no_accuracy_rule():
    assert Fallback().judge({"a": (0.1, 500)}, None) == []


def test_fallback_spec__validates():
    assert FallbackSpec.from_dict({"accuracy_margin": 0.02}).accuracy_margin == 0.02
    with pytest.raises(SpecError, match="fallback.accuracy_margin"):
        FallbackSpec.from_dict({"accuracy_margin": 3})
    with pytest.raises(SpecError, match="unknown keys"):
        FallbackSpec.from_dict({"margin": 0.1})
