"""The model lifecycle as functions: register, promote (after checks), demote, retire, rank, retrain.

The decisions are pure and live below (``pipelines/registry.py``: what each change is as
ModelEvents; ``pipelines/promotion.py``: the checks and the live rule). These functions carry
them out against one pipeline (:class:`Lifecycle`): they read the registry from
``{p}.control``, the traffic from the archive and ``{p}.feedback``, put artifacts into the
content-addressed store and publish the events, which every worker applies within a fetch.
``rendezvous models …`` / ``rendezvous retrain`` (``streams/models_cli.py``) only parse and
print around them; the quality worker calls :meth:`Lifecycle.retrain` on decay (the learner's
checkpoints are ``pipelines/jobs/checkpoint.py``). A refusal is a :class:`LifecycleError` that
says what to do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from pipelines import registry
from pipelines.flavours import FLAVOURS
from pipelines.flavours.base import sha256_of
from pipelines.jobs.replay import recorded_report, replay, save_report
from pipelines.jobs.retrain import change_time, does_not_beat, labelled_rows, retrain
from pipelines.promotion import Check, promotion_checks, summary
from pipelines.retraining import lineage
from pipelines.registry import ArtifactStore, RegistryError, live_models, live_spec, spec_events, whoami
from pipelines.spec import PipelineSpec, load_spec
from streams.kafka.clients import Kafka
from streams.kafka.settings import Settings
from tables.archive import read_archive, read_scores
from tables.feedback import read_feedback
from tables.registry import publish_events, read_registry

__all__ = ["Lifecycle", "LifecycleError", "Promotion", "Retrained", "ensure_profile", "live_pipeline", "seed_registry"]


class LifecycleError(ValueError):
    """An operation refused, with what to do instead."""


class NotBetter(LifecycleError):
    """A retrain that did not beat the model it would replace on the held-out requests: recorded in
    ``<pipeline>/retrain/rejected.jsonl``, not registered."""

    exit_code = 3


@dataclass
class Promotion:
    checks: list[Check]
    events: list[dict]   # empty: blocked by a failed check
    forced: bool


@dataclass
class Retrained:
    record: dict         # the new model's registration
    metrics: dict        # held-out figures (RetrainResult.metrics) and the auto-promotion rule
    data_path: Path      # the training data, as trained on
    champion: str | None


class Lifecycle:
    """One pipeline's models, reached through ``settings`` (broker, data directory)."""

    def __init__(self, pipeline: str, settings: Settings, by: str | None = None) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.kafka = Kafka(settings)
        self.control = f"{pipeline}.control"
        self.store = ArtifactStore.of(settings)
        self.by = by or whoami()

    # -- reading ---------------------------------------------------------------------------------
    async def state(self) -> dict[str, dict]:
        try:
            return await read_registry(self.kafka, self.control)
        except RuntimeError as exc:
            raise LifecycleError(f"{exc} (is the broker {self.settings.broker} the pipeline's?)") from None

    async def model(self, model_id: str) -> tuple[dict[str, dict], dict]:
        state = await self.state()
        if model_id not in state:
            raise LifecycleError(f"model {model_id!r} is not registered in {self.pipeline} "
                                 f"({', '.join(sorted(state)) or 'none'}): `rendezvous models register` it")
        return state, state[model_id]

    def spec(self) -> PipelineSpec:
        """The deployment spec as the workers run it (written by them at start)."""
        path = self.settings.data_dir / self.pipeline / "pipeline.yaml"
        text = self.settings.open_store().read_text(f"{self.pipeline}/pipeline.yaml")  # as the workers last wrote it
        if text is None:
            raise LifecycleError(f"{path} does not exist: start the pipeline's workers with this data directory "
                                 "or store (`rendezvous up SPEC`) first")
        return load_spec(path)

    def load(self, record: dict):
        """The registered model, verified and loaded; ``None`` for an external one (nothing to load here)."""
        return None if record["flavour"] == "external" else self.store.load(registry.to_model_spec(record, self.store))

    async def traffic(self, since: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
        """(archived requests, their recorded Scores, labels) — since ``since`` (:func:`_time`) if given."""
        archive, scores = read_archive(await self.pulled("archive")), read_scores(await self.pulled("scores"))
        if since:
            cut = _time(since)
            if not archive.empty:
                archive = archive[archive["received_at"] >= cut]
            scores = scores[scores["request_id"].isin(set(archive["request_id"]))]
        return archive, scores, await read_feedback(self.kafka, f"{self.pipeline}.feedback")

    async def pulled(self, kind: str) -> Path:
        """The local mirror of ``<pipeline>/<kind>`` (archive, scores) with every file any host has
        published to the store."""
        return await asyncio.to_thread(self.settings.open_store().pull, f"{self.pipeline}/{kind}", ".parquet")

    def _keep(self, path: Path) -> Path:
        """Publish an output (a replay report and its answers, a retrain set) to the store; ``path``."""
        for file in path.parent.glob(f"{path.stem}.*"):
            self.settings.open_store().push(file)
        return path

    # -- changing --------------------------------------------------------------------------------
    async def publish(self, events: list[dict]) -> list[dict]:
        await publish_events(self.kafka, self.control, events, self.settings.encoding)
        return events

    async def change(self, transition: Callable[..., list[dict]], *args, **kwargs) -> list[dict]:
        """Apply a registry transition (``pipelines.registry``: demote, retire, rank, promote …) to the
        current state and publish its events."""
        try:
            events = transition(await self.state(), *args, by=self.by, **kwargs)
        except RegistryError as exc:
            raise LifecycleError(str(exc)) from None
        return await self.publish(events)

    async def register(self, model_id: str, artifact: Path | None, flavour: str, *, version: str | None = None,
                       role: str = "shadow", group: str | None = None, features: list[str] | None = None,
                       preference: int | None = None, metrics: dict[str, float] | None = None,
                       training_data: Path | None = None, code: Path = Path("."), force: bool = False) -> dict:
        """ARTIFACT as MODEL_ID (a new model or a new version): stored by SHA-256, loaded once to
        prove it is safe and works, then announced. Defaults follow the champion."""
        if flavour not in FLAVOURS:
            raise LifecycleError(f"unknown flavour {flavour!r}: one of {', '.join(FLAVOURS)}")
        if (flavour == "external") != (artifact is None):
            raise LifecycleError("an external model has no ARTIFACT; every other flavour needs one")
        state = await self.state()
        current = state.get(model_id)
        if current and current["role"] in ("champion", "challenger") and not force:
            raise LifecycleError(
                f"{model_id} is a live {current['role']}: register the new version under another id as a shadow and "
                f"`promote` it (checks run), or pass --force to swap its bytes in place")
        champion = next((e for e in live_models(state) if e["role"] == "champion"), None)
        sha = self.store.put(artifact) if artifact else None
        known = [*self.store.versions(self.pipeline, model_id), *filter(None, [current])]
        record = registry.event(
            self.pipeline, model_id, version or _next_version(known), "register", role, flavour, sha256=sha, by=self.by,
            preference=preference if preference is not None else 1 + max((e["preference"] for e in state.values()), default=0),
            group=group or (current or champion or {}).get("group") or model_id,
            features=list(features) if features else (current or champion or {}).get("features", ()),
            metrics=metrics or {}, training_data_sha256=sha256_of(training_data) if training_data else None,
            git_commit=registry.git_commit(code), artifact_name=artifact.name if artifact else None, forced=force,
        )
        try:
            await asyncio.to_thread(self.load, record)
        except Exception as exc:
            raise LifecycleError(f"refused: {exc}") from None
        self.store.record(record)
        await self.publish([record])
        return record

    async def checks(self, model_id: str, since: str | None = None) -> list[Check]:
        """What :meth:`promote` checks, without promoting."""
        spec = self.spec()
        state, record = await self.model(model_id)
        champion = next((e["model_id"] for e in live_models(state)
                         if e["role"] == "champion" and e["model_id"] != model_id), None)
        archive, scores, feedback = await self.traffic(since)
        known = {c[2:] for c in archive.columns if c.startswith("f_")}
        known |= {f for e in live_models(state) if e["model_id"] != model_id for f in e.get("features") or ()}
        load_error, report = None, None
        try:
            model = await asyncio.to_thread(self.load, record)
        except Exception as exc:
            load_error = str(exc)
        else:
            report, _ = await asyncio.to_thread(self._replay, record, model, archive, scores, feedback, since)
        return promotion_checks(model_id, record.get("features") or (), spec, known, load_error, report, champion)

    async def promote(self, model_id: str, to: str = "champion", since: str | None = None,
                      force: bool = False) -> Promotion:
        """MODEL_ID becomes ``to`` (the old champion a challenger) if every check passes, or ``force``
        (recorded in the event); else nothing changes and ``events`` is empty."""
        checks = await self.checks(model_id, since)
        failed = [c for c in checks if not c.ok]
        if failed and not force:
            return Promotion(checks, [], False)
        events = await self.change(registry.promote, model_id, to=to, forced=bool(failed), checks=summary(checks))
        return Promotion(checks, events, bool(failed))

    async def demote(self, model_id: str) -> list[dict]:
        return await self.change(registry.demote, model_id)

    async def retire(self, model_id: str, force: bool = False) -> list[dict]:
        return await self.change(registry.retire, model_id, force=force)

    async def rank(self, model_id: str, preference: int) -> list[dict]:
        return await self.change(registry.rank, model_id, preference)

    async def replay(self, model_id: str, since: str | None = None, batch: int = 64,
                     progress: Callable[[int, int], None] | None = None):
        """(ReplayReport, the candidate's answers, the report's path): MODEL_ID over archived traffic,
        compared with the live models' recorded answers (saved under DATA_DIR/PIPELINE/replays).
        ``progress(requests done, of)`` after every batch."""
        _, record = await self.model(model_id)
        archive, scores, feedback = await self.traffic(since)
        if archive.empty:
            raise LifecycleError(f"no archived requests in {self.settings.data_dir / self.pipeline / 'archive'}"
                                 f"{' since ' + since if since else ''}; let the pipeline serve traffic first")
        try:
            model = self.load(record)
        except Exception as exc:
            raise LifecycleError(f"cannot load {model_id}: {exc}") from None
        done = None if progress is None else (lambda n: progress(n, len(archive)))
        report, candidate = self._replay(record, model, archive, scores, feedback, since, batch=batch, progress=done)
        return report, candidate, self._keep(save_report(report, candidate, self.settings.data_dir / self.pipeline / "replays"))

    @staticmethod
    def _replay(record: dict, model, archive, scores, feedback, since: str | None, **kwargs):
        """Replay for a loaded model; for an external one, the comparison of its recorded Scores."""
        if model is None:
            return recorded_report(record["model_id"], record["model_version"], scores, feedback, since)
        return replay(model, archive, scores, feedback, since=since, **kwargs)

    async def retrain(self, model_id: str, new_id: str | None = None, holdout: float = 0.2, min_rows: int = 200,
                      confidence: float | None = None, since: str | None = None,
                      one_candidate: bool = False, must_beat: bool = False) -> Retrained:
        """A new version of MODEL_ID (scikit-learn or XGBoost) trained on the archive joined with
        feedback, judged on the newest ``holdout`` against it and the champion, registered as a
        shadow — promoted automatically once it beats the champion on live feedback with
        ``confidence``, if given.

        ``since``: learn only from the requests received from then on — a time (ISO 8601, or
        epoch milliseconds), or ``change``: where MODEL_ID's error rate changed, placed from its
        recorded Scores and the labels. ``one_candidate``: refuse while an earlier retrained
        version of MODEL_ID is still a shadow under evaluation (automatic retrains). ``must_beat``:
        register it only if it beats MODEL_ID on the held-out requests (automatic retrains);
        otherwise record it and raise :class:`NotBetter`."""
        state, record = await self.model(model_id)
        if one_candidate:
            waiting = [m for m, e in state.items() if m != model_id and lineage(m) == lineage(model_id)
                       and e["role"] == "shadow"]
            if waiting:
                raise LifecycleError(f"{waiting[0]}, retrained from {lineage(model_id)}, is still a shadow under "
                                     "evaluation: one candidate at a time")
        champion = next((e for e in live_models(state) if e["role"] == "champion"), None)
        archive = read_archive(await self.pulled("archive"))
        if since == "change":
            await self.pulled("scores")  # the recorded Scores place the change
        feedback = await read_feedback(self.kafka, f"{self.pipeline}.feedback")
        current = await asyncio.to_thread(self.load, record)
        if current is None:
            raise LifecycleError(f"{model_id} is an external model: retrain it where it is served")
        cut = self._since(since, model_id, archive, feedback)
        rows = labelled_rows(archive, feedback, list(current.features), cut)
        if len(rows) < min_rows:
            after = f" since {cut.isoformat()}" if cut is not None else ""
            raise LifecycleError(f"only {len(rows)} archived requests{after} have feedback (of {len(archive)} archived, "
                                 f"{len(feedback)} labels); retraining needs --min-rows {min_rows}: send more feedback "
                                 f"or lower --min-rows")
        other = self.load(champion) if champion and champion["model_id"] != model_id else None
        try:
            result = await asyncio.to_thread(retrain, current, rows, holdout, self.spec().task, other)
        except ValueError as exc:
            raise LifecycleError(str(exc)) from None
        root = lineage(model_id)  # xgb-r1 retrained is xgb-r2
        new_id = new_id or next(f"{root}-r{n}" for n in range(1, 10_000) if f"{root}-r{n}" not in state)
        folder = self.settings.data_dir / self.pipeline / "retrain"
        folder.mkdir(parents=True, exist_ok=True)
        data_path = folder / f"{new_id}.csv"
        data_path.write_bytes(result.training_data)
        self._keep(data_path)
        metrics = dict(result.metrics, **({"auto_promote_confidence": confidence} if confidence else {}),
                       **({"since_ms": float(cut.value // 1_000_000)} if cut is not None else {}))
        if champion is not None and (other is not None or champion["model_id"] == model_id):
            # the held-out pairs against the champion start its live gate (registry.held_out_pairs)
            metrics.update(registry.held_out_pairs(champion["model_id"], metrics))
        if must_beat:
            self._must_beat(model_id, new_id, metrics, folder)
        sha = self.store.put_bytes(result.artifact, new_id)
        new = registry.event(
            self.pipeline, new_id, "1", "register", "shadow", record["flavour"], sha256=sha, by=self.by,
            preference=1 + max((e["preference"] for e in state.values()), default=0), group=record.get("group"),
            features=list(current.features), metrics=metrics,
            training_data_sha256=hashlib.sha256(result.training_data).hexdigest(), git_commit=registry.git_commit(Path(".")),
            artifact_name=f"{new_id}.{FLAVOURS[record['flavour']].suffix}")
        self.store.record(new)
        await self.publish([new])
        return Retrained(new, metrics, data_path, champion["model_id"] if champion else None)

    def _must_beat(self, model_id: str, new_id: str, metrics: dict, folder: Path) -> None:
        """Raise :class:`NotBetter` (after recording it) when ``new_id`` does not beat ``model_id``
        on the held-out requests: accuracy higher, or MAE lower."""
        why = does_not_beat(metrics, self.spec().task, model_id)
        if why is None:
            return
        reason = f"{new_id} was not registered: {why}"
        with open(folder / "rejected.jsonl", "a") as out:
            out.write(json.dumps({"model_id": model_id, "candidate": new_id, "at": time.time(), "metrics": metrics,
                                  "reason": reason}) + "\n")
        self._keep(folder / "rejected.jsonl")
        raise NotBetter(reason)

    def _since(self, since: str | None, model_id: str, archive: pd.DataFrame, feedback: dict) -> pd.Timestamp | None:
        """``since`` as a time: ``None``, epoch milliseconds, ISO 8601, or ``change`` (placed now)."""
        if since is None:
            return None
        if since == "change":
            cut, after = change_time(read_scores(self.settings.data_dir / self.pipeline / "scores"), archive, feedback,
                                     model_id, self.spec().task)
            if cut is None:
                raise LifecycleError(f"--since change: {model_id} has no recorded Scores with feedback to place a "
                                     "change in; give a time instead")
            return cut
        return _time(since, " or `change`")


def _time(since: str, alternatives: str = "") -> pd.Timestamp:
    """``--since`` as a UTC time: ISO 8601 (UTC unless it says otherwise) or epoch milliseconds."""
    try:
        cut = pd.Timestamp(int(since), unit="ms") if since.isdigit() else pd.Timestamp(since)
    except ValueError:
        raise LifecycleError(f"--since {since!r} is not a time: use ISO 8601 (e.g. 2026-11-27T10:00) or epoch "
                             f"milliseconds{alternatives}") from None
    return cut.tz_localize("UTC") if cut.tzinfo is None else cut


def _next_version(versions: list[dict]) -> str:
    numbers = [int(v["model_version"]) for v in versions if str(v["model_version"]).isdigit()]
    return str(max(numbers, default=0) + 1)


def ensure_profile(spec: PipelineSpec, settings: Settings) -> Path | None:
    """The pipeline's current reference profile, built now from its models' ``training_data`` when
    the spec asks for quality checks (a ``quality`` section) and there is none yet; ``None`` when
    it asks for none. A spec that asks and cannot have one is refused here, at start — never a
    quality worker silently missing."""
    store = settings.open_store()
    current = settings.data_dir / spec.name / "profiles" / "current"
    if store.read_text(f"{spec.name}/profiles/current") is not None:  # fetched from the store when shared
        return current
    if not spec.quality.enabled:
        return None
    data = next((m.training_data for m in spec.models if m.training_data), None)
    if data is None:
        raise LifecycleError(
            f"pipeline {spec.name} asks for quality checks{' and auto-retraining' if spec.quality.auto_retrain else ''} "
            f"(its spec has a `quality:` section) but has no reference profile ({current}) and no model names its "
            "`training_data:`. Add `training_data:` to the model trained on it, run `rendezvous profile --pipeline "
            f"{spec.name} --data FILE`, or set `quality: {{enabled: false}}`")
    from features.reference import profile_training_data

    features = list(dict.fromkeys(f for m in spec.models for f in m.features))
    folder, _ = profile_training_data(spec.name, data, features, settings.data_dir, store)
    return folder


async def seed_registry(kafka: Kafka | str, spec: PipelineSpec, store: ArtifactStore,
                        by: str | None = None) -> dict[str, dict]:
    """Register the spec's models the registry does not know yet; return the registry's state.

    Run by ``rendezvous up`` and by every worker at start (idempotent: a model already in the
    registry — promoted, demoted or retired since — is left as the registry says).
    """
    topic = f"{spec.name}.control"
    state = await read_registry(kafka, topic)
    events = spec_events(spec, state, store, by)
    if events:
        await publish_events(kafka, topic, events)
        for record in events:
            state = registry.apply(state, record)
    return state


def _have_artifacts(spec: PipelineSpec, state: dict[str, dict], store: ArtifactStore, broker: str) -> None:
    """Every live model's artifact is in the store — or is the spec's own file
    with the same SHA-256 (put in now) — or the start is refused with what to do. A second host, or
    a second ``demo`` from a new data directory against a broker that has the pipeline, otherwise
    saw every worker die on a missing blob."""
    files = {m.id: m.artifact for m in spec.models if m.artifact}
    missing = []
    for record in live_models(state):
        sha = record.get("artifact_sha256")
        if not sha or store.has(sha):  # here, or in the shared store (fetched and verified by who loads it)
            continue
        source = files.get(record["model_id"])
        if source is not None and Path(source).is_file() and sha256_of(Path(source)) == sha:
            store.put(Path(source), sha)  # the very bytes the registry names
            continue
        missing.append(f"{record['model_id']} v{record['model_version']} (sha256 {sha[:12]}…)")
    if missing:
        where = (f"the store {store.store.url}" if store.store is not None
                 else f"this data directory ({store.root / 'blobs'}), which is the store when RDV_STORE is not set")
        raise LifecycleError(
            f"pipeline {spec.name} already exists on {broker}, and its registry names artifacts that are not in "
            f"{where}: {', '.join(missing)}. They were registered with another store (another host, or an earlier "
            "run from another data directory). Point every host at the store they were registered in "
            "(RDV_STORE / --store, e.g. s3://bucket/prefix or a shared file:// path), start with that data directory "
            "(--data-dir / RDV_DATA_DIR), or run under a new pipeline name (`pipeline:` in the spec)")


async def live_pipeline(spec: PipelineSpec, settings: Settings, data_dir: Any = None) -> PipelineSpec:
    """The pipeline as the registry says it is now (seeded from ``spec`` where it knows nothing).

    Also leaves the deployment spec as run in ``<pipeline>/pipeline.yaml`` in the store, where the
    ``models`` and ``replay`` commands (on any host) find the pipeline's deadline and promotion checks.
    """
    import yaml

    if data_dir is not None:
        settings = dataclasses.replace(settings, data_dir=Path(data_dir))
    kafka = Kafka(settings)
    store = ArtifactStore.of(settings)
    state = await seed_registry(kafka, spec, store, by=whoami())
    await asyncio.to_thread(_have_artifacts, spec, state, store, kafka.bootstrap)
    path = settings.data_dir / spec.name / "pipeline.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    settings.open_store().push(path)
    return live_spec(spec, state, store)
