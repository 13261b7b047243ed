"""Real models: trained on Agrawal, saved, verified, loaded safely, scored in batches."""

import pytest

from pipelines.flavours import ArtifactError, load_model
from pipelines.spec import load_spec
from pipelines.jobs.train import agrawal_rows, train_demo_models


class Evil:
    """A type no allow-list trusts: loading it would run code of the file's choosing."""

    def __init__(self):
        self.x = 1


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return load_spec(train_demo_models(tmp_path_factory.mktemp("models"), n_train=3000))


def test_flavours__every_model_scores_a_batch_with_probabilities(spec):
    rows = [x for x, _ in agrawal_rows(64, seed=99)]
    labels = [y for _, y in agrawal_rows(64, seed=99)]
    for model_spec in spec.models:
        outcomes = load_model(model_spec).score_batch(rows)
        assert len(outcomes) == 64
        assert all(o.error is None and o.prediction in (0, 1) for o in outcomes)
        assert all(abs(sum(o.probabilities.values()) - 1) < 1e-6 for o in outcomes)
        accuracy = sum(o.prediction == y for o, y in zip(outcomes, labels)) / 64
        assert accuracy > 0.6, (model_spec.id, accuracy)


def test_flavours__a_bad_row_fails_alone(spec):
    rows = [x for x, _ in agrawal_rows(3, seed=5)]
    rows[1] = {**rows[1], "age": "old"}
    del rows[2]["salary"]
    outcomes = load_model(spec.model("lr")).score_batch(rows)
    assert outcomes[0].error is None
    assert "feature 'age'" in outcomes[1].error
    assert "feature 'salary' is missing" in outcomes[2].error


def test_flavours__tampered_artifact_is_refused(spec, tmp_path):
    from dataclasses import replace

    copy = tmp_path / "xgb.ubj"
    copy.write_bytes(spec.model("xgb").artifact.read_bytes() + b" ")
    with pytest.raises(ArtifactError, match="refusing to load"):
        load_model(replace(spec.model("xgb"), artifact=copy))


class _Payload:
    """Unpickling this runs code: it writes the marker file named in its state."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "pwned"))


def test_flavours__a_tampered_pickle_never_executes(tmp_path):
    """River models are pickles: swapping the file for one that runs code on load must be caught
    by the SHA-256 check *before* anything is unpickled."""
    import pickle
    from dataclasses import replace

    from pipelines.flavours.base import sha256_of
    from pipelines.spec import ModelSpec

    honest = load_spec(train_demo_models(tmp_path / "m", n_train=500, river=True)).model("river")
    marker = tmp_path / "executed"
    evil = tmp_path / "river.pkl"
    evil.write_bytes(pickle.dumps(_Payload(marker)))
    assert sha256_of(evil) != honest.sha256
    with pytest.raises(ArtifactError, match="refusing to load"):
        load_model(replace(honest, artifact=evil))
    assert not marker.exists()  # the payload never ran
    assert isinstance(honest, ModelSpec) and load_model(honest).score_batch([{"age": 1.0}])  # the real one loads


def test_flavours__skops_file_with_untrusted_types_is_refused(spec, tmp_path):
    from dataclasses import replace

    import skops.io as sio

    from pipelines.flavours.base import sha256_of

    path = tmp_path / "evil.skops"
    sio.dump({"payload": Evil()}, path)
    evil = replace(spec.model("lr"), artifact=path, sha256=sha256_of(path))
    with pytest.raises(ArtifactError, match="untrusted types"):
        load_model(evil)


def test_flavours__missing_sha256_is_refused(spec):
    from dataclasses import replace

    with pytest.raises(ArtifactError, match="no sha256"):
        load_model(replace(spec.model("lr"), sha256=None))


def test_flavours__a_river_model_learns_online_with_progressive_validation():
    import pickle

    from river import linear_model, preprocessing, tree

    from pipelines.flavours import river as river_flavour
    from pipelines.spec import ModelSpec
    from pipelines.jobs.train import AGRAWAL_FEATURES

    spec = ModelSpec("r", "river", "challenger", "g", features=AGRAWAL_FEATURES)
    learner = river_flavour.load(spec, pickle.dumps(tree.HoeffdingAdaptiveTreeClassifier(seed=1)))
    data = list(agrawal_rows(3000, seed=4, function=0))
    for x, y in data:
        assert learner.learn(x, y)  # labels 0/1 become River's False/True for a binary classifier
    assert learner.learned == 3000 and learner.metric.get() > 0.9  # predicted before learning each one
    assert learner.learn({"salary": 1.0}, 1) is False  # a row without the model's features is skipped
    outcomes = learner.score_batch([x for x, _ in agrawal_rows(200, seed=5, function=0)])
    assert sum(o.prediction == y for o, (_, y) in zip(outcomes, agrawal_rows(200, seed=5, function=0))) > 180
    regressor = river_flavour.load(ModelSpec("q", "river", "challenger", "g", features=("a",)),
                                   pickle.dumps(preprocessing.StandardScaler() | linear_model.LinearRegression()))
    for i in range(500):
        regressor.learn({"a": float(i % 10)}, 2.0 * (i % 10))
    assert not regressor.classifier and regressor.metric.get() < 1.0  # rolling MAE
    restored = river_flavour.load(spec, learner.dump())  # a checkpoint holds what it learned
    assert [o.prediction for o in restored.score_batch([x for x, _ in data[:50]])] == \
        [o.prediction for o in learner.score_batch([x for x, _ in data[:50]])]


@pytest.mark.parametrize("adapt", ["background", "reset"])
def test_flavours__a_river_learner_whose_errors_drift_is_replaced_and_recovers(adapt):
    """A plain Hoeffding tree grown on Agrawal's function 8 learns function 9 slowly (its splits
    stay: 58 % right in the second thousand after the change); replaced by a fresh copy when its
    own errors rise, it is back sooner (99 %)."""
    import pickle

    from river import tree

    from pipelines.flavours import river as river_flavour
    from pipelines.spec import LearningSpec, ModelSpec
    from pipelines.jobs.train import AGRAWAL_FEATURES

    def run(how: str):
        spec = ModelSpec("r", "river", "challenger", "g", features=AGRAWAL_FEATURES)
        learner = river_flavour.load(spec, pickle.dumps(tree.HoeffdingTreeClassifier()))
        learner.adapt(LearningSpec(adapt=how))
        right = []
        for x, y in [*agrawal_rows(4000, seed=4, function=8), *agrawal_rows(2000, seed=5, function=9)]:
            [outcome] = learner.score_batch([x])
            right.append(outcome.prediction == y)
            learner.learn(x, y)
        return learner, sum(right[5000:6000]) / 1000  # the second thousand after the change

    left, alone = run("none")
    adapted, accuracy = run(adapt)
    assert left.drifts == 0 and left.replaced == 0  # none: nothing watched, nothing replaced
    assert adapted.drifts >= 1 and adapted.replaced >= 1, (adapted.drifts, adapted.replaced)
    assert accuracy >= alone + 0.03, (accuracy, alone)
