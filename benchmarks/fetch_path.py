"""What the transport's guards cost per message: Faust's consumer against ours, no broker.

    python -m benchmarks.fetch_path                 # writes BENCHMARKS.md
    python -m benchmarks.fetch_path --messages 500000

Both consumers deliver the same fetched batches (4 partitions of 500 records, as aiokafka hands
them over) through ``Consumer.getmany``, the loop Faust's fetcher runs for every message. Ours
adds the copy of the active partitions, the fetch/seek lock and the check that a record was not
fetched before a seek of its partition (streams/kafka/transport.py, 4a and 4b). The broker, the
decoding and the agents are the same for both and left out: this is the difference alone.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time

import faust
from aiokafka.structs import ConsumerRecord
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from benchmarks import e2e
from streams.kafka.transport import StreamApp

START, END = "<!-- fetch_path:start -->", "<!-- fetch_path:end -->"


def _consumer(kind: str):
    make = StreamApp if kind == "ours" else faust.App  # ours builds its own transport
    app = make(f"rdv-bench-fetch-{kind}", broker="kafka://127.0.0.1:1", autodiscover=False)
    app.consumer_generation_id = 1
    consumer = app.consumer
    assert (type(consumer) is faust_aiokafka.Consumer) == (kind == "faust")
    tps = [TP("bench.requests", p) for p in range(4)]
    batch = {tp: [ConsumerRecord(tp.topic, tp.partition, o, 0, 0, b"k", b"v", None, 1, 1, ()) for o in range(500)]
             for tp in tps}

    async def thread_getmany(partitions, timeout):
        return batch

    consumer._thread.getmany = thread_getmany
    consumer._thread.highwater = lambda tp: 500
    consumer._set_active_tps(set(tps))
    return consumer


async def _deliver(consumer, messages: int) -> float:
    """Seconds for ``messages`` messages through ``getmany``."""
    seen, started = 0, time.perf_counter()
    while seen < messages:
        async for _tp, _message in consumer.getmany(timeout=1.0):
            seen += 1
    return time.perf_counter() - started


def measure(messages: int, repeats: int = 5) -> dict[str, float]:
    """Best of ``repeats``: microseconds per message, for Faust's consumer and ours."""
    out = {}
    for kind in ("faust", "ours"):
        consumer = _consumer(kind)
        gc.collect()
        best = min(asyncio.run(_deliver(consumer, messages)) for _ in range(repeats))
        out[kind] = best / messages * 1e6
    return out


def render(result: dict[str, float], messages: int, command: str) -> str:
    return "\n".join([
        START, f"### The consumer's delivery path — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
        f"- machine: {e2e._machine()}", "- broker: none (fetched batches handed over in memory)",
        f"- git commit: `{e2e._commit()}`", f"- command: `{command}`",
        f"- {messages:,} messages through `Consumer.getmany`, best of 5", "",
        "| consumer | µs per message | messages/s |", "|---|---:|---:|",
        *(f"| {name} | {us:.2f} | {1e6 / us:,.0f} |" for name, us in
          (("Faust's aiokafka consumer", result["faust"]), ("ours (copy, fetch/seek lock, seek check)", result["ours"]))),
        "", f"The guards cost {result['ours'] - result['faust']:+.2f} µs per message; one Faust hop costs 70–80 µs "
        "(DESIGN.md, performance model).", "", END])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000, help="messages per timed pass")
    parser.add_argument("--out", default=str(e2e.ROOT / "BENCHMARKS.md"))
    args = parser.parse_args(argv)
    result = measure(args.messages)
    print(f"Faust {result['faust']:.2f} µs/message, ours {result['ours']:.2f} µs/message")
    command = "python -m benchmarks.fetch_path " + " ".join(argv if argv is not None else sys.argv[1:])
    e2e.write(e2e.Path(args.out), render(result, args.messages, command.strip()), START, END)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
