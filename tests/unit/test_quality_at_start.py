"""A spec that asks for quality checks gets its reference profile at start, or is refused then."""

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from pipelines.jobs.lifecycle import LifecycleError, ensure_profile
from pipelines.spec import SpecError, load_spec
from streams.cli import main
from streams.kafka.settings import Settings


def _spec(tmp_path, quality, training_data: bool):
    rng = np.random.default_rng(0)
    rows = np.column_stack([rng.normal(50, 10, 400), rng.uniform(0, 1, 400), rng.integers(0, 2, 400)])
    np.savetxt(tmp_path / "training.csv", rows, delimiter=",", header="x,y,label", comments="", fmt="%.6g")
    model = {"id": "m", "flavour": "external", "role": "champion", "group": "g", "features": ["x", "y"]}
    if training_data:
        model["training_data"] = "training.csv"
    data = {"pipeline": "q", "models": [model], **({"quality": quality} if quality is not None else {})}
    (tmp_path / "q.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "q.yaml"


def test_quality_at_start__the_profile_is_built_from_the_models_training_data(tmp_path):
    spec = load_spec(_spec(tmp_path, {"window_rows": 500}, training_data=True))
    folder = ensure_profile(spec, Settings(data_dir=tmp_path / "data"))
    assert (tmp_path / "data" / "q" / "profiles" / "current").exists() and (folder / "profile.json").exists()
    assert ensure_profile(spec, Settings(data_dir=tmp_path / "data")) == tmp_path / "data" / "q" / "profiles" / "current"  # kept


def test_quality_at_start__no_section_no_profile_and_no_error(tmp_path):
    assert ensure_profile(load_spec(_spec(tmp_path, None, training_data=False)), Settings(data_dir=tmp_path / "data")) is None
    assert ensure_profile(load_spec(_spec(tmp_path, {"enabled": False}, training_data=False)), Settings(data_dir=tmp_path / "data")) is None


def test_quality_at_start__asked_and_impossible_is_refused_before_anything_starts(tmp_path):
    path = _spec(tmp_path, {"window_rows": 500}, training_data=False)
    try:
        ensure_profile(load_spec(path), Settings(data_dir=tmp_path / "data"))
    except LifecycleError as exc:
        assert "training_data" in str(exc) and "rendezvous profile" in str(exc)
    else:
        raise AssertionError("a spec asking for quality checks it cannot have was accepted")
    # `up` says so and exits, before any broker or worker (the broker given here does not exist)
    result = CliRunner().invoke(main, ["up", str(path), "--broker", "kafka://127.0.0.1:1", "--data-dir",
                                       str(tmp_path / "data")])
    assert result.exit_code != 0 and "asks for quality checks" in result.output, result.output


def test_quality_at_start__auto_retraining_without_a_model_to_retrain_is_refused(tmp_path):
    # the only model is external: nothing could be retrained when it decays
    path = _spec(tmp_path, {"auto_retrain": True}, training_data=True)
    with pytest.raises(SpecError, match="quality.auto_retrain.*no model can be retrained"):
        load_spec(path)
    result = CliRunner().invoke(main, ["up", str(path), "--broker", "kafka://127.0.0.1:1", "--data-dir",
                                       str(tmp_path / "data")])
    assert result.exit_code != 0 and "no model can be retrained" in result.output, result.output
