"""Deployment specs: ``pipelines/<name>.yaml`` — one business objective, its models, the policy.

>>> spec = PipelineSpec.from_dict({"pipeline": "loans", "models": [
...     {"id": "lr", "flavour": "sklearn", "artifact": "lr.skops", "role": "champion", "group": "a"},
...     {"id": "xgb", "flavour": "xgboost", "artifact": "xgb.ubj", "role": "challenger", "group": "b"},
...     {"id": "old", "flavour": "sklearn", "artifact": "old.skops", "role": "canary", "group": "a"}]})
>>> spec.ranking, sorted(spec.groups)
(('lr', 'xgb'), ['a', 'b'])
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from pipelines.plugins import FLAVOURS, POLICIES

__all__ = ["ANSWERING_ROLES", "REGISTRY_ROLES", "ROLES", "Checks", "FallbackSpec", "ModelSpec", "PipelineSpec", "PolicySpec", "QualitySpec",
           "SpecError", "load_spec"]

ROLES = ("champion", "challenger", "shadow", "canary")  # what a spec may give a model
ANSWERING_ROLES = ("champion", "challenger")
REGISTRY_ROLES = (*ROLES, "retired")  # and what the registry may record
BANDITS = ("epsilon_greedy", "ucb", "thompson", "linucb")
TASKS = ("classification", "regression")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


class SpecError(ValueError):
    """A deployment spec is invalid; the message names the field."""


@dataclass(frozen=True)
class ModelSpec:
    id: str
    flavour: str
    role: str
    group: str
    artifact: Path | None = None
    version: str = "1"
    sha256: str | None = None
    features: tuple[str, ...] = ()
    preference: int = 0
    auto_promote: float | None = None  # confidence to beat the champion on live feedback (pipelines.promotion.beats)
    # (champion, only it right, only this one right) on held-out rows neither learned: where that
    # champion's live gate starts (a retrain's, pipelines.registry.held_out_pairs)
    prior: tuple[tuple[str, int, int], ...] = ()
    training_data: Path | None = None  # the file it learned from: its SHA-256 goes to the registry and names its profile

    @property
    def answers(self) -> bool:
        """Whether the policy may return this model's answer (canary and shadow never)."""
        return self.role in ANSWERING_ROLES


@dataclass(frozen=True)
class Checks:
    """What ``rendezvous models promote`` requires of a candidate (spec section ``checks:``).

    ``latency_budget_ms``: p99 time to score one micro-batch of replayed requests (default: half
    the pipeline's deadline); ``min_agreement``: share of replayed requests where the candidate
    answers like the current champion did; ``min_accuracy``: against feedback, when there is
    some; ``min_rows``: replayed requests needed before any of that means something.
    """

    latency_budget_ms: float | None = None
    min_agreement: float = 0.7
    min_accuracy: float | None = None
    min_rows: int = 100

    @classmethod
    def from_dict(cls, raw: Any) -> "Checks":
        if raw is None:
            return cls()
        _section(raw, "checks", cls.__dataclass_fields__)
        for key in ("min_agreement", "min_accuracy"):
            value = raw.get(key)
            if value is not None and (not isinstance(value, (int, float)) or not 0 <= value <= 1):
                raise SpecError(f"field 'checks.{key}' must be a number from 0 to 1 (got {value!r})")
        budget = raw.get("latency_budget_ms")
        if budget is not None and (not isinstance(budget, (int, float)) or budget <= 0):
            raise SpecError(f"field 'checks.latency_budget_ms' must be a positive number (got {budget!r})")
        rows = raw.get("min_rows", 100)
        if not isinstance(rows, int) or rows < 0:
            raise SpecError(f"field 'checks.min_rows' must be a whole number >= 0 (got {rows!r})")
        return cls(latency_budget_ms=budget, min_agreement=raw.get("min_agreement", 0.7),
                   min_accuracy=raw.get("min_accuracy"), min_rows=rows)


@dataclass(frozen=True)
class PolicySpec:
    """Spec field ``policy``: a name, or a mapping with the name and its settings.

    ``preference`` (the default): the most preferred model that answered. ``vote``: weighted
    vote (classification) or weighted average (regression) of the answering models; weights
    from ``weights`` (model id -> number) or, when ``weights: accuracy``, their recent accuracy.
    ``best_recent``: the answer of the model with the best recent accuracy on feedback.
    ``bandit``: River's ``algorithm`` (epsilon_greedy | ucb | thompson | linucb, the last one
    contextual: it picks per request from the features) learns from feedback which model to
    answer with; ``window`` labelled requests make its memory (so it follows a drift),
    ``epsilon`` and ``delta`` tune exploration, ``seed`` makes it repeatable.
    """

    name: str = "preference"
    weights: Any = None
    algorithm: str = "ucb"
    epsilon: float = 0.1
    delta: float = 1.0
    window: int = 500
    seed: int | None = None

    @classmethod
    def from_dict(cls, raw: Any) -> "PolicySpec":
        if raw is None or isinstance(raw, str):
            raw = {"name": raw or "preference"}
        if not isinstance(raw, Mapping):
            raise SpecError("field 'policy' must be a policy name or a mapping with 'name'")
        _section(raw, "policy", cls.__dataclass_fields__)
        name = raw.get("name", "preference")
        if name not in POLICIES:
            raise SpecError(f"field 'policy' is {name!r}; expected one of {tuple(POLICIES)}")
        algorithm = raw.get("algorithm", "ucb")
        if algorithm not in BANDITS:
            raise SpecError(f"field 'policy.algorithm' is {algorithm!r}; expected one of {BANDITS}")
        weights = raw.get("weights")
        if weights is not None and weights != "accuracy" and not (
                isinstance(weights, Mapping) and all(isinstance(v, (int, float)) and v >= 0 for v in weights.values())):
            raise SpecError("field 'policy.weights' must be 'accuracy' or a mapping of model id to a number >= 0")
        epsilon = raw.get("epsilon", 0.1)
        if not isinstance(epsilon, (int, float)) or not 0 <= epsilon <= 1:
            raise SpecError(f"field 'policy.epsilon' must be a number from 0 to 1 (got {epsilon!r})")
        return cls(name=name, weights=dict(weights) if isinstance(weights, Mapping) else weights,
                   algorithm=algorithm, epsilon=float(epsilon), delta=float(raw.get("delta", 1.0)),
                   window=_positive(raw.get("window", 500), "policy.window"), seed=raw.get("seed"))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass(frozen=True)
class FallbackSpec:
    """Spec field ``fallback``: when a model stops being chosen, and when it comes back.

    A model is set aside after ``error_limit`` errors in a row (back at its next good score),
    after ``miss_limit`` missed deadlines in a row (back at its next score: see
    :mod:`pipelines.fallback`), or when, over at least ``min_labels`` labelled requests, its recent
    accuracy is below the canary's by more than ``accuracy_margin`` (back once it is within
    half that margin). ``window``: labelled requests that make "recent".
    """

    error_limit: int = 3
    accuracy_margin: float = 0.05
    min_labels: int = 50
    window: int = 500

    @classmethod
    def from_dict(cls, raw: Any) -> "FallbackSpec":
        if raw is None:
            return cls()
        _section(raw, "fallback", cls.__dataclass_fields__)
        margin = raw.get("accuracy_margin", 0.05)
        if not isinstance(margin, (int, float)) or not 0 <= margin <= 1:
            raise SpecError(f"field 'fallback.accuracy_margin' must be a number from 0 to 1 (got {margin!r})")
        return cls(error_limit=_positive(raw.get("error_limit", 3), "fallback.error_limit"),
                   accuracy_margin=float(margin), min_labels=_positive(raw.get("min_labels", 50), "fallback.min_labels"),
                   window=_positive(raw.get("window", 500), "fallback.window"))


@dataclass(frozen=True)
class QualitySpec:
    """Spec field ``quality``: the data-quality worker's windows and the decay verdict.

    Windows are tumbling, closed after ``window_rows`` requests or ``window_s`` seconds (if they
    hold ``min_rows`` by then), whichever comes first. Decay: ``min_drifted`` features drifted, or
    more than ``unlike_limit`` of the requests unlike the training population, or a model's
    errors drifted. ``auto_retrain``: a model whose errors drifted (the core's detectors, with or
    without the quality worker) is retrained on the requests after the change once
    ``retrain_min_rows`` of them are labelled, as ``rendezvous retrain --since change
    --auto-promote 0.95`` does (``pipelines/retraining.py``); a decay verdict of the quality
    worker retrains the champion on the requests since that window. A model is retrained at
    most once per ``retrain_cooldown_s``; its newest version is retrained again each time the
    labelled requests since the change double, ``retrain_refinements`` times (default 3; 0: never). ``false_alarms_per_day`` (default 0.1) is the rate of
    feature-drift flags the monitor allows on data that did not change; a feature is flagged when
    it drifted in ``drift_persistence`` windows in a row (default 2; ``features.quality.DriftWatch``).
    ``enabled``: true when the
    spec has a ``quality`` section (``enabled: false`` keeps one without running the checks): the
    pipeline then must have a reference profile, or a model's ``training_data`` to build it from.
    """

    window_rows: int = 2000
    window_s: int = 60
    min_rows: int = 100
    min_drifted: int = 2
    unlike_limit: float = 0.1
    auto_retrain: bool = False
    retrain_min_rows: int = 500
    retrain_cooldown_s: int = 3600
    retrain_refinements: int = 3
    false_alarms_per_day: float = 0.1
    drift_persistence: int = 2
    enabled: bool = False

    @classmethod
    def from_dict(cls, raw: Any) -> "QualitySpec":
        if raw is None:
            return cls()
        _section(raw, "quality", cls.__dataclass_fields__)
        limit = raw.get("unlike_limit", 0.1)
        if not isinstance(limit, (int, float)) or not 0 <= limit <= 1:
            raise SpecError(f"field 'quality.unlike_limit' must be a number from 0 to 1 (got {limit!r})")
        rate = raw.get("false_alarms_per_day", cls.false_alarms_per_day)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 86_400:
            raise SpecError(f"field 'quality.false_alarms_per_day' must be a number above 0 (got {rate!r}): "
                            "the feature-drift flags allowed per day on data that did not change, e.g. 0.1")
        ints = {k: _positive(raw.get(k, getattr(cls, k)), f"quality.{k}")
                for k in ("window_rows", "window_s", "min_rows", "min_drifted", "retrain_min_rows",
                          "retrain_cooldown_s", "drift_persistence")}
        refinements = raw.get("retrain_refinements", cls.retrain_refinements)
        if not isinstance(refinements, int) or isinstance(refinements, bool) or refinements < 0:
            raise SpecError(f"field 'quality.retrain_refinements' must be a whole number from 0 (got {refinements!r}): "
                            "how many times a retrained model is retrained again as the rows since its change double")
        return cls(**ints, unlike_limit=float(limit), false_alarms_per_day=float(rate), retrain_refinements=refinements,
                   auto_retrain=bool(raw.get("auto_retrain", False)),
                   enabled=bool(raw.get("enabled", True)))


ADAPT = ("background", "reset", "none")


@dataclass(frozen=True)
class LearningSpec:
    """Spec field ``learning``: what a River learner does when its own error rate drifts (ADWIN on
    its progressive-validation errors, ``delta``). ``background``: grow a fresh copy beside it from
    that moment, and let it take over once it does better on the last ``grace`` examples where the
    two differ (the ARF / ADWIN-bagging idea); ``reset``: start again from a fresh copy at once;
    ``none``: leave it to the learner."""

    adapt: str = "background"
    delta: float = 0.002
    grace: int = 200

    @classmethod
    def from_dict(cls, raw: Any) -> "LearningSpec":
        if raw is None:
            return cls()
        _section(raw, "learning", cls.__dataclass_fields__)
        adapt = raw.get("adapt", cls.adapt)
        if adapt not in ADAPT:
            raise SpecError(f"field 'learning.adapt' is {adapt!r}; expected one of {ADAPT}")
        delta = raw.get("delta", cls.delta)
        if not isinstance(delta, (int, float)) or not 0 < delta < 1:
            raise SpecError(f"field 'learning.delta' must be a number between 0 and 1 (got {delta!r})")
        return cls(adapt, float(delta), _positive(raw.get("grace", cls.grace), "learning.grace"))


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    models: tuple[ModelSpec, ...]
    deadline_ms: int = 100
    policy: PolicySpec = field(default_factory=PolicySpec)
    partitions: int = 4
    checks: Checks = field(default_factory=Checks)
    fallback: FallbackSpec = field(default_factory=FallbackSpec)
    quality: QualitySpec = field(default_factory=QualitySpec)
    learning: LearningSpec = field(default_factory=LearningSpec)
    task: str = "classification"
    feedback_ttl_s: int = 600     # feedback later than this after its request is refused (DLQ)
    checkpoint_s: int = 60        # online learners are checkpointed to the registry this often
    tenants: tuple[str, ...] | None = None  # who may call it over REST (with tokens on); None: every tenant
    source: Path | None = field(default=None, compare=False)

    @property
    def latency_budget_ms(self) -> float:
        return self.checks.latency_budget_ms or self.deadline_ms / 2

    @property
    def ranking(self) -> tuple[str, ...]:
        """Answering models, most preferred first: the champion, then by ``preference`` (then spec order)."""
        answering = [m for m in self.models if m.answers]
        return tuple(m.id for m in sorted(answering, key=lambda m: (m.role != "champion", m.preference)))

    @property
    def groups(self) -> dict[str, tuple[ModelSpec, ...]]:
        out: dict[str, list[ModelSpec]] = {}
        for model in self.models:
            if model.flavour != "external":
                out.setdefault(model.group, []).append(model)
        return {name: tuple(models) for name, models in out.items()}

    def model(self, model_id: str) -> ModelSpec:
        return next(m for m in self.models if m.id == model_id)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: Path | None = None) -> "PipelineSpec":
        base = source.parent if source else Path(".")
        name = _name(data.get("pipeline"), "pipeline")
        raw_models = data.get("models")
        if not isinstance(raw_models, list) or not raw_models:
            raise SpecError("field 'models' must be a non-empty list")
        models = tuple(_model(m, i, base) for i, m in enumerate(raw_models))
        ids = [m.id for m in models]
        if len(set(ids)) != len(ids):
            raise SpecError(f"field 'models': duplicate model ids in {ids}")
        if not any(m.answers for m in models):
            raise SpecError("field 'models': at least one model needs role champion or challenger")
        task = data.get("task", "classification")
        if task not in TASKS:
            raise SpecError(f"field 'task' is {task!r}; expected one of {TASKS}")
        quality = QualitySpec.from_dict(data.get("quality"))
        if quality.auto_retrain and not any(m.flavour in ("sklearn", "xgboost") and m.role != "canary" for m in models):
            raise SpecError("field 'quality.auto_retrain' is true, but no model can be retrained in batch: that takes a "
                            "scikit-learn or XGBoost model that is not the canary (River models learn online). "
                            "Add one or set auto_retrain: false")
        return cls(
            name=name,
            models=models,
            deadline_ms=_positive(data.get("deadline_ms", 100), "deadline_ms"),
            policy=PolicySpec.from_dict(data.get("policy")),
            partitions=_positive(data.get("partitions", 4), "partitions"),
            checks=Checks.from_dict(data.get("checks")),
            fallback=FallbackSpec.from_dict(data.get("fallback")),
            quality=quality,
            learning=LearningSpec.from_dict(data.get("learning")),
            task=task,
            feedback_ttl_s=_positive(data.get("feedback_ttl_s", 600), "feedback_ttl_s"),
            checkpoint_s=_positive(data.get("checkpoint_s", 60), "checkpoint_s"),
            tenants=_tenants(data.get("tenants")),
            source=source,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.name,
            "deadline_ms": self.deadline_ms,
            "policy": self.policy.to_dict(),
            "partitions": self.partitions,
            "checks": {k: v for k, v in vars(self.checks).items() if v is not None},
            "fallback": vars(self.fallback),
            "quality": vars(self.quality),
            "learning": vars(self.learning),
            "task": self.task,
            "feedback_ttl_s": self.feedback_ttl_s,
            "checkpoint_s": self.checkpoint_s,
            **({"tenants": list(self.tenants)} if self.tenants is not None else {}),
            "models": [
                {
                    "id": m.id, "version": m.version, "flavour": m.flavour, "role": m.role,
                    "group": m.group, "preference": m.preference,
                    "artifact": str(m.artifact) if m.artifact else None,
                    "sha256": m.sha256, "features": list(m.features),
                    **({"training_data": str(m.training_data)} if m.training_data else {}),
                }
                for m in self.models
            ],
        }


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise SpecError(f"field '{where}' must be a name of letters, digits, '_' or '-' (got {value!r})")
    return value


def _positive(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise SpecError(f"field '{where}' must be a positive whole number (got {value!r})")
    return value


def _section(raw: Any, where: str, allowed) -> None:
    """A sub-mapping of the spec: a mapping, with no key but ``allowed``."""
    if not isinstance(raw, Mapping):
        raise SpecError(f"field '{where}' must be a mapping")
    unknown = set(raw) - set(allowed)
    if unknown:
        raise SpecError(f"field '{where}' has unknown keys {sorted(unknown)}")


def _model(raw: Any, index: int, base: Path) -> ModelSpec:
    where = f"models[{index}]"
    if not isinstance(raw, Mapping):
        raise SpecError(f"field '{where}' must be a mapping")
    flavour = raw.get("flavour")
    if flavour not in FLAVOURS:
        raise SpecError(f"field '{where}.flavour' is {flavour!r}; expected one of {tuple(FLAVOURS)}")
    role = raw.get("role", "challenger")
    if role not in ROLES:
        raise SpecError(f"field '{where}.role' is {role!r}; expected one of {ROLES}")
    artifact = raw.get("artifact")
    if flavour != "external" and not artifact:
        raise SpecError(f"field '{where}.artifact' is required for flavour {flavour}")
    return ModelSpec(
        id=_name(raw.get("id"), f"{where}.id"),
        flavour=flavour,
        role=role,
        group=_name(raw.get("group", raw.get("id")), f"{where}.group"),
        artifact=(base / artifact) if artifact else None,
        version=str(raw.get("version", "1")),
        sha256=raw.get("sha256"),
        features=tuple(raw.get("features") or ()),
        preference=int(raw.get("preference", index)),
        training_data=(base / raw["training_data"]) if raw.get("training_data") else None,
    )


def load_spec(path: str | Path) -> PipelineSpec:
    """Read and validate a deployment spec file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"spec file {path} does not exist; `rendezvous demo` writes an example") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"spec file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise SpecError(f"spec file {path} must hold a mapping with 'pipeline' and 'models'")
    return PipelineSpec.from_dict(data, source=path.resolve())


def _tenants(raw: Any) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw or not all(isinstance(t, str) and t for t in raw):
        raise SpecError("field 'tenants' must be a non-empty list of tenant names (or left out: every tenant)")
    return tuple(raw)
