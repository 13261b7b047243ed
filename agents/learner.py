"""Online learning: a model group's River models learn from ``{p}.examples`` as labels arrive.

The core joins each piece of feedback with its request (``agents/feedback.py``) and publishes
the labelled example; every model group hosting River models consumes that topic (its own
consumer group) and calls ``learn_one`` in the order labels arrived on each partition — the
same process that scores with the model, so the next micro-batch already uses what it learned.

Every ``checkpoint_s`` seconds (spec field, default 60) a model that learned something is saved
to the registry as a new version (same role, group and preference; its progressive-validation
accuracy and the examples learned go into the version's metrics). A restarted worker loads
the registry's latest version, so it resumes from the last checkpoint and loses at most that
interval of learning. The group does not reload a checkpoint it wrote itself.

One worker per group that hosts an online learner: two replicas would each learn from their
own partitions and overwrite each other's checkpoints.
"""

from __future__ import annotations

import asyncio
import logging

import faust

from agents.model_runner import ModelGroup
from pipelines.flavours.river import RiverModel
from pipelines.registry import ArtifactStore, checkpoint, to_model_spec
from pipelines.spec import PipelineSpec
from schemas.codec import DecodeError, codec_for
from streams.settings import Settings
from streams.topics import PipelineTopics
from tables.registry import RegistryView, publish_events

__all__ = ["register", "save_checkpoints"]

log = logging.getLogger(__name__)


async def save_checkpoints(runner: ModelGroup, view: RegistryView, store: ArtifactStore, bootstrap: str,
                           topic: str, by: str) -> list[dict]:
    """A new registry version of every River model that learned since its last checkpoint."""
    events = []
    for model in [m for m in runner.models if isinstance(m, RiverModel) and m.learned]:
        data = model.dump()  # on the loop: no learn_one runs in between
        sha = await asyncio.to_thread(store.put_bytes, data, model.spec.id)
        accuracy = model.metric.get()
        metrics = {"examples_learned": float(model.learned),
                   ("progressive_accuracy" if model.classifier else "progressive_mae"): float(accuracy)}
        (record,) = checkpoint(view.state, model.spec.id, sha, by=by, metrics=metrics)
        store.record(record)
        model.spec = to_model_spec(record, store)  # so the group does not reload what it wrote
        model.learned = 0
        events.append(record)
    if events:
        await publish_events(bootstrap, topic, events)
    return events


def register(app: faust.App, spec: PipelineSpec, settings: Settings, topics: PipelineTopics, group: str,
             runner: ModelGroup, view: RegistryView) -> None:
    examples = app.topic(topics.examples, key_serializer="raw", value_serializer="raw")
    store = ArtifactStore(settings.data_dir / "registry")
    codec = codec_for("Example")

    @app.agent(examples, name=f"{spec.name}-learn-{group}")
    async def learn(stream):
        async for events in stream.take_events(256, within=0.05):
            learners = [m for m in runner.models if isinstance(m, RiverModel)]
            if not learners:
                continue
            for event in events:
                try:
                    example = codec.decode(event.message.value, event.message.key)
                except DecodeError as exc:  # written by our core; never expected
                    log.error("learner %s: skipping an undecodable example at %s: %s", group, event.message.offset, exc)
                    continue
                for model in learners:
                    try:
                        model.learn(example["features"], example["label"])
                    except Exception:
                        log.exception("learner %s: %s failed to learn from %s", group, model.spec.id,
                                      example["request_id"])

    @app.timer(spec.checkpoint_s, name=f"{spec.name}-checkpoint-{group}")
    async def save():
        for record in await save_checkpoints(runner, view, store, settings.bootstrap, topics.control, f"learner:{group}"):
            log.info("learner %s: %s checkpointed as version %s (%s)", group, record["model_id"],
                     record["model_version"], record["metrics"])

    @app.on_before_shutdown.connect
    async def _last_checkpoint(app, **kwargs):
        try:
            await save_checkpoints(runner, view, store, settings.bootstrap, topics.control, f"learner:{group}")
        except Exception:
            log.exception("learner %s: the last checkpoint failed; learning since the previous one is lost", group)
