"""Feedback: ground truth joins the request and its scores; score state, policy and fallback learn.

Consumes ``{p}.feedback`` (Avro or JSON, keyed by request_id, co-partitioned with the
requests, so the worker owning a request's mailbox receives its feedback). Each label is
joined with the request exactly as the models saw it, every model's recorded score and the
answer returned (all three in the request's mailbox), then

* updates the per-model score state (``pipelines/scorebook.py``; written to its changelog-backed
  table before every offset commit: ``tables/scorestate.py``),
* gives the policy its delayed reward (a bandit learns which model to answer with),
* lets the fallback rule compare every model's recent accuracy with the canary's,
* publishes the labelled example to ``{p}.examples`` for online learners (``agents/learner.py``),
* with ``quality.auto_retrain``: runs the retrains the engine's detectors made ready
  (``pipelines/retraining.py``) as ``rendezvous retrain --since MS`` processes at idle CPU priority
  — a new version of each decayed model, trained on the requests after its change, registered as a
  shadow that is promoted once it beats the champion on live feedback.

Feedback that does not decode, or names a request that is unknown, expired or already
labelled, goes to ``{p}.dlq`` with the reason. Fallback switches go to ``{p}.alerts``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from agents.dlq import DeadLetters
from agents.worker import Worker, idle_priority
from pipelines.registry import promote
from pipelines.rendezvous import Rendezvous
from pipelines.retraining import RetrainJob
from schemas.codec import DecodeError, codec_for
from tables.registry import RegistryView, publish_events
from tables.scorestate import TableScoreStore

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(w: Worker, server: Rendezvous, registry: RegistryView) -> None:
    """``server``: the rendezvous engine holding the mailboxes; ``registry``: the view it follows."""
    app, spec, settings, topics = w.app, w.spec, w.settings, w.topics
    feedback, examples, alerts = w.raw_topic(topics.feedback), w.raw_topic(topics.examples), w.raw_topic(topics.alerts)
    dead_letters = DeadLetters(w)
    table = app.Table(topics.table("scorestate"), partitions=spec.partitions)
    store = TableScoreStore(server.book, table)
    feedback_codec = codec_for("Feedback")
    example_codec, alert_codec = codec_for("Example"), codec_for("Alert")

    @app.agent(feedback, name=f"{spec.name}-feedback")
    async def learn(stream):
        async for event in stream.events():
            message = event.message
            try:
                record = feedback_codec.decode(message.value, message.key)
                example, refused = server.on_feedback(record, message.partition)
            except DecodeError as exc:
                await dead_letters.send(event, exc.reason, exc.stage)
                continue
            except Exception as exc:  # never drop an event silently
                log.exception("feedback failed on %s@%s", message.topic, message.offset)
                await dead_letters.send(event, f"{type(exc).__name__}: {exc}", "feedback")
                continue
            if refused:
                await dead_letters.send(event, refused, "join")
            elif example is not None:
                await examples.send(key=message.key, value=example_codec.encode_as(example, settings.encoding),
                                    partition=message.partition)

    @app.timer(0.5, name=f"{spec.name}-alerts")
    async def publish_alerts():
        pending_examples, server.examples = server.examples, []
        for example in pending_examples:  # labels joined when their replayed request came (after a crash)
            await examples.send(key=example["request_id"].encode(), value=example_codec.encode_as(example, settings.encoding))
        pending, server.alerts = server.alerts, []
        for alert in pending:
            record = {"pipeline": spec.name, "at": int(time.time() * 1000), "figures": {}, **alert}
            log.warning("alert: %s", record["reason"])
            server.metrics.alert(record)
            await alerts.send(key=(alert.get("model_id") or spec.name).encode(),
                              value=alert_codec.encode_as(record, settings.encoding))

    @app.timer(1.0, name=f"{spec.name}-auto-promote")
    async def auto_promote():
        """A shadow whose rule says it beats the champion on live feedback is promoted (and told on alerts)."""
        while server.promotions:
            found = server.promotions.pop(0)
            model_id = found["model_id"]
            current = registry.state.get(model_id, {})
            if current.get("role") != "shadow":
                continue
            why = (f"{model_id} beat the champion {found['champion']} on live feedback: right alone "
                   f"{found['candidate_only']} times vs {found['champion_only']} (McNemar one-sided p = "
                   f"{found['p_value']:.4f}, rule: confidence {found['confidence']})")
            events = promote(registry.state, model_id, by="auto-promote", checks=why)
            await publish_events(w.kafka, topics.control, events, settings.encoding)
            server.alerts.append({"kind": "promoted", "model_id": model_id, "cause": "auto-promote", "reason": why,
                                  "figures": {k: float(found[k]) for k in ("p_value", "champion_only", "candidate_only")}})
            log.warning("auto-promote: %s", why)

    retraining: set[asyncio.Task] = set()

    @app.timer(1.0, name=f"{spec.name}-retrain")
    async def start_retrains():
        while server.retrain_jobs:
            task = asyncio.create_task(retrain(server.retrain_jobs.pop(0)))
            retraining.add(task)
            task.add_done_callback(retraining.discard)

    async def retrain(job: RetrainJob) -> None:
        """``rendezvous retrain`` for a decayed model, on the requests since its change, in a process
        of its own at idle priority: the answers keep both cores. Its outcome is an alert."""
        await asyncio.sleep(2 * settings.archive_flush_s)  # the newest labelled requests reach the archive first
        command = [sys.executable, "-m", "streams.cli", "retrain", "--pipeline", spec.name, "--model", job.model_id,
                   "--since", str(int(job.since_ms)), "--min-rows", str(spec.quality.retrain_min_rows),
                   "--auto-promote", "0.95", "--one-candidate", "--must-beat", "--broker", settings.broker,
                   "--data-dir", str(settings.data_dir)]
        log.warning("retrain: %s %s; %d labelled requests since its change: %s", job.model_id, job.why,
                    job.rows, " ".join(command[2:]))
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.STDOUT)
        idle_priority(process.pid)  # from here (a preexec_fn is unsafe beside the consumer's thread)
        output = (await process.communicate())[0].decode(errors="replace").strip()
        if server.retrains:
            server.retrains.finished(job)  # its lineage may be refined from here
        done, rejected = process.returncode == 0, process.returncode == 3
        last = output.splitlines()[-1] if output else ""
        if done:
            reason = (f"{job.model_id} {job.why} and was retrained on the {job.rows} labelled requests since "
                      f"its change: {last}")
        elif rejected:  # recorded by the retrain in retrain/rejected.jsonl
            reason = f"{job.model_id} {job.why}; retrained on the requests since its change, {last.removeprefix('Error: ')}"
        else:
            reason = f"{job.model_id} {job.why} but its retrain failed: {output[-1500:]}"
        (log.warning if done or rejected else log.error)("retrain: %s", reason)
        kind = "retrained" if done else "retrain-rejected" if rejected else "retrain-failed"
        server.alerts.append({"kind": kind, "model_id": job.model_id,
                              "cause": job.cause, "reason": reason[:1800],
                              "figures": {"since_ms": float(job.since_ms), "rows": float(job.rows),
                                          "refinement": float(job.refinement),
                                          "seconds": round(time.monotonic() - started, 3)}})

    # taken at the same instant as the mailboxes (their "received" flags): a label redelivered
    # after a crash is either counted in both or in neither
    app.before_commit.append(store.before_commit)

    @table.on_recover
    async def restore():
        """Faust recovered the table from its changelog (after every assignment), before any event
        of the new assignment: merge the rows, and start the policy from their rewards."""
        keys = store.restore(server.holds)
        if keys:
            live = {m.id for m in server.spec.models if m.role != "retired"}  # shadows too: see Bandit.learn
            warmed = server.policy.warm(server.book.rewards(keys), live)
            log.info("score state: %d rows restored from the table; the policy started from %d rewards",
                     len(keys), warmed)

    @app.on_before_shutdown.connect
    async def _final_flush(app, **kwargs):
        await store.flush()
