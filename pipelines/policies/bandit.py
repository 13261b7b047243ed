"""A bandit over the answering models, learning from delayed feedback which one to answer with.

Every answering model scores every request, so when a label arrives the reward of *every*
model that answered it is known (1 if right, 0 if not; minus the absolute error for
regression), not only the pick's: each arm learns from each label (full information), and
nothing has to be paid in exploration to find out how the others do. The pick heads the
request's ranking and the rest follow in preference order, so the answer is still bounded by
the deadline: if the pick fails or is late, the next model's answer is returned.

The world changes (a concept drift), so each arm keeps only its last ``window`` rewards: stale
statistics age out within ``window`` labels and nothing oscillates once one model is clearly
better. A label is learned once (the feedback join refuses a second one). Algorithms:

* ``ucb`` — the highest windowed mean plus ``delta`` · √(2 ln N / n);
* ``epsilon_greedy`` — the highest windowed mean, a random arm with probability ``epsilon``;
* ``thompson`` — a draw from each arm's windowed posterior (Beta of its successes and failures;
  for regression a normal around its mean error), the highest wins;
* ``linucb`` — contextual: River's ``LinUCBDisjoint`` on the request's features (standardised
  online), every arm updated with its own reward; ``smoothing`` forgets at the rate of ``window``.

Design change (issue 19): River's ``EpsilonGreedy`` / ``UCB`` / ``ThompsonSampling`` updated
only the pulled arm. After a drift the arm that stopped being pulled kept its pre-drift window
— stale optimism that brought it back — and Thompson's ``Rolling`` wrapper is dropped when
River clones the posterior per arm, so it never forgot. Served accuracy swung between 0.59
and 0.81 after a drift and never recovered (BENCHMARKS.md, concept drift).

After a restart the bandit starts from every model's rewards in the restored score state
(:meth:`Bandit.warm`); the contextual one starts afresh.

>>> policy = Bandit(["a", "b"], PolicySpec("bandit", algorithm="ucb", seed=1))
>>> for _ in range(20):
...     ranking = policy.order({})
...     policy.learn(ranking, {}, {"a": 0.0, "b": 1.0})
>>> policy.order({})[0]
'b'
"""

from __future__ import annotations

import math
import random
from collections import deque
from typing import AbstractSet, Any, Collection, Mapping, Sequence

from river import bandit, preprocessing

from pipelines.policies.base import _aside_last
from pipelines.policies.preference import PreferenceSchedule
from pipelines.spec import PolicySpec

__all__ = ["Bandit", "WindowedArms"]


class WindowedArms:
    """Each arm's last ``window`` rewards, and a pick among them by ``algorithm``."""

    def __init__(self, algorithm: str, window: int, epsilon: float = 0.1, delta: float = 1.0,
                 seed: int | None = None, task: str = "classification") -> None:
        self.algorithm, self.window, self.epsilon, self.delta = algorithm, window, epsilon, delta
        self.task = task
        self.rewards: dict[str, deque[float]] = {}
        self.sums: dict[str, float] = {}
        self.learned: dict[str, int] = {}  # rewards learned per arm, ever
        self.picks: dict[str, int] = {}    # times each arm was picked
        self.rng = random.Random(seed)

    def update(self, arm: str, reward: float) -> None:
        window = self.rewards.get(arm)
        if window is None:
            window = self.rewards[arm] = deque(maxlen=self.window)
            self.sums[arm] = 0.0
        if len(window) == self.window:
            self.sums[arm] -= window[0]
        window.append(float(reward))
        self.sums[arm] += float(reward)
        self.learned[arm] = self.learned.get(arm, 0) + 1

    def mean(self, arm: str) -> float | None:
        window = self.rewards.get(arm)
        return self.sums[arm] / len(window) if window else None

    def pull(self, arms: Sequence[str]) -> str:
        """The arm to answer with; ``arms`` in preference order (ties and arms never rewarded
        go to the first)."""
        unknown = [a for a in arms if not self.rewards.get(a)]
        if unknown:
            pick = unknown[0]
        elif self.algorithm == "epsilon_greedy" and self.rng.random() < self.epsilon:
            pick = self.rng.choice(list(arms))
        else:
            pick = max(arms, key=self._score)  # max keeps the first of equals: preference breaks ties
        self.picks[pick] = self.picks.get(pick, 0) + 1
        return pick

    def _score(self, arm: str) -> float:
        window, mean = self.rewards[arm], self.mean(arm)
        n = len(window)
        if self.algorithm == "ucb":
            total = sum(len(w) for w in self.rewards.values())
            return mean + self.delta * math.sqrt(2.0 * math.log(max(total, 2)) / n)
        if self.algorithm == "thompson":
            if self.task == "classification":  # rewards are 1 (right) or 0 (wrong)
                successes = self.sums[arm]
                return self.rng.betavariate(1.0 + successes, 1.0 + n - successes)
            spread = math.sqrt(max(sum((r - mean) ** 2 for r in window) / n, 1e-12) / n)
            return self.rng.gauss(mean, spread)
        return mean


class Bandit(PreferenceSchedule):
    name = "bandit"

    def __init__(self, ranking: Sequence[str], spec: PolicySpec, task: str = "classification") -> None:
        super().__init__(ranking)
        self.spec = spec
        self.top = f"the {spec.algorithm} bandit's pick"
        self.contextual = spec.algorithm == "linucb"
        if self.contextual:
            # no burn_in: River 0.26's LinUCBDisjoint passes it on as the reward *scaler* (positional
            # argument mix-up in its __init__), and update() then fails; its upper bound explores anyway
            self.policy = bandit.LinUCBDisjoint(alpha=1.0, smoothing=1.0 - 1.0 / spec.window, seed=spec.seed)
        else:
            self.policy = WindowedArms(spec.algorithm, spec.window, spec.epsilon, spec.delta, spec.seed, task)
        self._scaler = preprocessing.StandardScaler()

    @classmethod
    def from_spec(cls, spec, ranking, accuracy, task, min_labels) -> "Bandit":
        return cls(ranking, spec, task)

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
        """A label for a request ordered ``ranking``: every model that scored it learns its own
        reward (a model that failed or was late has none and learns nothing) — shadows too, though
        they are never pulled: a shadow promoted to champion then starts with a full window
        instead of as an unknown arm, which is picked blindly until its first label arrives
        (a whole label delay: 500 requests of a drift benchmark's cell)."""
        arms = list(rewards)
        if not arms:
            return
        context = self._scaler.transform_one(self._context(features)) if self.contextual else None
        for arm in arms:
            if self.contextual:
                self.policy.update(arm, context, rewards[arm])
            else:
                self.policy.update(arm, rewards[arm])

    def warm(self, rewards: Mapping[str, Sequence[float]], models: Collection[str] | None = None) -> int:
        """After a restart: every arm's recent rewards from the score state (the contextual bandit
        cannot: the score state keeps no features). ``models``: whose (default: the answering
        ones; the core passes every live model, shadows too, as :meth:`learn` takes them)."""
        if self.contextual:
            return 0
        used, models = 0, self.ranking if models is None else models
        for arm, values in rewards.items():
            if arm not in models:
                continue
            for reward in values[-self.spec.window:]:
                self.policy.update(arm, reward)
                used += 1
        return used

    @staticmethod
    def _context(features: Mapping[str, Any]) -> dict[str, float]:
        return {k: float(v) for k, v in features.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

    def pulls(self) -> dict[str, int]:
        """How many rewards each model learned (River's count for LinUCB): what ``GET /v1/{p}/models``
        shows as ``bandit_pulls``; after a restart it starts from the rewards :meth:`warm` fed."""
        return dict(self.policy._counts) if self.contextual else dict(self.policy.learned)
