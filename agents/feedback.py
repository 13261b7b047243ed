"""Feedback: ground truth joins the request and its scores; score state, policy and fallback learn.

Consumes ``{p}.feedback`` (Avro or JSON, keyed by request_id, co-partitioned with the
requests, so the worker owning a request's mailbox receives its feedback). Each label is
joined with the request exactly as the models saw it, every model's recorded score and the
answer returned (all three in the request's mailbox), then

* updates the per-model score state (``pipelines/scorebook.py``; written to its changelog-backed
  table before every offset commit: ``tables/scorestate.py``),
* gives the policy its delayed reward (a bandit learns which model to answer with),
* lets the fallback rule compare every model's recent accuracy with the canary's,
* publishes the labelled example to ``{p}.examples`` for online learners (``agents/learner.py``).

Feedback that does not decode, or names a request that is unknown, expired or already
labelled, goes to ``{p}.dlq`` with the reason. Fallback switches go to ``{p}.alerts``.
"""

from __future__ import annotations

import logging
import time

from agents.dlq import DeadLetters
from agents.worker import Worker
from pipelines.registry import promote
from pipelines.rendezvous import Rendezvous
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

    # taken at the same instant as the mailboxes (their "received" flags): a label redelivered
    # after a crash is either counted in both or in neither
    app.before_commit.append(store.before_commit)

    @table.on_recover
    async def restore():
        """Faust recovered the table from its changelog (after every assignment), before any event
        of the new assignment: merge the rows, and start the policy from their rewards."""
        keys = store.restore(server.holds)
        if keys:
            warmed = server.policy.warm(server.book.rewards(keys))
            log.info("score state: %d rows restored from the table; the policy started from %d rewards",
                     len(keys), warmed)

    @app.on_before_shutdown.connect
    async def _final_flush(app, **kwargs):
        await store.flush()
