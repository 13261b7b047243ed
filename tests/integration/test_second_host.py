"""A second data directory against a broker that already has the pipeline (another host, or a
second `demo`): the same artifacts are taken in; different ones are refused at start with what
to do — never a worker that dies on a missing blob."""

from __future__ import annotations

import yaml
import pytest
from click.testing import CliRunner

from pipelines.jobs.lifecycle import LifecycleError, live_pipeline
from pipelines.spec import load_spec
from streams.cli import main
from streams.kafka.topics import ensure_topics
from streams.testing import make_stack

pytestmark = pytest.mark.integration


def test_second_host__same_artifacts_are_taken_in_others_are_refused_with_what_to_do(broker, trained, tmp_path, run):
    stack = make_stack(broker, trained, tmp_path)  # not started: only its spec and settings
    spec, settings = stack.spec, stack.settings
    run(ensure_topics(settings, spec.name, spec.partitions))  # what `up` does first
    first = run(live_pipeline(spec, settings, tmp_path / "host-a"))  # registers the models, blobs in host-a
    assert all(m.artifact.is_relative_to(tmp_path / "host-a") and m.artifact.exists() for m in first.models)

    # host b has the same model files (the same spec): their bytes are what the registry names
    second = run(live_pipeline(spec, settings, tmp_path / "host-b"))
    assert [m.sha256 for m in second.models] == [m.sha256 for m in first.models]
    assert all(m.artifact.is_relative_to(tmp_path / "host-b") and m.artifact.exists() for m in second.models)

    # host c was given another xgb under the same pipeline name: refused, and told what to do
    data = yaml.safe_load(spec.source.read_text())
    xgb = next(m for m in data["models"] if m["id"] == "xgb")
    xgb["artifact"], xgb["sha256"] = xgb["artifact"].replace("xgb.ubj", "xgb2.ubj"), None
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(data))
    with pytest.raises(LifecycleError) as refused:
        run(live_pipeline(load_spec(other), settings, tmp_path / "host-c"))
    message = str(refused.value)
    assert f"pipeline {spec.name} already exists" in message and "xgb v1" in message
    assert "--data-dir" in message and "new pipeline name" in message
    # a worker started there says the same and exits, instead of dying on the blob
    result = CliRunner().invoke(main, ["worker", str(other), "--role", "group:boosted", "--broker", settings.broker,
                                       "--data-dir", str(tmp_path / "host-c")])
    assert result.exit_code != 0 and "already exists" in result.output, result.output
