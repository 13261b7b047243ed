"""The quality monitor: validates tumbling windows of incoming requests, off the hot path.

Its own worker (role ``quality``, its own consumer group on ``{p}.requests``, at a lower CPU
priority than the workers that answer requests), so validation never delays an answer. Each
window — ``window_rows`` requests or ``window_s`` seconds, whichever comes first — is checked
in a thread by :class:`features.quality.QualityMonitor` (GX suite, drift per feature, share of
requests unlike the training population, model-decay alerts seen on ``{p}.alerts``); the result
goes to ``{p}.quality`` and the quality table; failed expectations and a decay verdict are
Alerts. With ``quality.auto_retrain`` a decay verdict runs ``rendezvous retrain`` for the
champion. The reference profile is ``DATA_DIR/<p>/profiles/current`` (``rendezvous profile``);
without one the worker waits for it.
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
    inputs = app.topic(topics.requests, topics.alerts, key_serializer="raw", value_serializer="raw")
    quality = app.topic(topics.quality, key_serializer="raw", value_serializer="raw")
    alerts = app.topic(topics.alerts, key_serializer="raw", value_serializer="raw")
    rules = spec.quality
    folder = settings.data_dir / spec.name
    table = QualityTable(folder / "quality")
    requests_codec, alert_codec, quality_codec = codec_for("Request"), codec_for("Alert"), codec_for("Quality")
    state = {"rows": [], "times": [], "opened": None, "monitor": None, "profile": None, "model_alerts": [],
             "retrained_at": 0.0}

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
        state.update(rows=[], times=[], opened=None, model_alerts=[])
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
    async def watch(stream):
        async for event in stream.events():
            message = event.message
            try:
                if message.topic == topics.alerts:
                    alert = alert_codec.decode(message.value)
                    if alert["kind"] == "decay" and alert.get("model_id"):
                        state["model_alerts"].append(alert)
                    continue
                record = requests_codec.decode(message.value, message.key)
            except DecodeError:
                continue  # the decoy reports bad requests to the DLQ
            state["rows"].append(record["features"])
            state["times"].append((message.timestamp or time.time()) * 1000)  # Faust gives seconds
            state["opened"] = state["opened"] or time.monotonic()
            if len(state["rows"]) >= rules.window_rows:
                await close_window()

    @app.timer(1.0, name=f"{spec.name}-quality-window")
    async def by_time():
        if state["opened"] and time.monotonic() - state["opened"] >= rules.window_s and len(state["rows"]) >= rules.min_rows:
            await close_window()
