"""The registry's pure parts: the artifact store, role transitions, the live spec, seeding, tampering."""

import os
import pickle

import pytest

from pipelines.flavours import ArtifactError, load_model
from pipelines.registry import (ArtifactStore, RegistryError, apply, demote, event, live_spec, promote, retire,
                                spec_events, to_model_spec)
from pipelines.spec import load_spec
from pipelines.jobs.train import agrawal_rows, train_demo_models


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    directory = tmp_path_factory.mktemp("models")
    return directory, load_spec(train_demo_models(directory, n_train=2000))


def state_of(*events):
    state = {}
    for e in events:
        state = apply(state, e)
    return state


def model(model_id, role, preference=0, flavour="sklearn"):
    return event("p", model_id, "1", "register", role, flavour, preference=preference, at_ms=1)


def test_registry__store_is_content_addressed_idempotent_and_read_only(tmp_path):
    store = ArtifactStore(tmp_path / "registry")
    source = tmp_path / "m.bin"
    source.write_bytes(b"model bytes")
    sha = store.put(source)
    assert store.path(sha).read_bytes() == b"model bytes" and store.put(source) == sha
    assert not os.access(store.path(sha), os.W_OK) or os.geteuid() == 0  # root may write anyway
    assert oct(store.path(sha).stat().st_mode & 0o777) == "0o444"
    with pytest.raises(RegistryError, match="refusing to register bytes that changed"):
        store.put(source, expected_sha256="0" * 64)


def test_registry__promote_to_champion_demotes_the_old_one_in_one_command():
    state = state_of(model("a", "champion"), model("b", "challenger", 1), model("c", "shadow", 2))
    events = promote(state, "c", by="ann", at_ms=5)
    assert [(e["model_id"], e["role"], e["action"]) for e in events] == [
        ("a", "challenger", "demote"), ("c", "champion", "promote")]
    after = state_of(*state.values(), *events)
    assert live_spec_ranking(after) == ("c", "a", "b")


def live_spec_ranking(state):
    from pipelines.spec import PipelineSpec

    base = PipelineSpec.from_dict({"pipeline": "p", "models": [{"id": "x", "flavour": "external", "role": "champion"}]})
    return live_spec(base, state, ArtifactStore("/nonexistent")).ranking


def test_registry__demote_and_retire_keep_someone_answering():
    state = state_of(model("a", "champion"), model("b", "shadow"))
    [demoted] = demote(state, "a")  # a sole champion may become a challenger: it still answers
    assert demoted["role"] == "challenger"
    with pytest.raises(RegistryError, match="last model that may answer"):
        demote(state_of(*state.values(), demoted), "a")
    with pytest.raises(RegistryError, match="last model that may answer"):
        retire(state, "a")
    [forced] = retire(state, "a", force=True)
    assert forced["role"] == "retired" and forced["forced"]
    with pytest.raises(RegistryError, match="only a champion or challenger"):
        demote(state, "b")
    with pytest.raises(RegistryError, match="not registered in this pipeline"):
        promote(state, "nope")


def test_registry__rank_reorders_the_challengers_at_once():
    from pipelines.registry import rank

    state = state_of(model("a", "champion"), model("b", "challenger", 1), model("c", "challenger", 2))
    assert live_spec_ranking(state) == ("a", "b", "c")
    [changed] = rank(state, "c", 0, by="ann")
    assert changed["action"] == "update" and changed["role"] == "challenger" and changed["preference"] == 0
    assert live_spec_ranking(state_of(*state.values(), changed)) == ("a", "c", "b")


def test_registry__retired_models_leave_the_live_spec_and_the_ranking():
    state = state_of(model("a", "champion"), model("b", "challenger", 1), model("c", "canary", 2))
    state = state_of(*state.values(), *retire(state, "a"))
    assert live_spec_ranking(state) == ("b",)


def test_registry__seeding_registers_only_unknown_models_and_checks_their_bytes(trained, tmp_path):
    _, spec = trained
    store = ArtifactStore(tmp_path / "registry")
    events = spec_events(spec, {}, store, by="ci")
    assert {e["model_id"] for e in events} == {"xgb", "lr", "canary"}
    state = state_of(*events)
    assert spec_events(spec, state, store) == []  # idempotent
    assert store.versions(spec.name, "xgb")[0]["artifact_sha256"] == spec.model("xgb").sha256
    live = live_spec(spec, state, store)
    assert live.ranking == spec.ranking and live.model("lr").artifact == store.path(spec.model("lr").sha256)
    rows = [x for x, _ in agrawal_rows(8)]
    assert all(o.error is None for o in load_model(live.model("xgb")).score_batch(rows))


def test_registry__a_tampered_blob_is_refused_at_load(trained, tmp_path):
    _, spec = trained
    store = ArtifactStore(tmp_path / "registry")
    state = state_of(*spec_events(spec, {}, store))
    blob = store.path(state["lr"]["artifact_sha256"])
    os.chmod(blob, 0o644)
    blob.write_bytes(blob.read_bytes() + b"\0")
    with pytest.raises(ArtifactError, match="refusing to load it"):
        load_model(to_model_spec(state["lr"], store))


def test_registry__river_models_load_from_the_registry_and_only_river_pickles(trained, tmp_path):
    directory, spec = trained
    store = ArtifactStore(tmp_path / "registry")
    sha = store.put(directory / "models" / "river.pkl")
    record = event("loans", "river", "1", "register", "shadow", "river", sha256=sha, features=spec.model("lr").features)
    outcomes = load_model(to_model_spec(record, store)).score_batch([x for x, _ in agrawal_rows(16)])
    assert all(o.error is None and o.prediction in (0, 1) and set(o.probabilities) == {"0", "1"} for o in outcomes)
    not_river = tmp_path / "dict.pkl"
    not_river.write_bytes(pickle.dumps({"weights": [1, 2]}))
    record = dict(record, artifact_sha256=store.put(not_river))
    with pytest.raises(ArtifactError, match="not a River model"):
        load_model(to_model_spec(record, store))


def test_registry__events_round_trip_through_the_modelevent_schema():
    from schemas.codec import codec_for

    record = event("p", "a", "3", "register", "shadow", "river", sha256="ab" * 32, by="ann", features=["x", "y"],
                   metrics={"accuracy": 0.9}, git_commit="deadbeef", at_ms=7)
    codec = codec_for("ModelEvent")
    for encoding in ("avro", "json"):
        assert codec.decode(codec.encode_as(record, encoding)) == record


def test_registry__the_git_commit_of_the_training_code_is_found_from_a_folder_or_a_file(tmp_path):
    import subprocess
    from pathlib import Path

    from pipelines.registry import git_commit

    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    assert git_commit(Path(__file__).parent) == head == git_commit(Path(__file__))
    assert git_commit(tmp_path) is None  # not a repository
