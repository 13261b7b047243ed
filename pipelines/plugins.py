"""The one registration point of model flavours and rendezvous policies.

A new flavour is one module with ``load(spec, data) -> Model`` (``data``: the artifact's
verified bytes) plus one :func:`register_flavour` line; a new policy is one module with a
``from_spec(spec, ranking, accuracy, task, min_labels) -> Policy`` callable plus one
:func:`register_policy` line. Spec validation (``pipelines/spec.py``), the registry's events,
:func:`pipelines.flavours.load_model`, :func:`pipelines.policies.policy_for` and the CLI's
choices (``rendezvous models register --flavour``) all read the tables here — nothing else
lists them. Modules are named, not imported: only the flavour a model needs is loaded
(``rendezvous models register`` of an XGBoost model skips River, which pulls in SciPy: 2.2 → 1.8 s).

>>> "xgboost" in FLAVOURS and "bandit" in POLICIES
True
>>> FLAVOURS["external"].module is None  # served by a worker outside this codebase
True
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

__all__ = ["FLAVOURS", "Flavour", "POLICIES", "register_flavour", "register_policy", "resolve"]


@dataclass(frozen=True)
class Flavour:
    name: str
    module: str | None  # its load(spec, data) reads an artifact; None: never loaded here (external)
    suffix: str         # an artifact's file suffix, for files this runtime writes (retrained models)


FLAVOURS: dict[str, Flavour] = {}
POLICIES: dict[str, str] = {}  # name -> "module:callable", the callable building it from the spec


def register_flavour(name: str, module: str | None, suffix: str = "bin") -> Flavour:
    FLAVOURS[name] = flavour = Flavour(name, module, suffix)
    return flavour


def register_policy(name: str, target: str) -> str:
    """``target``: ``"module:callable"``, called as ``callable(spec, ranking, accuracy, task, min_labels)``."""
    if ":" not in target:
        raise ValueError(f"policy {name!r}: target {target!r} must be 'module:callable'")
    POLICIES[name] = target
    return target


def resolve(target: str) -> Any:
    """``"module:attribute"`` -> the attribute (the module imported now)."""
    module, _, attributes = target.partition(":")
    found = importlib.import_module(module)
    for attribute in attributes.split("."):
        found = getattr(found, attribute)
    return found


register_flavour("sklearn", "pipelines.flavours.sklearn", "skops")
register_flavour("xgboost", "pipelines.flavours.xgboost", "ubj")
register_flavour("river", "pipelines.flavours.river", "pkl")
register_flavour("external", None)

register_policy("preference", "pipelines.policies.preference:PreferenceSchedule.from_spec")
register_policy("vote", "pipelines.policies.vote:WeightedVote.from_spec")
register_policy("best_recent", "pipelines.policies.best_recent:BestRecent.from_spec")
register_policy("bandit", "pipelines.policies.bandit:Bandit.from_spec")
