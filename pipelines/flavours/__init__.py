"""Model flavours: how a model of each kind is loaded (verified first) and scored in batches.

A new flavour is one module with a ``load(spec, data) -> Model`` function (``data``: the
artifact's verified bytes), added to ``LOADERS`` below. Only the flavour a model needs is
imported: ``rendezvous models register`` of an XGBoost model then skips River (which pulls in
SciPy's statistics) and skops (2.2 → 1.8 s on an idle 2-core machine).
``external`` models are served by a worker outside this codebase (see ``examples/``): this
runtime never loads them; the rendezvous only ranks their Scores.
"""

from __future__ import annotations

import importlib

from pipelines.flavours.base import ArtifactError, Model, verify_artifact
from pipelines.spec import ModelSpec

__all__ = ["ArtifactError", "LOADERS", "Model", "load_model", "verify_artifact"]

LOADERS = {"sklearn": "pipelines.flavours.sklearn", "xgboost": "pipelines.flavours.xgboost",
           "river": "pipelines.flavours.river"}  # flavour -> the module whose load() reads it


def load_model(spec: ModelSpec) -> Model:
    """Verify the artifact's SHA-256, then load it with its flavour's safe loader."""
    if spec.flavour not in LOADERS:
        raise ArtifactError(f"model {spec.id}: flavour {spec.flavour!r} is not hosted by this runtime")
    return importlib.import_module(LOADERS[spec.flavour]).load(spec, verify_artifact(spec))
