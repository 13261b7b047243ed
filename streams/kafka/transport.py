"""The Faust app every worker runs (:class:`StreamApp`) and its transport: aiokafka with these corrections.

1. Faust's aiokafka driver hard-codes ``fetch_max_wait_ms=1500`` and ``fetch_min_bytes=1``.
   This consumer passes the app's ``fetch_max_wait_ms`` and ``fetch_min_bytes`` (``RDV_FETCH_*``,
   measured in BENCHMARKS.md).
2. While a worker stops or rebalances, Faust suspends its flow control, and a stream that
   pulls a message then *skips* it — and acknowledges it as if processed (faust/streams.py,
   ``_c_aiter``: ``do_ack or value is skipped_value``). The consumer then commits past a
   request nobody handled: CI lost requests across a restart exactly so. This consumer
   records no acknowledgement while the flow is suspended (or from an older generation):
   such messages are delivered again after the restart or rebalance — at least once, never
   lost; every sink of ours is idempotent per request_id.
3. Before every offset commit the consumer runs the app's ``before_commit`` hooks: the
   core hands its changed mailboxes, its score state and the decoy's buffered archive rows to
   the producer or to disk there, and Faust then flushes the producer and commits — so state
   that an offset covers is never only in memory, and writes need not happen per event. Each
   hook is a plain callable that takes its snapshot when called and returns what to await:
   all are called first, with no event handled in between, so the mailboxes (a label's
   "received" flag) and the score state (the label counted) are taken at one instant. The same
   snapshot is written when a rebalance revokes partitions (:class:`StreamApp`): Faust then drops
   the acknowledgements it had not committed, and those events come again — to a state that
   already holds them, and says so (a label already received, a request already open).

4. No message is committed that was not handed to a stream. Faust treats a jump in a
   partition's offsets as a "gap" (transaction markers, compaction) and acks it; two races made
   such jumps out of messages nobody saw, and a restarted core then committed past the requests
   that arrived while it recovered (benchmarks.faults lost 432–761 of 6,000 requests at 100/s).
   a. Faust hands its *live* set of active partitions to the consumer thread. If it becomes empty
      before the thread runs (recovery pauses the changelogs), aiokafka takes "no partitions"
      for "all of them", drains the paused request partitions and Faust drops those records:
      aiokafka's position is then past messages never delivered. This consumer passes a copy,
      and never an empty one.
   b. After recovery Faust resumes the stream partitions, then seeks them to their committed
      offsets while the fetcher runs: records fetched before the seek were delivered after it,
      against the reset read offset, and read as a gap. Here a seek waits for the fetch in
      flight, and records of a partition fetched before its seek are not delivered (the seek
      fetches them again).

5. Faust's producer is idempotent only inside transactions. Without it, a batch the broker wrote
   but could not acknowledge before it crashed is written again when the producer retries: a
   request got a second Result when the broker was SIGKILLed under load (tests/reliability).
   This producer is idempotent when the app's ``idempotence`` is set (``RDV_PRODUCER_IDEMPOTENCE``,
   on by default).

:class:`StreamApp` builds this transport itself (no entry point, no URL scheme of its own) and
declares what it reads: the fetch settings, idempotence and the commit hooks, typed, set once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.consumer import ensure_TP

log = logging.getLogger(__name__)

__all__ = ["CommitHook", "StreamApp", "Transport", "write_state"]

CommitHook = Callable[[], Awaitable[None]]
"""Takes its snapshot when called; what it returns is awaited to write it (see point 3)."""


class StreamApp(faust.App):
    """``faust.App`` with what this transport reads declared on it (instead of loose attributes):

    * ``fetch_max_wait_ms`` / ``fetch_min_bytes`` — every consumer's fetch (point 1);
    * ``idempotence`` — the producer's (point 5);
    * ``before_commit`` — the commit hooks (point 3); agents add theirs when they register.

    The broker URL is plain ``kafka://host:port``: the transport is built here, not looked up by scheme.
    """

    def __init__(self, *args, fetch_max_wait_ms: int = 100, fetch_min_bytes: int = 1, idempotence: bool = True,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.fetch_min_bytes = fetch_min_bytes
        self.idempotence = idempotence
        self.before_commit: list[CommitHook] = []

        @self.on_partitions_revoked.connect
        async def _write_state_on_revoke(app, revoked, **kwargs):
            # after Faust's own producer flush: whoever takes a partition over recovers this state
            await write_state(app)
            await app.producer.flush()

    def _new_transport(self):
        return Transport(self.conf.broker_consumer, self)

    def _new_producer_transport(self):
        return Transport(self.conf.broker_producer, self)


async def write_state(app: StreamApp) -> None:
    """Run the app's ``before_commit`` hooks: every snapshot is taken first, at one instant,
    then all are handed to the producer (or disk). Before every commit, and on every revoke."""
    writes = [hook() for hook in app.before_commit]
    for write in writes:
        await write


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        # aiokafka keeps the constructor argument here and hands it to its fetcher at
        # start(); tests/unit/test_transport.py fails if a release renames it.
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms
        consumer._fetch_min_bytes = self.app.fetch_min_bytes
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._fetching = asyncio.Lock()  # held by a fetch and by a seek: never both (4b above)
        self._seeks = 0                   # seeks so far
        self._seeked: dict = {}           # TP -> the seek that last moved it
        self._fetched_after = 0           # the seeks before the records being delivered were fetched

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _getmany(self, active_partitions, timeout: float):
        """Fetch for a copy of the active partitions, never for none (4a above)."""
        partitions = None if active_partitions is None else frozenset(active_partitions)
        if partitions is not None and not partitions:
            return {}
        async with self._fetching:
            records = await super()._getmany(partitions, timeout)
            self._fetched_after = self._seeks
        return records

    async def perform_seek(self) -> None:
        """Faust's seek to the committed offsets, with no fetch in flight."""
        async with self._fetching:
            await super().perform_seek()

    async def seek_to_committed(self):
        """Mark the partitions the seek moves (aiokafka moves those committed above offset 0)."""
        committed = await super().seek_to_committed()
        self._seeks += 1
        for tp, offset in committed.items():
            if offset and offset > 0:
                self._seeked[ensure_TP(tp)] = self._seeks
        return committed

    async def getmany(self, timeout: float):
        """Faust's batch, without the records of a partition that was seeked after they were fetched."""
        async for tp, message in super().getmany(timeout):
            if self._seeked.get(tp, 0) <= self._fetched_after:
                yield tp, message

    async def _commit_offsets(self, offsets, start_new_transaction: bool = True) -> bool:
        """Run the app's pre-commit hooks (they hand state writes to the producer), then Faust
        flushes the producer and commits: nothing an offset covers is only in memory."""
        await write_state(self.app)
        return await super()._commit_offsets(offsets, start_new_transaction=start_new_transaction)

    def ack(self, message) -> bool:
        """Mark ``message`` safe to commit — unless acknowledged while the flow is suspended (see 2. above)."""
        if not self.app.flow_control.is_active() or message.generation_id != self.app.consumer_generation_id:
            log.info("not acknowledged: %s/%s@%s (generation %s, app %s, flow %s)", message.topic, message.partition,
                     message.offset, message.generation_id, self.app.consumer_generation_id,
                     self.app.flow_control.is_active())
            return False
        return super().ack(message)


class Producer(faust_aiokafka.Producer):
    def _settings_extra(self):
        """Idempotent when the app asks for it (5. above); Faust's transactional settings otherwise."""
        extra = dict(super()._settings_extra())
        if self.app.idempotence:
            extra.update(acks="all", enable_idempotence=True)
        return extra


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer
    Producer = Producer
    driver_version = f"rendezvous+{faust_aiokafka.Transport.driver_version}"
