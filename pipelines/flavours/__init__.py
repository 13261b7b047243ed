"""Model flavours: how a model of each kind is loaded (verified first) and scored in batches.

A new flavour is one module with a ``load(spec, data) -> Model`` function (``data``: the
artifact's verified bytes), registered in ``pipelines/plugins.py``. Only the flavour a model
needs is imported. ``external`` models are served by a worker outside this codebase (see ``examples/``): this
runtime never loads them; the rendezvous only ranks their Scores.
"""

from __future__ import annotations

import importlib

from pipelines.flavours.base import ArtifactError, Model, verify_artifact
from pipelines.plugins import FLAVOURS
from pipelines.spec import ModelSpec

__all__ = ["ArtifactError", "FLAVOURS", "Model", "load_model", "verify_artifact"]


def load_model(spec: ModelSpec) -> Model:
    """Verify the artifact's SHA-256, then load it with its flavour's safe loader."""
    flavour = FLAVOURS.get(spec.flavour)
    if flavour is None or flavour.module is None:
        raise ArtifactError(f"model {spec.id}: flavour {spec.flavour!r} is not hosted by this runtime")
    return importlib.import_module(flavour.module).load(spec, verify_artifact(spec))
