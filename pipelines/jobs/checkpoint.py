"""Online learners' checkpoints: every model that learned since its last checkpoint becomes a new
registry version (same role, group and preference; its progressive-validation figures as the
version's metrics), so a restarted group resumes from it. Run by ``agents/learner.py``; kept
apart from ``lifecycle`` so a model group does not import the offline jobs' pandas and pyarrow.
"""

from __future__ import annotations

import asyncio

from pipelines import registry
from pipelines.registry import ArtifactStore
from streams.kafka.clients import Kafka
from tables.registry import publish_events

__all__ = ["checkpoint_learners"]


async def checkpoint_learners(models: list, state: dict[str, dict], store: ArtifactStore, kafka: Kafka | str,
                              topic: str, by: str) -> list[dict]:
    """A new registry version of every online learner (``models``: loaded models with ``learned``,
    ``dump()`` and ``metric``) that learned since its last checkpoint; the events published."""
    events = []
    for model in [m for m in models if getattr(m, "learned", 0)]:
        data = model.dump()  # on the loop: no learn_one runs in between
        sha = await asyncio.to_thread(store.put_bytes, data, model.spec.id)
        accuracy = model.metric.get()
        metrics = {"examples_learned": float(model.learned),
                   ("progressive_accuracy" if model.classifier else "progressive_mae"): float(accuracy),
                   "drifts": float(getattr(model, "drifts", 0)), "replaced": float(getattr(model, "replaced", 0))}
        (record,) = registry.checkpoint(state, model.spec.id, sha, by=by, metrics=metrics)
        store.record(record)
        model.spec = registry.to_model_spec(record, store)  # so the group does not reload what it wrote
        model.learned = 0
        events.append(record)
    if events:
        await publish_events(kafka, topic, events)
    return events
