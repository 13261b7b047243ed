"""Model flavours: how a model of each kind is loaded (verified first) and scored in batches.

A new flavour is one module with a ``load(spec, data) -> Model`` function (``data``: the
artifact's verified bytes), added to ``loaders`` below.
``external`` models are served by a worker outside this codebase (see ``examples/``): this
runtime never loads them; the rendezvous only ranks their Scores.
"""

from __future__ import annotations

from pipelines.flavours.base import ArtifactError, Model, verify_artifact
from pipelines.spec import ModelSpec

__all__ = ["ArtifactError", "Model", "load_model", "verify_artifact"]


def load_model(spec: ModelSpec) -> Model:
    """Verify the artifact's SHA-256, then load it with its flavour's safe loader."""
    from pipelines.flavours import river as _river, sklearn as _sklearn, xgboost as _xgboost

    loaders = {"sklearn": _sklearn.load, "xgboost": _xgboost.load, "river": _river.load}
    if spec.flavour not in loaders:
        raise ArtifactError(f"model {spec.id}: flavour {spec.flavour!r} is not hosted by this runtime")
    return loaders[spec.flavour](spec, verify_artifact(spec))
