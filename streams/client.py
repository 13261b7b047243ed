"""A Kafka client for a pipeline: send requests at a steady rate, collect results and scores.

Used by the demo, the tests and the benchmarks; it is also how an application talks to a
pipeline without REST. Latency is measured client-side: send to receipt of the Result.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Iterable, Mapping

from aiokafka import TopicPartition

from schemas.codec import DecodeError, codec_for, decode_scores
from streams.kafka.topics import PipelineTopics
from streams.kafka.clients import Kafka, kafka_of

__all__ = ["PipelineClient", "Received", "paced"]


async def paced(rows: Iterable[Any], rate_per_s: float) -> AsyncIterator[tuple[int, Any]]:
    """``(i, row)`` for each of ``rows`` when it is due at a steady ``rate_per_s`` (open loop:
    the schedule never waits for what the caller does with a row)."""
    start = time.perf_counter()
    for i, row in enumerate(rows):
        delay = start + i / rate_per_s - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        yield i, row


@dataclass
class Received:
    results: dict[str, dict] = field(default_factory=dict)
    result_at: dict[str, float] = field(default_factory=dict)
    duplicates: int = 0
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)  # request_id -> model_id -> prediction
    dlq: list[dict] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)
    alert_at: list[float] = field(default_factory=list)  # when each alert arrived (time.perf_counter())


class PipelineClient:
    """``async with PipelineClient(kafka, pipeline) as client: ...`` (``kafka``: a :class:`Kafka`, the
    Settings to reach it with, or a plaintext broker's ``host:port``)."""

    def __init__(self, kafka: "Kafka | str", pipeline: str, encoding: str = "avro", watch_scores: bool = False,
                 watch_alerts: bool = False, tuning=None) -> None:
        """``tuning``: a :class:`~streams.kafka.settings.Settings` whose fetch and linger knobs to use
        (the benchmarks pass the workers' own); by default a 10 ms fetch wait and no linger."""
        self.kafka = kafka_of(kafka)
        self.tuning = {"fetch_max_wait_ms": 10, "fetch_min_bytes": 1, "linger_ms": 0} if tuning is None else {
            k: getattr(tuning, k) for k in ("fetch_max_wait_ms", "fetch_min_bytes", "linger_ms")}
        self.topics = PipelineTopics(pipeline)
        self.encoding = encoding
        self.watch_scores = watch_scores
        # the scores topic is read while wait_ready() probes, and throughout only if watched
        self.watch = [self.topics.results, self.topics.dlq, self.topics.scores] + (
            [self.topics.alerts] if watch_alerts else [])
        self.sent_at: dict[str, float] = {}
        self.received = Received()
        self._probed: set[str] = set()  # models that scored a probe of wait_ready()
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> "PipelineClient":
        self.producer = self.kafka.producer(acks="all",
                                         enable_idempotence=True, linger_ms=self.tuning["linger_ms"])
        self.consumer = self.kafka.consumer(enable_auto_commit=False,
                                         fetch_max_wait_ms=self.tuning["fetch_max_wait_ms"],
                                         fetch_min_bytes=self.tuning["fetch_min_bytes"], auto_offset_reset="earliest")
        await self.producer.start()
        await self.consumer.start()
        partitions = [TopicPartition(t, p) for t in self.watch
                      for p in sorted(await self._partitions(t))]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        for tp in partitions:  # fix positions now, so nothing published after this point is missed
            await self.consumer.position(tp)
        self._scores = [tp for tp in partitions if tp.topic == self.topics.scores]
        self._watch_scores(self.watch_scores)
        self._task = asyncio.create_task(self._collect())
        return self

    def _watch_scores(self, on: bool) -> None:
        (self.consumer.resume if on else self.consumer.pause)(*self._scores)

    async def _partitions(self, topic: str) -> set[int]:
        for _ in range(100):
            found = self.consumer.partitions_for_topic(topic)
            if found:
                return found
            # The topics may have just been created. aiokafka's public consumer.topics() fetches
            # metadata without updating what partitions_for_topic() reads; this does.
            await self.consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topic {topic} has no partitions; was the pipeline started (`rendezvous up`)?")

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()
        await self.producer.stop()

    async def send(self, features: Mapping[str, Any], request_id: str | None = None, deadline_ms: int | None = None,
                   raw: bytes | None = None, **extra) -> str:
        """Send one request (or ``raw`` bytes as they are) and note when."""
        rid = request_id or uuid.uuid4().hex
        if raw is None:
            record = {"request_id": rid, "features": dict(features), "deadline_ms": deadline_ms,
                      "tenant": extra.get("tenant"), "reply_to": None, "sent_at": int(time.time() * 1000)}
            raw = codec_for("Request").encode_as(record, self.encoding)
        self.sent_at[rid] = time.perf_counter()
        await self.producer.send(self.topics.requests, value=raw, key=rid.encode())
        return rid

    async def run_load(self, rows: Iterable[Mapping[str, Any]], rate_per_s: float,
                       on_sent: Callable[[int], None] = lambda n: None, ids: list[str] | None = None,
                       **kwargs) -> list[str]:
        """Send ``rows`` at a steady ``rate_per_s`` (open loop: sends never wait for answers);
        their ids, also appended to ``ids`` as they are sent if given."""
        ids = [] if ids is None else ids
        async for i, row in paced(rows, rate_per_s):
            ids.append(await self.send(row, **kwargs))
            on_sent(i + 1)
        return ids

    async def send_feedback(self, request_id: str, label: Any, observed_at: int | None = None) -> None:
        """Ground truth for ``request_id`` on ``{p}.feedback`` (keyed by the id: it reaches the request's worker)."""
        record = {"request_id": request_id, "label": label, "observed_at": observed_at}
        await self.producer.send(self.topics.feedback, codec_for("Feedback").encode_as(record, self.encoding),
                                 key=request_id.encode())

    async def wait_results(self, ids: Iterable[str], timeout_s: float) -> set[str]:
        """Wait until every id has a Result (or the timeout); return the ids still missing."""
        missing = set(ids) - set(self.received.results)
        end = time.monotonic() + timeout_s
        while missing and time.monotonic() < end:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), max(0.0, end - time.monotonic()))
            except asyncio.TimeoutError:
                break
            missing -= set(self.received.results)
        return missing

    async def wait_for(self, condition: Callable[[Received], bool], timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while not condition(self.received):
            if time.monotonic() >= end:
                return False
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), max(0.0, end - time.monotonic()))
            except asyncio.TimeoutError:
                return condition(self.received)
        return True

    async def wait_ready(self, row: Mapping[str, Any], timeout_s: float = 90.0, models: Iterable[str] = (),
                         alive: Callable[[], None] = lambda: None) -> None:
        """Probe until a probe came back answered and every model in ``models`` scored one of them.

        A Result lists only the scores that arrived before the decision (the champion's, when it
        answers first), so the probes' Scores are read from the scores topic meanwhile and
        pooled. ``alive`` is called between probes and should raise when the pipeline's workers died.
        """
        wanted = set(models)
        end = time.monotonic() + timeout_s
        self._probed.clear()  # this call's probes only (a worker may have restarted since the last call)
        self._watch_scores(True)
        try:
            while time.monotonic() < end:
                alive()
                rid = await self.send(row, request_id=f"probe-{uuid.uuid4().hex[:8]}", deadline_ms=2000)
                if await self.wait_for(lambda r: rid in r.results, 5.0):
                    answered = self.received.results[rid]["status"] == "ok"
                    if answered and await self.wait_for(lambda r: wanted <= self._probed, 2.0):
                        return
                    await asyncio.sleep(0.5)  # not ready yet: do not flood a pipeline that is still joining
        finally:
            self._watch_scores(self.watch_scores)
        raise TimeoutError(f"pipeline {self.topics.pipeline} did not answer a probe within {timeout_s:.0f} s")

    def latencies_ms(self, ids: Iterable[str]) -> list[float]:
        return [(self.received.result_at[i] - self.sent_at[i]) * 1000.0 for i in ids if i in self.received.result_at]

    async def _collect(self) -> None:
        results, dlq, alerts = codec_for("Result"), codec_for("DeadLetter"), codec_for("Alert")
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for tp, messages in batch.items():
                for message in messages:
                    try:
                        if tp.topic == self.topics.results:
                            self._file_result(results.decode(message.value), now)
                        elif tp.topic == self.topics.scores:
                            for score in decode_scores(message.value, message.key):
                                if self.watch_scores:
                                    self.received.scores.setdefault(score["request_id"], {})[score["model_id"]] = score
                                if score["request_id"].startswith("probe-") and score["status"] == "ok":
                                    self._probed.add(score["model_id"])
                        elif tp.topic == self.topics.alerts:
                            self.received.alerts.append(alerts.decode(message.value))
                            self.received.alert_at.append(now)
                        else:
                            self.received.dlq.append(dlq.decode(message.value))
                    except DecodeError:
                        continue
            if batch:
                self._arrived.set()

    def _file_result(self, record: dict, now: float) -> None:
        rid = record["request_id"]
        if rid in self.received.results:
            self.received.duplicates += 1
            return
        self.received.results[rid] = record
        self.received.result_at[rid] = now
