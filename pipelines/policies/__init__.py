"""Rendezvous policies: pure decision code — which answer, given the scores so far, the deadline and a clock.

A new policy is one module with a :class:`Policy` subclass and its ``from_spec``, registered in
``pipelines/plugins.py``.
"""

from __future__ import annotations

from typing import Sequence

from pipelines.policies.bandit import Bandit
from pipelines.policies.base import Accuracy, Decision, Policy, ScoreView
from pipelines.policies.best_recent import BestRecent
from pipelines.policies.preference import PreferenceSchedule
from pipelines.policies.vote import WeightedVote
from pipelines.plugins import POLICIES, resolve
from pipelines.spec import PolicySpec

__all__ = ["Bandit", "BestRecent", "Decision", "Policy", "PreferenceSchedule", "ScoreView", "WeightedVote", "policy_for"]


def policy_for(spec: PolicySpec | str, ranking: Sequence[str], accuracy: Accuracy = dict,
               task: str = "classification", min_labels: int = 50) -> Policy:
    """The policy a spec names, over ``ranking`` (answering models, best first).

    ``accuracy`` returns every model's recent (accuracy, labels) from the score state.
    """
    spec = PolicySpec(spec) if isinstance(spec, str) else spec
    if spec.name not in POLICIES:
        raise KeyError(f"unknown policy {spec.name!r}: one of {', '.join(POLICIES)}")
    return resolve(POLICIES[spec.name])(spec, ranking, accuracy, task, min_labels)
