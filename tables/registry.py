"""The registry view: every worker's materialisation of the compacted ``{p}.control`` topic.

A global table in the book's sense — every worker holds all of it — read with a plain
aiokafka consumer over every partition (no consumer group: nobody shares it), first up to
the end offsets found at start (``start`` returns then, caught up), then followed: each
change calls ``on_change(state)`` within one fetch (at most ~100 ms) of its publication. Writes go
to partition 0 so that the events of one command (demote the old champion, promote the new)
are seen in their order by everyone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from aiokafka import TopicPartition

from pipelines.registry import apply
from schemas.codec import DecodeError, codec_for
from tables.results import records_until
from streams.kafka.clients import Kafka, kafka_of

__all__ = ["RegistryView", "publish_events", "read_registry"]

log = logging.getLogger(__name__)

OnChange = Callable[[dict], Awaitable[None] | None]


class RegistryView:
    def __init__(self, kafka: Kafka | str, topic: str, on_change: OnChange | None = None) -> None:
        self.kafka = kafka_of(kafka)
        self.topic = topic
        self.on_change = on_change
        self.state: dict[str, dict] = {}
        self._codec = codec_for("ModelEvent")
        self._task: asyncio.Task | None = None
        self.caught_up = False  # read up to the end offsets found at start (readiness waits for it)

    async def start(self, follow: bool = True, timeout_s: float = 30.0) -> dict[str, dict]:
        # 100 ms: changes are rare; a shorter wait only makes every idle worker poll the broker more often
        self.consumer = self.kafka.consumer(enable_auto_commit=False, fetch_max_wait_ms=100, auto_offset_reset="earliest")
        await self.consumer.start()
        try:
            partitions = await self._partitions(timeout_s)
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            self.consumer.assign(tps)
            await self.consumer.seek_to_beginning(*tps)
            self._apply([m async for m in records_until(self.consumer, await self.consumer.end_offsets(tps))])
            self.caught_up = True
        except BaseException:
            await self.consumer.stop()
            raise
        if follow:
            self._task = asyncio.create_task(self._follow())
        else:
            await self.consumer.stop()
        return self.state

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            await self.consumer.stop()
            self._task = None

    async def _partitions(self, timeout_s: float) -> set[int]:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while True:
            await self.consumer._client.force_metadata_update()  # what partitions_for_topic reads
            found = self.consumer.partitions_for_topic(self.topic)
            if found:
                return found
            if loop.time() > end:
                raise RuntimeError(f"topic {self.topic} does not exist; start the pipeline (`rendezvous up`) first")
            await asyncio.sleep(0.2)

    def _apply(self, messages) -> bool:
        changed = False
        for message in messages:
            try:
                record = self._codec.decode(message.value)
            except DecodeError as exc:
                log.error("registry: ignoring an undecodable event at %s: %s", message.offset, exc)
                continue
            if self.state.get(record["model_id"]) != record:
                self.state = apply(self.state, record)
                changed = True
        return changed

    async def _follow(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=500)
            if self._apply(m for messages in batch.values() for m in messages) and self.on_change is not None:
                try:
                    result = self.on_change(self.state)
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:
                    log.exception("registry: applying a change failed; the previous models keep serving")


async def read_registry(kafka: Kafka | str, topic: str) -> dict[str, dict]:
    """The registry's current state, read once."""
    return await RegistryView(kafka, topic).start(follow=False)


async def publish_events(kafka: Kafka | str, topic: str, events: list[dict], encoding: str = "avro") -> None:
    """Write ModelEvents (keyed by model id, in order, to partition 0) and wait until the broker has them."""
    codec = codec_for("ModelEvent")
    producer = kafka_of(kafka).producer(acks="all", linger_ms=0)
    await producer.start()
    try:
        for record in events:
            await producer.send_and_wait(topic, codec.encode_as(record, encoding), key=record["model_id"].encode(),
                                         partition=0)
    finally:
        await producer.stop()
