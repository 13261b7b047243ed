"""The model registry: content-addressed artifacts on disk, model state as ModelEvents.

The source of truth is ``{p}.control``, a compacted topic of ModelEvents keyed by
``model_id``: the latest event of a model is its state (version, role, flavour, group,
preference, artifact SHA-256, features, metadata). Every worker materialises it
(:mod:`tables.registry`) and follows changes without a restart. Artifacts live in the store
(``RDV_STORE``; the data directory by default) under ``registry/blobs/`` named by their
SHA-256; a worker loads only from its local copy there and only after the bytes match the
SHA-256 of the event — model bytes never travel on Kafka.

A *model* here is a slot in a pipeline (``model_id``) with exactly one live version: its
Scores carry ``model_id`` and ``model_version``. Variants side by side are different ids
(stage ``xgb-2`` as a shadow next to ``xgb``, promote it, retire ``xgb``); registering a new
version under an existing id replaces that model in place. The transition functions here are
pure: they take the current state and return the events to publish.

>>> state = {}
>>> for e in [event("p", "a", "1", "register", "champion", "sklearn"),
...           event("p", "b", "1", "register", "challenger", "xgboost")]:
...     state = apply(state, e)
>>> [(e["model_id"], e["role"]) for e in promote(state, "b", by="me", at_ms=5)]
[('a', 'challenger'), ('b', 'champion')]
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from pipelines.flavours.base import ArtifactError, sha256_of
from pipelines.plugins import FLAVOURS
from pipelines.spec import ANSWERING_ROLES, REGISTRY_ROLES as ROLES, ModelSpec, PipelineSpec

__all__ = ["ArtifactStore", "RegistryError", "apply", "checkpoint", "demote", "event", "live_models", "live_spec",
           "next_version", "promote", "rank", "retire", "to_model_spec", "whoami"]



class RegistryError(ValueError):
    """A registry command cannot be done; the message says why and what to do."""


def whoami() -> str:
    try:
        return os.environ.get("RDV_USER") or getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def git_commit(path: Path) -> str | None:
    """The git commit of the repository holding ``path`` (the training code), if any."""
    where = Path(path).resolve()
    try:
        out = subprocess.run(["git", "-C", str(where if where.is_dir() else where.parent), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def event(pipeline: str, model_id: str, version: str, action: str, role: str, flavour: str, *,
          preference: int = 0, group: str | None = None, sha256: str | None = None, at_ms: int | None = None,
          by: str | None = None, **meta: Any) -> dict:
    """A ModelEvent record (see ``schemas/avro/ModelEvent.avsc``)."""
    if role not in ROLES:
        raise RegistryError(f"role {role!r} is not one of {ROLES}")
    if flavour not in FLAVOURS:
        raise RegistryError(f"flavour {flavour!r} is not one of {tuple(FLAVOURS)}")
    return {
        "pipeline": pipeline, "model_id": model_id, "model_version": str(version), "action": action,
        "role": role, "flavour": flavour, "preference": int(preference), "group": group,
        "artifact_sha256": sha256, "at": int(time.time() * 1000) if at_ms is None else int(at_ms),
        "by": by, "features": list(meta.get("features") or ()), "metrics": dict(meta.get("metrics") or {}),
        "training_data_sha256": meta.get("training_data_sha256"), "git_commit": meta.get("git_commit"),
        "artifact_name": meta.get("artifact_name"), "forced": bool(meta.get("forced", False)),
        "checks": meta.get("checks"),
    }


def apply(state: Mapping[str, dict], record: dict) -> dict[str, dict]:
    """The state after ``record``: the latest event of a model is its state (compaction semantics)."""
    out = dict(state)
    out[record["model_id"]] = record
    return out


def live_models(state: Mapping[str, dict]) -> list[dict]:
    """Models that are not retired, champion first, then by preference, then id."""
    live = [e for e in state.values() if e["role"] != "retired"]
    return sorted(live, key=lambda e: (e["role"] != "champion", e["preference"], e["model_id"]))


def _changed(current: dict, action: str, role: str, by: str | None, at_ms: int | None, **extra) -> dict:
    out = dict(current, action=action, role=role, by=by, at=int(time.time() * 1000) if at_ms is None else at_ms,
               forced=extra.pop("forced", False), checks=extra.pop("checks", None))
    out.update(extra)
    return out


def _get(state: Mapping[str, dict], model_id: str) -> dict:
    if model_id not in state:
        known = ", ".join(sorted(state)) or "none"
        raise RegistryError(f"model {model_id!r} is not registered in this pipeline (registered: {known}); "
                            "`rendezvous models register` it first")
    return state[model_id]


def promote(state: Mapping[str, dict], model_id: str, to: str = "champion", by: str | None = None,
            at_ms: int | None = None, **extra) -> list[dict]:
    """Events that make ``model_id`` the champion (the old champion becomes a challenger) or a challenger."""
    if to not in ANSWERING_ROLES:
        raise RegistryError(f"promote --to must be one of {ANSWERING_ROLES}, not {to!r}")
    current = _get(state, model_id)
    if current["role"] == to:
        raise RegistryError(f"model {model_id} is already {to}")
    events = []
    if to == "champion":
        for other in state.values():
            if other["role"] == "champion" and other["model_id"] != model_id:
                events.append(_changed(other, "demote", "challenger", by, at_ms))
    events.append(_changed(current, "promote", to, by, at_ms, **extra))
    return events


def demote(state: Mapping[str, dict], model_id: str, by: str | None = None, at_ms: int | None = None) -> list[dict]:
    """champion -> challenger -> shadow. The last answering model cannot be demoted."""
    current = _get(state, model_id)
    steps = {"champion": "challenger", "challenger": "shadow"}
    if current["role"] not in steps:
        raise RegistryError(f"model {model_id} is {current['role']}; only a champion or challenger can be demoted "
                            "(retire it to take it out)")
    new_role = steps[current["role"]]
    if new_role not in ANSWERING_ROLES:
        _keep_an_answer(state, model_id, "demote")
    return [_changed(current, "demote", new_role, by, at_ms)]


def retire(state: Mapping[str, dict], model_id: str, by: str | None = None, at_ms: int | None = None,
           force: bool = False) -> list[dict]:
    """Take a model out: no worker hosts it, the policy forgets it; its record stays for ``list``."""
    current = _get(state, model_id)
    if current["role"] == "retired":
        raise RegistryError(f"model {model_id} is already retired")
    if not force:
        _keep_an_answer(state, model_id, "retire")
    return [_changed(current, "retire", "retired", by, at_ms, forced=force)]


def rank(state: Mapping[str, dict], model_id: str, preference: int, by: str | None = None,
         at_ms: int | None = None) -> list[dict]:
    """Change a model's preference (lower answers first, after the champion)."""
    current = _get(state, model_id)
    if current["role"] == "retired":
        raise RegistryError(f"model {model_id} is retired; promote it back first")
    return [_changed(current, "update", current["role"], by, at_ms, preference=int(preference))]


def next_version(version: str) -> str:
    return str(int(version) + 1) if str(version).isdigit() else f"{version}.1"


def checkpoint(state: Mapping[str, dict], model_id: str, sha256: str, by: str | None = None, at_ms: int | None = None,
               metrics: Mapping[str, float] | None = None) -> list[dict]:
    """A new version of an online learner holding what it learned (same role, group and preference)."""
    current = _get(state, model_id)
    return [_changed(current, "checkpoint", current["role"], by, at_ms, model_version=next_version(current["model_version"]),
                     artifact_sha256=sha256, metrics={**(current.get("metrics") or {}), **(metrics or {})})]


def _keep_an_answer(state: Mapping[str, dict], model_id: str, verb: str) -> None:
    others = [e for e in state.values() if e["role"] in ANSWERING_ROLES and e["model_id"] != model_id]
    if state[model_id]["role"] in ANSWERING_ROLES and not others:
        raise RegistryError(f"cannot {verb} {model_id}: it is the last model that may answer; promote another "
                            "model first (or pass --force to run with none)")


class ArtifactStore:
    """Artifacts named by their SHA-256 under ``root/blobs/``, and each version's metadata as JSON.

    With a shared ``store`` (:mod:`streams.kafka.store`, ``RDV_STORE``), ``root`` is its local
    mirror: what is put in is uploaded before it counts as registered, and :meth:`fetch` downloads
    a blob another host registered, checks it against its SHA-256 and keeps it read-only here."""

    def __init__(self, root: Path, store=None) -> None:
        self.root = Path(root)
        self.store = store if store is not None and store.remote else None

    @classmethod
    def of(cls, settings) -> "ArtifactStore":
        """The registry's store for ``settings`` (data directory and ``RDV_STORE``)."""
        return cls(settings.data_dir / "registry", settings.open_store())

    def path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def _key(self, path: Path) -> str:
        return path.resolve().relative_to(self.store.local.resolve()).as_posix()

    def has(self, sha256: str) -> bool:
        """Is the blob here, or in the shared store for this host to fetch when it loads it?"""
        return self.path(sha256).exists() or (self.store is not None and self.store.exists(self._key(self.path(sha256))))

    def fetch(self, sha256: str) -> Path:
        """The blob, here and intact: downloaded from the shared store when this host lacks it (or
        holds a damaged copy). A blob that is missing there or does not match its SHA-256 is
        refused (ArtifactError) with the reason; nothing unverified is ever left in place."""
        dest = self.path(sha256)
        if self.store is None or (dest.exists() and sha256_of(dest) == sha256):
            return dest
        tmp = dest.with_name(f".{sha256}.{os.getpid()}.{time.monotonic_ns()}.download")
        try:
            self.store.fetch(self._key(dest), tmp)
        except Exception as exc:
            raise ArtifactError(f"blob {sha256[:12]}… cannot be had from the store {self.store.url}: {exc}") from None
        actual = sha256_of(tmp)
        if actual != sha256:
            tmp.unlink(missing_ok=True)
            raise ArtifactError(f"blob {sha256[:12]}… from the store {self.store.url} has SHA-256 {actual[:12]}…: "
                                "corrupt or replaced; refusing it (the versions already loaded keep serving)")
        os.chmod(tmp, 0o444)
        dest.unlink(missing_ok=True)
        tmp.replace(dest)
        return dest

    def load(self, spec: ModelSpec):
        """``spec``'s model, its blob fetched first (what a worker hosting it does)."""
        from pipelines.flavours import load_model

        if spec.sha256:
            self.fetch(spec.sha256)
        return load_model(spec)

    def put(self, source: Path, expected_sha256: str | None = None) -> str:
        """Copy ``source`` in (once), and up to the shared store; return its SHA-256. A given
        ``expected_sha256`` must match."""
        source = Path(source)
        if not source.is_file():
            raise RegistryError(f"artifact {source} does not exist")
        sha = sha256_of(source)
        if expected_sha256 and sha != expected_sha256:
            raise RegistryError(f"artifact {source} has SHA-256 {sha}, but {expected_sha256} is recorded for it; "
                                "refusing to register bytes that changed")
        dest = self.path(sha)
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{sha}.{os.getpid()}.tmp")
            shutil.copyfile(source, tmp)
            if sha256_of(tmp) != sha:
                tmp.unlink()
                raise RegistryError(f"artifact {source} changed while it was being copied; try again")
            os.chmod(tmp, 0o444)
            tmp.replace(dest)
        self._upload(dest)
        return sha

    def _upload(self, path: Path) -> None:
        if self.store is None:
            return
        try:
            self.store.push(path)
        except Exception as exc:
            raise RegistryError(f"{path.name}: cannot be uploaded to the store {self.store.url} ({exc}); nothing was "
                                "registered. Check the store's URL and credentials, then try again") from None

    def put_bytes(self, data: bytes, name: str = "artifact") -> str:
        """Store ``data`` (a checkpoint made in memory); return its SHA-256."""
        tmp = self.root / "incoming" / f"{name}.{os.getpid()}.{time.monotonic_ns()}"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        try:
            return self.put(tmp)
        finally:
            tmp.unlink(missing_ok=True)

    def record(self, record: dict) -> Path:
        """Keep the metadata of a registered version (the history ``models show`` lists)."""
        path = self.root / record["pipeline"] / record["model_id"] / f"{record['model_version']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2, sort_keys=True))
        self._upload(path)
        return path

    def versions(self, pipeline: str, model_id: str) -> list[dict]:
        folder = self.root / pipeline / model_id
        if self.store is not None:
            self.store.pull(self._key(folder), ".json")
        records = [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.exists() else []
        return sorted(records, key=lambda r: r["at"])


PAIRS = "holdout_pairs."


def held_out_pairs(champion: str, metrics: Mapping[str, float]) -> dict[str, float]:
    """A retrain's held-out pairs against ``champion`` as metrics that name it:
    ``holdout_pairs.<champion>.champion_only`` / ``.candidate_only`` (the rows only that model got
    right). The core's live gate (McNemar) against that champion starts from them; they count as
    evidence only against that champion, and only because neither model learned those rows."""
    if "holdout_champion_only" not in metrics:
        return {}
    return {f"{PAIRS}{champion}.champion_only": metrics["holdout_champion_only"],
            f"{PAIRS}{champion}.candidate_only": metrics["holdout_candidate_only"]}


def prior_pairs(metrics: Mapping[str, float]) -> tuple[tuple[str, int, int], ...]:
    """``(champion, champion only right, candidate only right)`` from :func:`held_out_pairs`' metrics.

    >>> prior_pairs(held_out_pairs("xgb-r1", {"holdout_champion_only": 2.0, "holdout_candidate_only": 9.0}))
    (('xgb-r1', 2, 9),)
    """
    champions = {k[len(PAIRS):].rsplit(".", 1)[0] for k in metrics if k.startswith(PAIRS)}
    return tuple((c, int(metrics.get(f"{PAIRS}{c}.champion_only", 0)), int(metrics.get(f"{PAIRS}{c}.candidate_only", 0)))
                 for c in sorted(champions))


def to_model_spec(record: Mapping[str, Any], store: ArtifactStore) -> ModelSpec:
    sha = record.get("artifact_sha256")
    return ModelSpec(
        id=record["model_id"], flavour=record["flavour"],
        role=record["role"] if record["role"] != "retired" else "shadow",
        group=record.get("group") or record["model_id"], artifact=store.path(sha) if sha else None,
        version=record["model_version"], sha256=sha, features=tuple(record.get("features") or ()),
        preference=record.get("preference", 0),
        auto_promote=(record.get("metrics") or {}).get("auto_promote_confidence"),
        prior=prior_pairs(record.get("metrics") or {}),
    )


def live_spec(base: PipelineSpec, state: Mapping[str, dict], store: ArtifactStore) -> PipelineSpec:
    """``base`` (deadline, policy, partitions) with the registry's live models."""
    return replace(base, models=tuple(to_model_spec(e, store) for e in live_models(state)))


def spec_events(spec: PipelineSpec, state: Mapping[str, dict], store: ArtifactStore, by: str | None = None) -> list[dict]:
    """Register events for the spec's models the registry does not know yet (seeding a new pipeline)."""
    events = []
    for model in spec.models:
        if model.id in state:
            continue
        sha = store.put(model.artifact, model.sha256) if model.artifact else None
        record = event(spec.name, model.id, model.version, "register", model.role, model.flavour,
                       preference=model.preference, group=model.group, sha256=sha, by=by,
                       features=model.features, artifact_name=model.artifact.name if model.artifact else None,
                       training_data_sha256=sha256_of(model.training_data) if model.training_data else None,
                       git_commit=git_commit(model.artifact) if model.artifact else None)
        store.record(record)
        events.append(record)
    return events
