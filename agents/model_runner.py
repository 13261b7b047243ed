"""The model runner: hosts the models of one model group and scores every request.

Each model group is its own Faust app and consumer group, so a slow model never delays
another. Requests are scored in micro-batches (one vectorised predict per model per batch);
every (request, model) pair gets one Score with ``latency_ms`` and ``status``. The Scores of
a micro-batch travel as one ScoreBatch message per partition (one Kafka send and one
rendezvous consume instead of one per request and model), written to the requests' own
partition of ``{p}.scores`` so the rendezvous owning them receives them whatever
partitioner the requests' producer used. Bad requests are skipped here (the decoy
reports them to the DLQ); a model error becomes a Score with ``status=error``.

The scoring itself is ``pipelines/scoring.py``. The group follows the registry
(``{p}.control``): a model registered or moved into the group is loaded — verified against its SHA-256 first, off the event loop — and joins the next
micro-batch; a retired one leaves it; a role change takes effect at once. An artifact that
fails verification is refused with an error in the log and the version already loaded keeps
serving.
"""

from __future__ import annotations

import logging

from agents.worker import Worker

from pipelines.scoring import ModelGroup
from pipelines.spec import PipelineSpec
from tables.registry import RegistryView

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(w: Worker, group: str) -> tuple[ModelGroup, RegistryView]:
    """The group's models, scoring every request; they follow the registry. The learner shares them."""
    app, spec, settings, topics = w.app, w.spec, w.settings, w.topics
    members = spec.groups.get(group, ())
    if not members:
        log.warning("pipeline %s has no live model in group %r yet (groups: %s); waiting for the registry",
                    spec.name, group, sorted(spec.groups))
    import sklearn

    # every row is checked (numbers, finite) before a model sees it: scikit-learn need not check again
    sklearn.set_config(assume_finite=True, skip_parameter_validation=True)
    # a blob another host registered comes from the store (verified) before it is loaded
    runner = ModelGroup([w.artifacts.load(m) for m in members], settings.encoding)

    async def follow(live: PipelineSpec) -> None:
        for change in await runner.update(live.groups.get(group, ()), w.artifacts.load):
            log.info("group %s: %s", group, change)

    view = w.follow_registry(follow)
    requests = w.raw_topic(topics.requests)
    within_s = settings.batch_within_ms / 1000.0

    @app.agent(requests, name=f"{spec.name}-models-{group}")
    async def score(stream):
        async for events in stream.take_events(settings.batch_max, within=within_s):
            for partition, batch in runner.score(events).items():
                await app.producer.send(topics.scores, None, runner.encode(batch), partition, None, None)

    return runner, view
