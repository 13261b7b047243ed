"""scikit-learn models scored through numpy: the same probabilities as predict_proba, or not compiled at all."""

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from pipelines.flavours.sklearn import SklearnModel, compile_scorer
from pipelines.spec import ModelSpec


def data(seed: int, n: int = 2000, classes: int = 2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)) * [1, 10, 100, 1000, 0.01] + [0, 5, -50, 2000, 1]
    y = (X[:, 0] + X[:, 1] / 10 - X[:, 3] / 1000 > 0).astype(int) + (classes > 2) * (X[:, 2] > -50)
    return X, y


@pytest.mark.parametrize("make", [
    lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
    lambda: make_pipeline(StandardScaler(), StandardScaler(with_mean=False), LogisticRegression(C=0.1)),
    lambda: LogisticRegression(max_iter=1000),
    lambda: DecisionTreeClassifier(max_depth=6, random_state=0),
], ids=["scaler+lr", "two scalers+lr", "lr", "tree"])
def test_compiled__same_probabilities_as_scikit_learn_on_unseen_rows(make):
    X, y = data(1)
    estimator = make().fit(X, y)
    scorer = compile_scorer(estimator, X.shape[1])
    assert scorer is not None
    unseen, _ = data(2, n=500)
    unseen[:3] *= 1e3  # far outside the training range too
    np.testing.assert_allclose(scorer(unseen), estimator.predict_proba(unseen), rtol=0, atol=1e-9)
    np.testing.assert_allclose(scorer(unseen[:1]), estimator.predict_proba(unseen[:1]), rtol=0, atol=1e-9)


@pytest.mark.parametrize("make", [
    lambda: make_pipeline(StandardScaler(), LogisticRegression()),  # three classes
    lambda: RandomForestClassifier(n_estimators=3, random_state=0),
], ids=["multiclass lr", "forest"])
def test_compiled__other_shapes_are_left_to_scikit_learn(make):
    X, y = data(1, classes=3)
    assert compile_scorer(make().fit(X, y), X.shape[1]) is None


def test_compiled__the_model_answers_as_scikit_learn_would():
    X, y = data(3)
    estimator = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    spec = ModelSpec(id="lr", flavour="sklearn", role="champion", group="g", features=tuple(f"f{i}" for i in range(5)))
    fast, slow = SklearnModel(spec, estimator), SklearnModel(spec, estimator)
    slow.scorer = None
    assert fast.scorer is not None
    rows = [dict(zip(spec.features, map(float, x))) for x in data(4, n=50)[0]]
    for a, b in zip(fast.score_batch(rows), slow.score_batch(rows)):
        assert a.prediction == b.prediction and a.error is None
        assert a.probabilities.keys() == b.probabilities.keys()
        assert all(abs(a.probabilities[k] - b.probabilities[k]) < 1e-9 for k in a.probabilities)
