"""Online learning: a model group's River models learn from ``{p}.examples`` as labels arrive.

The core joins each piece of feedback with its request (``agents/feedback.py``) and publishes
the labelled example; every model group hosting River models consumes that topic (its own
consumer group) and calls ``learn_one`` in the order labels arrived on each partition — the
same process that scores with the model, so the next micro-batch already uses what it learned.
When a learner's own errors drift it is replaced by a fresh copy grown beside it, or reset, as
the spec's ``learning`` section says (``pipelines/flavours/river.py``).

Every ``checkpoint_s`` seconds (spec field, default 60) a model that learned something is saved
to the registry as a new version (same role, group and preference; its progressive-validation
accuracy and the examples learned go into the version's metrics). A restarted worker loads
the registry's latest version, so it resumes from the last checkpoint and loses at most that
interval of learning. The group does not reload a checkpoint it wrote itself.

One worker per group that hosts an online learner: two replicas would each learn from their
own partitions and overwrite each other's checkpoints.
"""

from __future__ import annotations

import logging

from agents.worker import Worker
from pipelines.flavours.river import RiverModel
from pipelines.jobs.checkpoint import checkpoint_learners
from pipelines.scoring import ModelGroup
from schemas.codec import DecodeError, codec_for
from tables.registry import RegistryView

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(w: Worker, group: str, runner: ModelGroup, view: RegistryView) -> None:
    """``runner``: the group's models (``agents/model_runner.py``); ``view``: the registry it follows."""
    app, spec, topics = w.app, w.spec, w.topics
    examples = w.raw_topic(topics.examples)
    codec = codec_for("Example")

    async def save_checkpoints() -> list[dict]:
        learners = [m for m in runner.models if isinstance(m, RiverModel)]
        return await checkpoint_learners(learners, view.state, w.artifacts, w.kafka, topics.control, f"learner:{group}")

    @app.agent(examples, name=f"{spec.name}-learn-{group}")
    async def learn(stream):
        async for events in stream.take_events(256, within=0.05):
            learners = [m for m in runner.models if isinstance(m, RiverModel)]
            if not learners:
                continue
            for model in learners:  # a version loaded since: how to adapt comes from the spec
                if model.learning != spec.learning:
                    model.adapt(spec.learning)
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
        for record in await save_checkpoints():
            log.info("learner %s: %s checkpointed as version %s (%s)", group, record["model_id"],
                     record["model_version"], record["metrics"])

    @app.on_before_shutdown.connect
    async def _last_checkpoint(app, **kwargs):
        try:
            await save_checkpoints()
        except Exception:
            log.exception("learner %s: the last checkpoint failed; learning since the previous one is lost", group)
