"""A cheaper load generator: requests produced and Results consumed by librdkafka (confluent-kafka).

The benchmarks' load generator shares the machine with the pipeline. :class:`streams.client.PipelineClient`
(aiokafka, pure Python) took 22–25 % of a core at 200 requests/s, on a machine the pipeline
saturates at ~250–300/s. This one keeps the Python work to encoding each request; produce
requests, fetches and their decoding run in librdkafka's C threads, and Results are stamped by a
thread of their own as they arrive and decoded only when asked for (after the load window).

It offers what the benchmarks use of ``PipelineClient`` — ``run_load``, ``wait_results``,
``latencies_ms``, ``send_feedback``, ``sent_at`` and ``received`` (``results``, ``result_at``,
``duplicates``) — for a PLAINTEXT broker (the embedded one, or ``--broker``). Readiness probes
still go through ``PipelineClient`` (they watch the scores topic).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any, Iterable, Mapping

from schemas.codec import codec_for
from streams.client import PipelineClient, paced
from streams.kafka.topics import PipelineTopics

__all__ = ["NativeClient", "load_client"]


def load_client(stack, kind: str = "native"):
    """The load generator for a running ``stack``: ``native`` (this module) or ``python`` (PipelineClient)."""
    if kind == "native":
        if stack.settings.security_protocol != "PLAINTEXT":
            raise SystemExit("the native load generator speaks PLAINTEXT only: pass --client python")
        return NativeClient(stack.settings.bootstrap, stack.spec.name, stack.settings.encoding)
    return PipelineClient(stack.settings, stack.spec.name, stack.settings.encoding)


class _Received:
    """Results as they arrived (raw, keyed by request id), decoded on first access."""

    def __init__(self) -> None:
        self.raw: dict[str, bytes] = {}
        self.result_at: dict[str, float] = {}
        self.duplicates = 0
        self._decoded: dict[str, dict] = {}
        self._codec = codec_for("Result")

    @property
    def results(self) -> dict[str, dict]:
        for rid in [r for r in list(self.raw) if r not in self._decoded]:
            self._decoded[rid] = self._codec.decode(self.raw[rid])
        return self._decoded


class NativeClient:
    """``async with NativeClient(bootstrap, pipeline) as client: await client.run_load(rows, rate)``."""

    def __init__(self, bootstrap: str, pipeline: str, encoding: str = "avro", fetch_max_wait_ms: int = 10) -> None:
        self.bootstrap, self.encoding, self.fetch_max_wait_ms = bootstrap, encoding, fetch_max_wait_ms
        self.topics = PipelineTopics(pipeline)
        self.sent_at: dict[str, float] = {}
        self.received = _Received()
        self._requests, self._feedback = codec_for("Request"), codec_for("Feedback")
        self._stop = threading.Event()

    async def __aenter__(self) -> "NativeClient":
        from confluent_kafka import Consumer, Producer, TopicPartition

        self._loop, self._arrived = asyncio.get_running_loop(), asyncio.Event()
        # murmur2, as aiokafka and the Java client: a request and its feedback meet on one partition
        self.producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
                                  "linger.ms": 0, "partitioner": "murmur2_random"})
        self.consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"rdv-loadgen-{uuid.uuid4().hex}",
                                  "enable.auto.commit": False, "fetch.wait.max.ms": self.fetch_max_wait_ms,
                                  "fetch.min.bytes": 1})
        topic = self.topics.results
        metadata = await asyncio.to_thread(self.consumer.list_topics, topic, 10)
        partitions = sorted(metadata.topics[topic].partitions)
        if not partitions:
            raise RuntimeError(f"topic {topic} has no partitions; was the pipeline started?")
        # from the current end of each partition: nothing published after this point is missed
        ends = [await asyncio.to_thread(self.consumer.get_watermark_offsets, TopicPartition(topic, p), 10)
                for p in partitions]
        self.consumer.assign([TopicPartition(topic, p, high) for p, (_, high) in zip(partitions, ends)])
        self._thread = threading.Thread(target=self._collect, name="loadgen-results", daemon=True)
        self._thread.start()
        return self

    async def __aexit__(self, *exc) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join)
        self.consumer.close()
        await asyncio.to_thread(self.producer.flush, 10)

    def _collect(self) -> None:
        raw, result_at = self.received.raw, self.received.result_at
        while not self._stop.is_set():
            first = self.consumer.poll(0.05)  # returns with the first Result (consume(n, t) waits for n or t)
            if first is None:
                continue
            now = time.perf_counter()
            messages = [first, *self.consumer.consume(1000, 0)]  # and what else is already here
            for message in messages:
                if message.error() or message.key() is None:
                    continue
                rid = message.key().decode()
                if rid in raw:
                    self.received.duplicates += 1
                    continue
                raw[rid], result_at[rid] = message.value(), now
            if messages:
                self._loop.call_soon_threadsafe(self._arrived.set)

    async def send(self, features: Mapping[str, Any], request_id: str | None = None) -> str:
        rid = request_id or uuid.uuid4().hex
        record = {"request_id": rid, "features": dict(features), "deadline_ms": None, "tenant": None,
                  "reply_to": None, "sent_at": int(time.time() * 1000)}
        value = self._requests.encode_as(record, self.encoding)
        self.sent_at[rid] = time.perf_counter()
        self.producer.produce(self.topics.requests, value, rid.encode())
        self.producer.poll(0)
        return rid

    async def run_load(self, rows: Iterable[Mapping[str, Any]], rate_per_s: float, ids: list[str] | None = None,
                       **_) -> list[str]:
        """Send ``rows`` at a steady ``rate_per_s`` (open loop); their ids, also appended to ``ids``."""
        ids = [] if ids is None else ids
        async for _, row in paced(rows, rate_per_s):
            ids.append(await self.send(row))
        return ids

    async def send_feedback(self, request_id: str, label: Any, observed_at: int | None = None) -> None:
        record = {"request_id": request_id, "label": label, "observed_at": observed_at}
        self.producer.produce(self.topics.feedback, self._feedback.encode_as(record, self.encoding),
                              request_id.encode())
        self.producer.poll(0)

    async def wait_results(self, ids: Iterable[str], timeout_s: float) -> set[str]:
        missing = set(ids) - set(self.received.result_at)
        end = time.monotonic() + timeout_s
        while missing and time.monotonic() < end:
            self._arrived.clear()
            missing -= set(self.received.result_at)
            if not missing:
                break
            try:
                await asyncio.wait_for(self._arrived.wait(), max(0.0, min(0.5, end - time.monotonic())))
            except asyncio.TimeoutError:
                pass
            missing -= set(self.received.result_at)
        return missing

    def latencies_ms(self, ids: Iterable[str]) -> list[float]:
        at = self.received.result_at
        return [(at[i] - self.sent_at[i]) * 1000.0 for i in ids if i in at]
