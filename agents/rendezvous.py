"""The rendezvous agent: Faust wiring of the engine (``pipelines/rendezvous.py``).

One agent consumes ``{p}.requests`` and ``{p}.scores`` (co-partitioned by request_id): each
request is archived by the decoy, then opened at the engine; scores are archived for replay and
filed. Results go straight to the producer, and the engine writes each closed mailbox once its
Result is out (``confirm``), through the mailboxes' table (``tables/mailboxes.py``), before
every offset commit. A timer fires deadlines; on every assignment, Results already on
``{p}.results`` are read back so a replayed request is never answered twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from agents.decoy import archive_request
from agents.dlq import DeadLetters
from agents.worker import Worker
from pipelines.mailbox import is_open
from pipelines.rendezvous import Rendezvous, wall_clock_ms
from pipelines.spec import PipelineSpec
from schemas.codec import MAGIC, DecodeError, codec_for, decode_scores
from tables.archive import ParquetArchive, ScoreArchive
from tables.mailboxes import TableStore
from tables.registry import RegistryView
from tables.results import read_answered

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(w: Worker, archive: ParquetArchive,
             on_result: Callable[[dict], None] = lambda record: None) -> tuple[Rendezvous, RegistryView]:
    """The engine and the registry view it follows (the feedback agent promotes through it).
    ``archive``: the decoy's; ``on_result``: called with every Result sent (the REST replies)."""
    app, spec, settings, topics = w.app, w.spec, w.settings, w.topics
    inputs = w.raw_topic(topics.requests, topics.scores)
    dead_letters = DeadLetters(w)
    table = app.Table(topics.table("mailboxes"), partitions=spec.partitions)  # JSON keys and values
    store = TableStore(table)
    server = Rendezvous(spec, store, miss_limit=settings.miss_limit, orphan_grace_ms=settings.orphan_grace_ms,
                        metrics=w.metrics)
    scores_archive = ScoreArchive(settings.data_dir / spec.name / "scores", settings.archive_flush_rows,
                                  store=settings.open_store())

    def settled() -> bool:
        """Not in a rebalance: the partitions this worker holds are its own (another worker may be
        taking some over; a deadline decided now could answer a request twice)."""
        return not app.rebalancing and not app.in_recovery

    def follow(live: PipelineSpec) -> None:
        before = server.policy.ranking
        server.update(live)
        if server.policy.ranking != before:
            log.info("rendezvous: ranking is now %s (was %s)", server.policy.ranking, before)

    view = w.follow_registry(follow)

    @app.on_before_shutdown.connect
    async def _flush_scores(app, **kwargs):
        scores_archive.flush()

    @app.timer(settings.archive_flush_s, name=f"{spec.name}-scores-flush")
    async def flush_scores():
        await asyncio.to_thread(scores_archive.flush, scores_archive.take())

    @app.timer(60.0, name=f"{spec.name}-scores-retention")
    async def scores_retention():
        if settings.archive_retention_s > 0:
            await asyncio.to_thread(scores_archive.prune, settings.archive_retention_s)

    requests_codec, results_codec = codec_for("Request"), codec_for("Result")

    async def publish(out: list[tuple]) -> None:
        """Results to the producer; their closed mailboxes are written by the commit hook."""
        for rid, partition, record in out:
            encoding = server.encoding_of(rid, settings.encoding)
            await app.producer.send(topics.results, rid.encode(), results_codec.encode_as(record, encoding), partition,
                                    None, None)  # Faust's producer without Topic.send's per-message machinery
            server.confirm(rid)
            on_result(record)

    # every changed mailbox is taken before each commit, with the score state (streams/kafka/transport.py)
    app.before_commit.append(store.before_commit)

    @app.agent(inputs, name=f"{spec.name}-rendezvous")
    async def rendezvous(stream):
        async for event in stream.events():
            message = event.message
            try:
                if message.topic == topics.requests:
                    record = requests_codec.decode(message.value, message.key)
                    archive_request(archive, record, message)  # the decoy: archived before anything else
                    out = server.on_request(record, message.partition, "avro" if message.value[:2] == MAGIC else "json")
                else:
                    now, scores = time.time(), decode_scores(message.value, message.key)
                    for score in scores:
                        scores_archive.add(score, now)
                    out = server.on_scores(scores, message.partition)
            except DecodeError as exc:
                out = []
                await dead_letters.send(event, exc.reason, exc.stage)
            except Exception as exc:  # never drop an event silently
                out = []
                log.exception("rendezvous failed on %s@%s", message.topic, message.offset)
                await dead_letters.send(event, f"{type(exc).__name__}: {exc}", "decide")
            if server.overdue() and settled():  # under load the timer waits behind events: not the deadlines
                out += server.due()
            await publish(out)

    @app.timer(settings.tick_ms / 1000.0, name=f"{spec.name}-deadlines")
    async def deadlines():
        if settled():
            await publish(server.due())

    @app.on_partitions_assigned.connect
    async def _learn_answered(app, assigned, **kwargs):
        # Runs while Faust holds the new partitions paused: before any event is replayed.
        partitions = sorted({tp.partition for tp in assigned if tp.topic == topics.requests})
        lost, dropped = server.assign(partitions)
        if lost:
            log.info("rendezvous: partitions %s went to another worker; their %d mailboxes left this one", lost, dropped)
        answered = await _read_answered_retrying(w, topics.results, partitions, settings.dedupe_window_s)
        server.remember_answered(answered)
        rescans[0] = 3  # once the tables are recovered: a few passes, not one every second forever (O(mailboxes))
        log.info("rendezvous: %d requests on partitions %s already answered; %d mailboxes in memory, %d open",
                 len(answered), partitions, len(store.data), sum(1 for _, box in store.items() if is_open(box)))

    rescans = [3]

    @app.timer(5.0, name=f"{spec.name}-mailbox-retention")
    async def retention():
        if settled() and server.expire():
            await store.flush(final_only=True)

    @app.timer(1.0, name=f"{spec.name}-recover-deadlines")
    async def recover():
        if rescans[0] and settled():
            rescans[0] -= 1
            rearmed = server.recover()
            if rearmed:
                log.info("rendezvous: re-armed the deadlines of %d open mailboxes", rearmed)
        server.forget_answered(wall_clock_ms() - 2 * settings.dedupe_window_s * 1000)

    @app.on_before_shutdown.connect
    async def _report(app, **kwargs):
        await store.flush()
        open_boxes = [(rid, box["deadline_at"]) for rid, box in store.items() if is_open(box)]
        log.info("rendezvous: stopping with %d open mailboxes (%s), %d writes queued, stats %s", len(open_boxes),
                 ", ".join(f"{rid} due {at - wall_clock_ms():+.0f} ms" for rid, at in open_boxes[:3]),
                 len(store.pending), dict(server.stats))

    return server, view


async def _read_answered_retrying(w: Worker, topic: str, partitions: list[int], window_s: float,
                                  give_up_s: float = 120.0) -> dict[str, float]:
    """:func:`read_answered`, tried again while the broker is unreachable: a broker that dies
    during a rebalance must not crash the core (seen once under load, tests/reliability); the
    partitions stay paused meanwhile. After ``give_up_s`` the error is raised (``up`` restarts
    the worker)."""
    from aiokafka.errors import KafkaError

    loop = asyncio.get_running_loop()
    end, delay = loop.time() + give_up_s, 0.5
    while True:
        try:
            return await read_answered(w.kafka, topic, partitions, window_s)
        except (KafkaError, OSError) as exc:
            if loop.time() > end:
                raise
            log.warning("rendezvous: cannot read back recent Results yet (%s); trying again in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(5.0, delay * 2)
