"""The embedded broker under different JVM options: start-up, memory, CPU idle and under load.

    python -m benchmarks.broker                                  # every option set, 3 runs each
    python -m benchmarks.broker --sets ours,kafka --runs 3 --rates 100,500 --load-s 20

For each option set (``--sets``; ``ours`` is :data:`streams.kafka.broker.kafka.JVM_OPTS`), ``--runs``
times, on a fresh data directory each (jars already in the cache, as after a first use):

- *first start*: launch → the broker answers a metadata request, on an empty data directory
  (formatting included, and the class-data archive made where the set uses one);
- *restart*: the same broker stopped (SIGTERM) and started again on its data;
- *RSS*: resident memory once ready, and at the end of the load;
- *idle CPU*: the broker's share of one core over ``--idle-s`` seconds with no clients;
- *under load*: the demo's pipeline (core, two model groups), a ``--warmup-s`` warm-up at the
  first of ``--rates``, then each rate for ``--load-s`` seconds: the broker's CPU share, the
  Results per second the pipeline delivered in that window, and the requests' p50 / p99 (so a
  cheaper JVM that costs latency shows it). A rate the Python workers cannot hold still
  offers the broker every request: its CPU there is what that rate costs the broker.

Medians of the runs go to BENCHMARKS.md between the ``broker`` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks import e2e
from benchmarks.soak import rss_mib

START, END = "<!-- broker:start -->", "<!-- broker:end -->"

SETS = {  # name -> RDV_BROKER_JVM_OPTS (None: ours, streams.kafka.broker.kafka.jvm_options)
    "ours": None,
    "cds": ("-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx512m -Djava.awt.headless=true "
            "-XX:SharedArchiveFile={archive} -XX:+AutoCreateSharedArchive"),
    "c2": "-XX:+UseSerialGC -Xmx512m -Djava.awt.headless=true",
    "g1": "-Xms256m -Xmx1g -XX:+UseG1GC",
    "kafka": ("-Xmx1G -Xms1G -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 "
              "-XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true"),
}
LABELS = {"ours": "ours: C1 only, serial GC, 512 MB", "cds": "ours + a class-data archive (AutoCreateSharedArchive)",
          "c2": "C2 (tiered), serial GC, 512 MB", "g1": "the earlier tests': G1, 256 MB–1 GB",
          "kafka": "Kafka's own scripts (kafka-server-start.sh): G1, 1 GB"}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed_start(broker) -> float:
    started = time.perf_counter()
    broker.start()
    return time.perf_counter() - started


def one_run(opts: str | None, workdir: Path, rates: list[float], warmup_s: float, load_s: float, idle_s: float,
            trained) -> dict:
    from streams.kafka.broker import KafkaBroker

    from streams.kafka.broker.jars import KAFKA_VERSION, cache_dir

    if opts is None:
        os.environ.pop("RDV_BROKER_JVM_OPTS", None)
    else:  # (the cds set's archive: one per set, in the jar cache, made by its first start)
        os.environ["RDV_BROKER_JVM_OPTS"] = opts.format(archive=cache_dir() / f"kafka-{KAFKA_VERSION}" / "bench-cds.jsa")
    broker = KafkaBroker(data_dir=workdir / "kafka", log_path=workdir / "kafka.log")
    out = {"first": _timed_start(broker)}
    broker.stop()
    out["restart"] = _timed_start(broker)
    try:
        out["rss_ready"] = rss_mib(broker.process.pid)
        before = cpu_seconds(broker.process.pid)
        time.sleep(idle_s)
        out["idle"] = (cpu_seconds(broker.process.pid) - before) / idle_s
        out.update(asyncio.run(_under_load(broker, workdir, rates, warmup_s, load_s, trained)))
        out["rss_load"] = rss_mib(broker.process.pid)
    finally:
        broker.stop()
    return out


async def _under_load(broker, workdir: Path, rates: list[float], warmup_s: float, load_s: float, trained) -> dict:
    from pipelines.spec import load_spec
    from pipelines.jobs.train import agrawal_rows
    from streams.kafka.broker import free_port
    from streams.client import PipelineClient
    from streams.demo import percentile
    from streams.kafka.settings import Settings
    from streams.stack import Stack

    settings = replace(Settings.from_env(), broker=broker.url, data_dir=workdir / "data", web_port=free_port())
    pool = [x for x, _ in agrawal_rows(int(max(rates) * max(warmup_s, load_s)), seed=5)]
    stack = Stack(load_spec(trained), settings)
    await asyncio.to_thread(stack.start)
    try:
        async with PipelineClient(settings, stack.spec.name, tuning=settings) as client:
            await stack.wait_ready(client)
            warm = await client.run_load(pool[: int(rates[0] * warmup_s)], rates[0])
            await client.wait_results(warm, 30)
            out = {}
            for rate in rates:
                before, started, answered = cpu_seconds(broker.process.pid), time.perf_counter(), len(client.received.results)
                ids = await client.run_load(pool[: int(rate * load_s)], rate)
                elapsed = time.perf_counter() - started
                out[f"cpu@{rate:g}"] = (cpu_seconds(broker.process.pid) - before) / elapsed
                out[f"done@{rate:g}"] = (len(client.received.results) - answered) / elapsed
                await client.wait_results(ids, 120)
                latency = client.latencies_ms(ids)
                out[f"p50@{rate:g}"], out[f"p99@{rate:g}"] = percentile(latency, 50), percentile(latency, 99)
                out[f"timeouts@{rate:g}"] = sum(client.received.results[i]["status"] == "timeout"
                                                for i in ids if i in client.received.results)
            return out
    finally:
        await asyncio.to_thread(stack.stop)


def render(rows: dict[str, list[dict]], args, command: str) -> str:
    def med(runs, key, scale=1.0, fmt="{:.1f}"):
        values = [r[key] * scale for r in runs if r.get(key) is not None]
        return fmt.format(statistics.median(values)) if values else "n/a"

    lines = [START, f"### The embedded broker: JVM options — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"- machine: {e2e._machine()}", f"- broker: {e2e.BROKER}, jars in the cache already",
             f"- git commit: `{e2e._commit()}`", f"- command: `{command}`",
             f"- medians of {args.runs} runs, each on a fresh data directory; *under load*: the demo's pipeline "
             f"(core + 2 model groups), {args.warmup_s:g} s of warm-up, then {args.load_s:g} s at each rate; broker, "
             "workers and load generator on the same cores", "",
             "| JVM options | first start → ready s | restart → ready s | RSS ready / after load MiB | idle CPU % of a core | "
             + " | ".join(f"at {r:g}/s: broker CPU % of a core · Results/s · p50 / p99 ms · timeouts" for r in args.rates) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(args.rates)]
    for name, runs in rows.items():
        lines.append(f"| {LABELS.get(name, name)} | {med(runs, 'first', fmt='{:.2f}')} | {med(runs, 'restart', fmt='{:.2f}')} | "
                     f"{med(runs, 'rss_ready', fmt='{:.0f}')} / {med(runs, 'rss_load', fmt='{:.0f}')} | "
                     f"{med(runs, 'idle', 100)} | "
                     + " | ".join(f"{med(runs, f'cpu@{r:g}', 100, '{:.0f}')} · {med(runs, f'done@{r:g}', fmt='{:.0f}')} · "
                                  f"{med(runs, f'p50@{r:g}')} / {med(runs, f'p99@{r:g}')} · "
                                  f"{sum(x.get(f'timeouts@{r:g}', 0) for x in runs)}" for r in args.rates) + " |")
    from streams.kafka.broker.kafka import JVM_OPTS

    lines += ["", f"*ours* = `{' '.join(JVM_OPTS)}` (on Java 24+ also `--sun-misc-unsafe-memory-access=allow`).",
              "", END]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS),
                        help="comma-separated, of: " + "; ".join(f"{k} ({v})" for k, v in LABELS.items()))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rates", type=lambda s: [float(r) for r in s.split(",")], default=[100.0, 500.0],
                        help="requests/s under load, comma-separated (the first is also the warm-up's)")
    parser.add_argument("--warmup-s", type=float, default=10.0)
    parser.add_argument("--load-s", type=float, default=20.0)
    parser.add_argument("--idle-s", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=e2e.ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    from pipelines.jobs.train import train_demo_models
    from streams.kafka.broker.jars import ensure_jars

    ensure_jars()
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="rdv-broker-") as tmp:
        trained = train_demo_models(Path(tmp) / "trained", pipeline="brokerbench")
        for run in range(args.runs):  # the sets interleaved: a noisy minute hurts every set alike
            for name in args.sets.split(","):
                workdir = Path(tmp) / f"{name}-{run}"
                result = one_run(SETS[name], workdir, args.rates, args.warmup_s, args.load_s, args.idle_s, trained)
                print(f"{name} run {run + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in result.items()
                                                            if isinstance(v, float)), file=sys.stderr)
                rows.setdefault(name, []).append(result)
    command = "python -m benchmarks.broker " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    e2e.write(args.out, render(rows, args, command.strip()), START, END)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
