"""Rendezvous policies: pure decision code — which answer, given the scores so far, the deadline and a clock.

A new policy is one module with a :class:`Policy` subclass, added to :func:`policy_for`.
"""

from __future__ import annotations

from typing import Sequence

from pipelines.policies.bandit import Bandit
from pipelines.policies.base import Accuracy, Decision, Policy, ScoreView
from pipelines.policies.best_recent import BestRecent
from pipelines.policies.preference import PreferenceSchedule
from pipelines.policies.vote import WeightedVote
from pipelines.spec import PolicySpec

__all__ = ["Bandit", "BestRecent", "Decision", "Policy", "PreferenceSchedule", "ScoreView", "WeightedVote", "policy_for"]


def policy_for(spec: PolicySpec | str, ranking: Sequence[str], accuracy: Accuracy = dict,
               task: str = "classification", min_labels: int = 50) -> Policy:
    """The policy a spec names, over ``ranking`` (answering models, best first).

    ``accuracy`` returns every model's recent (accuracy, labels) from the score state.
    """
    spec = PolicySpec(spec) if isinstance(spec, str) else spec
    if spec.name == "preference":
        return PreferenceSchedule(ranking)
    if spec.name == "vote":
        return WeightedVote(ranking, spec.weights, accuracy, task)
    if spec.name == "best_recent":
        return BestRecent(ranking, accuracy, min_labels)
    if spec.name == "bandit":
        return Bandit(ranking, spec)
    raise KeyError(f"unknown policy {spec.name!r}")
