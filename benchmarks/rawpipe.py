"""The limit: a raw aiokafka consume -> produce pipe, no Faust, no models, no state.

    python -m benchmarks.rawpipe pipe --bootstrap HOST:PORT --run ID   # the pipe process (the harness starts it)

The load generator stamps each message with its send time and a sequence number; the pipe
appends the time it received it and forwards it to the output topic, on the same partition;
the generator reads the output. Hop 1 = send -> pipe, hop 2 = pipe -> back at the generator:
each is one trip through the broker, what every hop of Rendezvous costs at the least. The
consumer and producer settings are the ones Rendezvous uses (fetch wait, linger, acks=all).
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.demo import percentile
from streams.kafka.settings import Settings

__all__ = ["create_topics", "measure", "pipe", "topic_names"]

_STAMP = struct.Struct("<dQ")  # send time, sequence
_PIPE = struct.Struct("<d")    # receive time at the pipe


def topic_names(run: str) -> tuple[str, str]:
    return f"rawpipe-{run}.in", f"rawpipe-{run}.out"


async def create_topics(bootstrap: str, run: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(t, partitions, 1) for t in topic_names(run) if t not in existing]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()


async def pipe(bootstrap: str, run: str) -> None:
    settings = Settings.from_env()
    source, out = topic_names(run)
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=f"rawpipe-{run}", auto_offset_reset="earliest",
                                fetch_max_wait_ms=settings.fetch_max_wait_ms, fetch_min_bytes=settings.fetch_min_bytes,
                                enable_auto_commit=True)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=settings.linger_ms)
    await consumer.start()
    await producer.start()
    print("ready", flush=True)
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            now = _PIPE.pack(time.time())
            for tp, messages in batch.items():
                for m in messages:
                    await producer.send(out, m.value + now, partition=tp.partition)
    finally:
        await producer.stop()
        await consumer.stop()


class _Collector:
    def __init__(self, settings: Settings, topic: str, partitions: int) -> None:
        self.topic = topic
        bootstrap = settings.bootstrap
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=settings.fetch_max_wait_ms,
                                         fetch_min_bytes=settings.fetch_min_bytes)
        self.partitions = partitions
        self.got: dict[int, tuple[float, float, float]] = {}  # seq -> (sent, at pipe, back)
        self.arrived = asyncio.Event()

    async def start(self) -> None:
        await self.consumer.start()
        tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            back = time.time()
            for messages in batch.values():
                for m in messages:
                    sent, seq = _STAMP.unpack_from(m.value)
                    (at_pipe,) = _PIPE.unpack_from(m.value, _STAMP.size)
                    self.got[seq] = (sent, at_pipe, back)
            if batch:
                self.arrived.set()

    async def wait(self, seqs: range, timeout_s: float) -> int:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and any(s not in self.got for s in seqs):
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
        return sum(1 for s in seqs if s not in self.got)

    async def stop(self) -> None:
        self.task.cancel()
        await self.consumer.stop()


async def measure(settings: Settings, run: str, partitions: int, rates: list[float], duration_s: float, slo_ms: float,
                  flood_n: int, log, warmup_s: float = 5.0) -> tuple[list[dict], dict]:
    """Latency per rate (open loop, like the other systems), then the throughput of a flood."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all", linger_ms=settings.linger_ms)
    source, out = topic_names(run)
    collector = _Collector(settings, out, partitions)
    await producer.start()
    await collector.start()
    seq = 0

    async def offer(count: int, rate: float | None) -> tuple[range, float]:
        nonlocal seq
        seqs = range(seq, seq + count)
        seq += count
        start = time.perf_counter()
        for i, s in enumerate(seqs):
            if rate:
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await producer.send(source, _STAMP.pack(time.time(), s), partition=s % partitions)
        return seqs, time.perf_counter() - start

    try:
        seqs, _ = await offer(int(200 * warmup_s), 200.0)  # the pipe's group joins; the JVM warms
        await collector.wait(seqs, 60)
        rows = []
        for rate in rates:
            count = max(1, int(rate * duration_s))
            seqs, took = await offer(count, rate)
            lost = await collector.wait(seqs, 30)
            got = [collector.got[s] for s in seqs if s in collector.got]
            e2e = [(b - s) * 1000 for s, _, b in got]
            hops = [(p - s) * 1000 for s, p, _ in got] + [(b - p) * 1000 for _, p, b in got]
            row = {"rate": rate, "offered": count / took, "n": count, "lost": lost, "timeouts": 0,
                   "p50": percentile(e2e, 50), "p99": percentile(e2e, 99), "p999": percentile(e2e, 99.9),
                   "hop_p50": percentile(hops, 50), "hop_p99": percentile(hops, 99)}
            row["sustained"] = lost == 0 and row["p99"] <= slo_ms
            log(f"  {rate:>6.0f}/s  2 hops p50 {row['p50']:6.1f} ms  p99 {row['p99']:6.1f} ms;  one hop p50 "
                f"{row['hop_p50']:5.2f} ms  p99 {row['hop_p99']:5.2f} ms  lost {lost}")
            rows.append(row)
        started = time.time()
        seqs, _ = await offer(flood_n, None)  # as fast as the producer takes them
        lost = await collector.wait(seqs, 120)
        elapsed = max((collector.got[s][2] for s in seqs if s in collector.got), default=time.time()) - started
        flood_row = {"n": flood_n, "lost": lost, "seconds": elapsed, "per_s": (flood_n - lost) / elapsed}
        log(f"  flood of {flood_n}: {flood_row['per_s']:,.0f} messages/s through the pipe, lost {lost}")
        return rows, flood_row
    finally:
        await collector.stop()
        await producer.stop()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=["pipe"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--run", required=True, help="names the topics: rawpipe-RUN.in -> rawpipe-RUN.out")
    args = parser.parse_args(argv)
    try:
        asyncio.run(pipe(args.bootstrap, args.run))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
