"""Rendezvous policies: pure decision code — which answer, given the scores so far, the deadline and a clock."""

from pipelines.policies.base import Decision, ScoreView
from pipelines.policies.preference import PreferenceSchedule

__all__ = ["Decision", "PreferenceSchedule", "ScoreView", "policy_for"]


def policy_for(name: str, ranking):
    """The policy called ``name`` in a spec, over ``ranking`` (answering models, best first)."""
    if name == "preference":
        return PreferenceSchedule(ranking)
    raise KeyError(f"unknown policy {name!r}")
