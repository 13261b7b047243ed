"""Model flavours: how a model of each kind is loaded (verified first) and scored in batches.

A new flavour is one module with a ``load(spec) -> Model`` function, added to ``_LOADERS``.
"""

from __future__ import annotations

from pipelines.flavours.base import ArtifactError, Model, verify_artifact
from pipelines.spec import ModelSpec

__all__ = ["ArtifactError", "Model", "load_model", "verify_artifact"]


def load_model(spec: ModelSpec) -> Model:
    """Verify the artifact's SHA-256, then load it with its flavour's safe loader."""
    from pipelines.flavours import sklearn as _sklearn, xgboost as _xgboost

    loaders = {"sklearn": _sklearn.load, "xgboost": _xgboost.load}
    if spec.flavour not in loaders:
        raise ArtifactError(f"model {spec.id}: flavour {spec.flavour!r} is not hosted by this runtime")
    verify_artifact(spec)
    return loaders[spec.flavour](spec)
