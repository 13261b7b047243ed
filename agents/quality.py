"""The quality monitor: validates tumbling windows of incoming requests, off the hot path.

Its own worker process (role ``quality``) reads the requests *as the decoy archived them* — the
Parquet files under ``DATA_DIR/<p>/archive/``, exactly what the models saw — rather than
consuming ``{p}.requests`` again, and it is a plain asyncio service rather than a Faust app: a
consumer group of its own, and even an idle Faust app beside the pipeline, cost the answers
measurably on 2 cores (lowering the process's CPU priority did not help; BENCHMARKS.md). It
reads ``{p}.alerts`` without a consumer group, polling once a second, and runs at idle CPU
priority. The price is the decoy's flush interval (``RDV_ARCHIVE_FLUSH_S``, 5 s) of delay.

Each window — ``window_rows`` requests or ``window_s`` seconds of arrivals, whichever comes first
— is checked in a thread by :class:`features.quality.QualityMonitor` (GX suite, drift per
feature, share of requests unlike the training population, model-decay alerts seen on
``{p}.alerts``); the result goes to ``{p}.quality`` and the quality table; failed expectations
and a decay verdict are Alerts. With ``quality.auto_retrain`` a decay verdict of the data (drifted
features, requests unlike the training population) retrains the
champion on the requests since the window that decayed, once ``retrain_min_rows`` of them are
labelled (``pipelines/jobs/lifecycle.py``, as ``rendezvous retrain --since`` does). Decayed
models are retrained by the core too, without this worker (``agents/feedback.py``). The
reference profile is ``DATA_DIR/<p>/profiles/current`` (``rendezvous profile``); without one the
worker waits for it. Archive files already checked
are listed in ``DATA_DIR/<p>/quality/checked.txt``, so a restart does not check them again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from pathlib import Path

import pandas as pd
from aiokafka import TopicPartition

from agents.worker import idle_priority
from features.profile import current_profile
from features.quality import data_decayed
from pipelines.jobs.lifecycle import Lifecycle, LifecycleError
from pipelines.spec import PipelineSpec
from schemas.codec import DecodeError, codec_for
from streams.kafka.clients import Kafka
from streams.kafka.settings import Settings
from streams.kafka.topics import PipelineTopics
from tables.archive import archive_files
from tables.quality import QualityTable

__all__ = ["QualityWorker", "run"]

RETRY_S = 15  # a retrain refused for want of labelled requests is tried again this much later

log = logging.getLogger(__name__)


class QualityWorker:
    """Windows of archived requests -> GX + drift -> ``{p}.quality``, the quality table, alerts."""

    def __init__(self, spec: PipelineSpec, settings: Settings) -> None:
        self.spec, self.settings, self.rules = spec, settings, spec.quality
        self.topics = PipelineTopics(spec.name)
        self.folder = settings.data_dir / spec.name
        self.store = settings.open_store()  # the archive and the profile come from it; windows and GX go to it
        self.pushed_at = 0.0
        self.table = QualityTable(self.folder / "quality")
        self.alert_codec, self.quality_codec = codec_for("Alert"), codec_for("Quality")
        self.rows: list[dict] = []
        self.times: list[int] = []
        self.model_alerts: list[dict] = []
        self.retrained_at = 0.0
        self.retrain_since: int | None = None  # a decayed window's start, while its retrain waits for labels
        self.retry_at = 0.0
        self._monitor, self._profile = None, None
        self.checked = self.folder / "quality" / "checked.txt"
        self.seen = set(self.checked.read_text().split()) if self.checked.exists() else set()

    async def run(self, stop: asyncio.Event) -> None:
        kafka = Kafka(self.settings)
        self.producer = kafka.producer(acks="all", linger_ms=0)
        self.consumer = kafka.consumer(enable_auto_commit=False, fetch_max_wait_ms=1000)
        await self.producer.start()
        await self.consumer.start()
        try:
            await self.consumer._client.force_metadata_update()
            tps = [TopicPartition(self.topics.alerts, p)
                   for p in sorted(self.consumer.partitions_for_topic(self.topics.alerts) or ())]
            self.consumer.assign(tps)
            await self.consumer.seek_to_end(*tps)
            log.info("quality: watching %s (windows of %d requests or %d s)", self.folder / "archive",
                     self.rules.window_rows, self.rules.window_s)
            # GX's context and the suite now, before traffic: ~2.4 s of CPU that the first window
            # otherwise spent beside the answers (BENCHMARKS.md, sidecars)
            await asyncio.to_thread(self.monitor)
            while not stop.is_set():
                await self._model_decay()
                await self.tick()
                if self.retrain_since is not None and time.time() >= self.retry_at:
                    await self._retrain()
        finally:
            await self.consumer.stop()
            await self.producer.stop()

    async def _model_decay(self) -> None:
        """Model-decay alerts from the core (River detectors on feedback) join the window's verdict."""
        batch = await self.consumer.getmany(timeout_ms=1000)
        for messages in batch.values():
            for message in messages:
                try:
                    alert = self.alert_codec.decode(message.value)
                except DecodeError:
                    continue
                if alert["kind"] == "decay" and alert.get("model_id"):
                    self.model_alerts.append(alert)

    async def tick(self) -> None:
        """Take newly archived requests into windows; close the windows that are due."""
        archive = await asyncio.to_thread(self.store.pull, f"{self.spec.name}/archive", ".parquet")
        new = [p for p in archive_files(archive) if p.name not in self.seen]
        if new:
            frame = await asyncio.to_thread(_archived, new)
            self.seen.update(p.name for p in new)
            self.checked.parent.mkdir(parents=True, exist_ok=True)
            self.checked.write_text("\n".join(sorted(self.seen)))
            for features, at_ms in zip(frame["features"], frame["at_ms"]):
                self.rows.append(features)
                self.times.append(int(at_ms))
                if len(self.rows) >= self.rules.window_rows:
                    await self.close_window()
        if len(self.times) >= self.rules.min_rows and max(self.times) - min(self.times) >= self.rules.window_s * 1000:
            await self.close_window()

    def monitor(self):
        """The monitor for the current profile: built once, again only when the profile changes."""
        sha = (self.store.read_text(f"{self.spec.name}/profiles/current") or "").strip() or None
        if sha is not None and sha != self._profile:
            from features.quality import QualityMonitor

            self.store.pull(f"{self.spec.name}/profiles/{sha}")
            self._monitor = QualityMonitor(self.spec.name, current_profile(self.folder / "profiles"),
                                           self.folder / "gx", self.rules.min_drifted, self.rules.unlike_limit,
                                           false_alarms_per_day=self.rules.false_alarms_per_day,
                                           persistence=self.rules.drift_persistence)
            self._profile = sha
            log.info("quality: monitoring against the profile of training data %s", sha[:12])
        return self._monitor

    async def close_window(self) -> None:
        rows, times, found = self.rows, self.times, self.model_alerts
        self.rows, self.times, self.model_alerts = [], [], []
        checker = await asyncio.to_thread(self.monitor)
        if checker is None:
            log.warning("quality: no reference profile for %s yet (run `rendezvous profile`); %d requests not checked",
                        self.spec.name, len(rows))
            return
        report = await asyncio.to_thread(checker.check, pd.DataFrame(rows),
                                         {"window_start": min(times), "window_end": max(times)}, found)
        record = {
            "pipeline": self.spec.name, "window_start": report["window_start"], "window_end": report["window_end"],
            "rows": report["rows"], "profile": self._profile, "gx_success": report["gx_success"],
            "failed": report["failed"], "drifted": report["drifted"],
            "drift_scores": {n: float(d.get("score", 0.0)) for n, d in report["drift"].items() if "score" in d},
            "drift_methods": {n: d["method"] for n, d in report["drift"].items()},
            "unlike_share": report["unlike_share"], "decay": report["decay"], "reasons": report["reasons"],
        }
        self.table.add({**record, "drift": report["drift"]})
        await asyncio.to_thread(self._publish)
        await self.producer.send_and_wait(self.topics.quality, self.quality_codec.encode_as(record, self.settings.encoding),
                                          key=self.spec.name.encode())
        if report["failed"]:
            await self._alert("quality", "expectations", f"{len(report['failed'])} expectations failed on "
                                                         f"{report['rows']} requests: {'; '.join(report['failed'])[:1500]}")
        if report["decay"]:
            await self._alert("decay", "data", f"decay: {'; '.join(report['reasons'])[:1800]}",
                              {"unlike_share": report["unlike_share"], "drifted": float(len(report["drifted"]))})
            # a verdict from the models' decay alerts alone is the core's to act on: it retrains each
            # decayed model from its own change (two retrains of one model on the same rows were seen)
            if data_decayed(report, self.rules.min_drifted, self.rules.unlike_limit):
                await self._maybe_retrain(report["window_start"])

    def _publish(self) -> None:
        """The windows and the GX project (validations, Data Docs) to the store, for the report and
        the other hosts; a store that is down is only logged (the next window tries again)."""
        started = time.time()
        try:
            self.store.push(self.table.path)
            self.store.push_tree(self.folder / "gx", newer_than=self.pushed_at)
            self.pushed_at = started - 1.0
        except Exception as exc:
            log.warning("quality: cannot publish the window to the store (%s); the next window tries again", exc)

    async def _alert(self, kind: str, cause: str, reason: str, figures: dict | None = None) -> None:
        log.warning("alert: %s", reason)
        record = {"pipeline": self.spec.name, "kind": kind, "model_id": None, "cause": cause, "reason": reason,
                  "at": int(time.time() * 1000), "figures": figures or {}}
        await self.producer.send_and_wait(self.topics.alerts, self.alert_codec.encode_as(record, self.settings.encoding),
                                          key=self.spec.name.encode())

    async def _maybe_retrain(self, since_ms: int) -> None:
        """On decay: a new version of the champion from the requests since the window that decayed,
        joined with their feedback — a shadow that promotes itself once it beats the champion on
        live feedback (``Lifecycle.retrain``). While fewer than ``retrain_min_rows`` of them are
        labelled it is refused; it is tried again every ``RETRY_S`` until it is done."""
        if not self.rules.auto_retrain or time.time() - self.retrained_at < self.rules.retrain_cooldown_s:
            return
        if self.retrain_since is None:
            self.retrain_since = since_ms
        await self._retrain()

    async def _retrain(self) -> None:
        self.retry_at = time.time() + RETRY_S
        lifecycle = Lifecycle(self.spec.name, self.settings, by="quality")
        registry = await lifecycle.state()
        champion = next((e["model_id"] for e in registry.values() if e["role"] == "champion"), None)
        if champion is None or registry[champion]["flavour"] not in ("sklearn", "xgboost"):
            log.warning("quality: decay, but the champion %s cannot be retrained in batch", champion)
            self.retrain_since = None
            return
        try:
            done = await lifecycle.retrain(champion, min_rows=self.rules.retrain_min_rows, confidence=0.95,
                                           since=str(self.retrain_since), one_candidate=True)
        except LifecycleError as exc:  # e.g. too few labelled requests since the window yet
            log.warning("quality: decay, but retraining %s was refused (tried again in %d s): %s", champion, RETRY_S, exc)
            return
        self.retrain_since, self.retrained_at = None, time.time()
        log.warning("quality: decay: %s retrained as %s on %d requests since the window that decayed (held-out %.4f, "
                    "the champion's %s); it is promoted once it beats the champion on live feedback", champion,
                    done.record["model_id"], done.metrics["rows_train"] + done.metrics["rows_holdout"],
                    done.metrics["holdout"], done.metrics.get("champion_holdout", "-"))


def _archived(files: list[Path]) -> pd.DataFrame:
    """Features (dicts) and arrival times (ms) of archived requests, in arrival order."""
    import pyarrow.parquet as pq

    frame = pd.concat([pq.read_table(f, columns=["received_at", "features"]).to_pandas() for f in files])
    frame = frame.sort_values("received_at")
    return pd.DataFrame({"features": frame["features"].map(json.loads).to_numpy(),
                         "at_ms": frame["received_at"].dt.as_unit("ms").astype("int64").to_numpy()})


def run(spec: PipelineSpec, settings: Settings) -> None:
    """The quality worker's main: until SIGTERM or SIGINT."""
    logging.basicConfig(level=settings.log_level.upper(), format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")
    for name in ("aiokafka", "great_expectations"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    idle_priority()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await QualityWorker(spec, settings).run(stop)

    asyncio.run(main())
