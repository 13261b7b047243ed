"""The quality monitor: validates tumbling windows of incoming requests, off the hot path.

Its own worker (role ``quality``) reads the requests *as the decoy archived them* — the Parquet
files under ``DATA_DIR/<p>/archive/``, exactly what the models saw — rather than consuming
``{p}.requests`` again: a consumer group of its own cost the answers ~30 ms of p50 at 500
requests/s on 2 cores (broker fetches and Faust's consumer thread; lowering the process's CPU
priority did not help), reading files costs them nothing measurable (BENCHMARKS.md). The
price is the decoy's flush interval (``RDV_ARCHIVE_FLUSH_S``, 5 s) of delay, and it runs at
the lowest CPU priority.

Each window — ``window_rows`` requests or ``window_s`` seconds of arrivals, whichever comes first
— is checked in a thread by :class:`features.quality.QualityMonitor` (GX suite, drift per
feature, share of requests unlike the training population, model-decay alerts seen on
``{p}.alerts``); the result goes to ``{p}.quality`` and the quality table; failed expectations
and a decay verdict are Alerts. With ``quality.auto_retrain`` a decay verdict runs ``rendezvous
retrain`` for the champion. The reference profile is ``DATA_DIR/<p>/profiles/current``
(``rendezvous profile``); without one the worker waits for it. Archive files already checked
are listed in ``DATA_DIR/<p>/quality/checked.txt``, so a restart does not check them again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

import faust
import pandas as pd

from features.profile import current_profile
from pipelines.spec import PipelineSpec
from schemas.codec import DecodeError, codec_for
from streams.settings import Settings
from streams.topics import PipelineTopics
from tables.quality import QualityTable

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(app: faust.App, spec: PipelineSpec, settings: Settings, topics: PipelineTopics) -> None:
    inputs = app.topic(topics.alerts, key_serializer="raw", value_serializer="raw")
    quality = app.topic(topics.quality, key_serializer="raw", value_serializer="raw")
    alerts = app.topic(topics.alerts, key_serializer="raw", value_serializer="raw")
    rules = spec.quality
    folder = settings.data_dir / spec.name
    table = QualityTable(folder / "quality")
    alert_codec, quality_codec = codec_for("Alert"), codec_for("Quality")
    state = {"rows": [], "times": [], "monitor": None, "profile": None, "model_alerts": [], "retrained_at": 0.0}
    checked = folder / "quality" / "checked.txt"
    seen = set(checked.read_text().split()) if checked.exists() else set()

    def monitor():
        """The monitor for the current profile: built once, again only when the profile changes."""
        pointer = folder / "profiles" / "current"
        sha = pointer.read_text().strip() if pointer.exists() else None
        if sha is None:
            return None
        if sha != state["profile"]:
            from features.quality import QualityMonitor

            state["monitor"] = QualityMonitor(spec.name, current_profile(folder / "profiles"), folder / "gx",
                                              rules.min_drifted, rules.unlike_limit)
            state["profile"] = sha
            log.info("quality: monitoring against the profile of training data %s", sha[:12])
        return state["monitor"]

    async def close_window() -> None:
        rows, times, found = state["rows"], state["times"], state["model_alerts"]
        state.update(rows=[], times=[], model_alerts=[])
        checker = await asyncio.to_thread(monitor)
        if checker is None:
            log.warning("quality: no reference profile for %s yet (run `rendezvous profile`); %d requests not checked",
                        spec.name, len(rows))
            return
        report = await asyncio.to_thread(checker.check, pd.DataFrame(rows),
                                         {"window_start": int(min(times)), "window_end": int(max(times))}, found)
        record = {
            "pipeline": spec.name, "window_start": report["window_start"], "window_end": report["window_end"],
            "rows": report["rows"], "profile": state["profile"], "gx_success": report["gx_success"],
            "failed": report["failed"], "drifted": report["drifted"],
            "drift_scores": {n: float(d.get("score", 0.0)) for n, d in report["drift"].items() if "score" in d},
            "drift_methods": {n: d["method"] for n, d in report["drift"].items()},
            "unlike_share": report["unlike_share"], "decay": report["decay"], "reasons": report["reasons"],
        }
        table.add({**record, "drift": report["drift"]})
        await quality.send(key=spec.name.encode(), value=quality_codec.encode_as(record, settings.encoding))
        now_ms = int(time.time() * 1000)
        if report["failed"]:
            await _alert("quality", "expectations", f"{len(report['failed'])} expectations failed on {report['rows']} "
                                                    f"requests: {'; '.join(report['failed'])[:1500]}", now_ms)
        if report["decay"]:
            await _alert("decay", "data", f"decay: {'; '.join(report['reasons'])[:1800]}", now_ms,
                         {"unlike_share": report["unlike_share"], "drifted": float(len(report["drifted"]))})
            await _maybe_retrain()

    async def _alert(kind: str, cause: str, reason: str, at_ms: int, figures: dict | None = None) -> None:
        log.warning("alert: %s", reason)
        record = {"pipeline": spec.name, "kind": kind, "model_id": None, "cause": cause, "reason": reason,
                  "at": at_ms, "figures": figures or {}}
        await alerts.send(key=spec.name.encode(), value=alert_codec.encode_as(record, settings.encoding))

    async def _maybe_retrain() -> None:
        if not rules.auto_retrain or time.time() - state["retrained_at"] < rules.retrain_cooldown_s:
            return
        from tables.registry import read_registry

        state["retrained_at"] = time.time()
        registry = await read_registry(settings.bootstrap, topics.control)
        champion = next((e["model_id"] for e in registry.values() if e["role"] == "champion"), None)
        if champion is None or registry[champion]["flavour"] not in ("sklearn", "xgboost"):
            log.warning("quality: decay, but the champion %s cannot be retrained in batch", champion)
            return
        env = {**os.environ, "RDV_BROKER": settings.broker or "", "RDV_DATA_DIR": str(settings.data_dir)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streams.cli", "retrain", "--pipeline", spec.name, "--model", champion,
            "--auto-promote", "0.95", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await process.communicate()
        text = out.decode(errors="replace").strip()
        if process.returncode:  # e.g. too few labelled requests yet: try again in a minute, not a cooldown later
            state["retrained_at"] = time.time() - rules.retrain_cooldown_s + 60
        (log.warning if process.returncode == 0 else log.error)("quality: decay triggered `rendezvous retrain --model %s`: %s",
                                                                champion, text[-800:])

    @app.agent(inputs, name=f"{spec.name}-quality")
    async def model_decay(stream):
        """Model-decay alerts from the core (River detectors on feedback) join the window's verdict."""
        async for event in stream.events():
            try:
                alert = alert_codec.decode(event.message.value)
            except DecodeError:
                continue
            if alert["kind"] == "decay" and alert.get("model_id"):
                state["model_alerts"].append(alert)

    @app.timer(1.0, name=f"{spec.name}-quality-windows")
    async def read_archive_files():
        new = sorted(p for p in (folder / "archive").glob("*.parquet") if p.name not in seen)
        if new:
            frame = await asyncio.to_thread(_archived, new)
            seen.update(p.name for p in new)
            checked.parent.mkdir(parents=True, exist_ok=True)
            checked.write_text("\n".join(sorted(seen)))
            for features, at_ms in zip(frame["features"], frame["at_ms"]):
                state["rows"].append(features)
                state["times"].append(at_ms)
                if len(state["rows"]) >= rules.window_rows:
                    await close_window()
        times = state["times"]
        if times and len(times) >= rules.min_rows and max(times) - min(times) >= rules.window_s * 1000:
            await close_window()


def _archived(files) -> pd.DataFrame:
    """Features (dicts) and arrival times (ms) of archived requests, in arrival order."""
    import json

    import pyarrow.parquet as pq

    frame = pd.concat([pq.read_table(f, columns=["received_at", "features"]).to_pandas() for f in files])
    frame = frame.sort_values("received_at")
    return pd.DataFrame({"features": frame["features"].map(json.loads).to_numpy(),
                         "at_ms": frame["received_at"].dt.as_unit("ms").astype("int64").to_numpy()})
