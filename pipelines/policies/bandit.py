"""A bandit over the answering models, learning from delayed feedback which one to answer with.

River's bandit policies do the learning: ``epsilon_greedy``, ``ucb`` and ``thompson`` pick one
model per request; ``linucb`` (River's ``LinUCBDisjoint``) is contextual — it picks from the
request's features (standardised online), so different kinds of requests can go to different
models. The picked model heads the request's ranking and the rest follow in preference
order, so the answer is still bounded by the deadline: if the pick fails or is late, the
next model's answer is returned. When the request's feedback arrives the pick's reward (1 if
it was right, 0 if not; minus the absolute error for regression) updates the bandit.

Rewards are kept over a rolling window of ``window`` pulls per model (River's
``utils.Rolling``), so after a concept drift old successes are forgotten — except for
``thompson``: River clones its Beta posterior per arm in a way that drops a rolling wrapper, so
it remembers every pull and follows a drift more slowly (see BENCHMARKS.md, concept drift).
After a restart the bandit starts from every model's rewards in the restored score state
(:meth:`Bandit.warm`); the contextual one starts afresh.

>>> policy = Bandit(["a", "b"], PolicySpec("bandit", algorithm="epsilon_greedy", epsilon=0.0, seed=1))
>>> for _ in range(20):
...     ranking = policy.order({})
...     policy.learn(ranking, {}, {"a": 0.0, "b": 1.0})
>>> policy.order({})[0]
'b'
"""

from __future__ import annotations

from typing import AbstractSet, Any, Mapping, Sequence

from river import bandit, preprocessing, proba, stats, utils

from pipelines.policies.base import _aside_last
from pipelines.policies.preference import PreferenceSchedule
from pipelines.spec import PolicySpec

__all__ = ["Bandit"]


def _river_policy(spec: PolicySpec):
    if spec.algorithm == "linucb":
        # no burn_in: River 0.26's LinUCBDisjoint passes it on as the reward *scaler* (positional
        # argument mix-up in its __init__), and update() then fails; its upper bound explores anyway
        return bandit.LinUCBDisjoint(alpha=1.0, smoothing=1.0 - 1.0 / spec.window, seed=spec.seed)
    if spec.algorithm == "thompson":
        return bandit.ThompsonSampling(reward_obj=proba.Beta(), burn_in=10, seed=spec.seed)
    rolling = utils.Rolling(stats.Mean, window_size=spec.window)
    if spec.algorithm == "epsilon_greedy":
        return bandit.EpsilonGreedy(epsilon=spec.epsilon, reward_obj=rolling, burn_in=10, seed=spec.seed)
    return bandit.UCB(delta=spec.delta, reward_obj=rolling, burn_in=10, seed=spec.seed)


class Bandit(PreferenceSchedule):
    name = "bandit"

    def __init__(self, ranking: Sequence[str], spec: PolicySpec) -> None:
        super().__init__(ranking)
        self.spec = spec
        self.top = f"the {spec.algorithm} bandit's pick"
        self.policy = _river_policy(spec)
        self.contextual = spec.algorithm == "linucb"
        self._scaler = preprocessing.StandardScaler()

    @classmethod
    def from_spec(cls, spec, ranking, accuracy, task, min_labels) -> "Bandit":
        return cls(ranking, spec)

    def order(self, features: Mapping[str, Any], set_aside: AbstractSet[str] = frozenset()) -> tuple[str, ...]:
        arms = [m for m in self.ranking if m not in set_aside] or list(self.ranking)
        if len(arms) < 2:
            return _aside_last(self.ranking, set_aside)
        if self.contextual:
            context = self._context(features)
            self._scaler.learn_one(context)
            pick = self.policy.pull(arms, context=self._scaler.transform_one(context))
        else:
            pick = self.policy.pull(arms)
        return (pick, *_aside_last([m for m in self.ranking if m != pick], set_aside))

    def learn(self, ranking: Sequence[str], features: Mapping[str, Any], rewards: Mapping[str, float]) -> None:
        if not ranking or ranking[0] not in rewards:
            return  # the pick did not score (error or late): the fallback deals with it
        pick, reward = ranking[0], rewards[ranking[0]]
        if self.spec.algorithm == "thompson":
            reward = reward > 0  # Beta takes successes and failures
        if self.contextual:
            self.policy.update(pick, self._scaler.transform_one(self._context(features)), reward)
        else:
            self.policy.update(pick, reward)

    def warm(self, rewards: Mapping[str, Sequence[float]]) -> int:
        """After a restart: every arm's recent rewards from the score state, as if each had been pulled
        (the contextual bandit cannot: the score state keeps no features)."""
        if self.contextual:
            return 0
        used = 0
        for arm, values in rewards.items():
            if arm in self.ranking:
                for reward in values[-self.spec.window:]:
                    self.policy.update(arm, reward > 0 if self.spec.algorithm == "thompson" else reward)
                    used += 1
        return used

    @staticmethod
    def _context(features: Mapping[str, Any]) -> dict[str, float]:
        return {k: float(v) for k, v in features.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

    def pulls(self) -> dict[str, int]:
        return dict(self.policy._counts)
