"""End-to-end latency of a whole pipeline at fixed offered rates, and the maximum sustained rate.

    python -m benchmarks.e2e                      # default rates, writes BENCHMARKS.md
    python -m benchmarks.e2e --rates 100,500,1000 --duration-s 20 --groups 2

Pipeline: 2 models (XGBoost champion, logistic regression challenger) + a canary (decision
tree) + the decoy, the demo's models, on one machine with the broker and the load generator.
``--groups 2`` (the demo's layout) runs xgb in one model-group worker and lr + canary in
another; ``--groups 1`` hosts all three in one worker. The broker is the embedded one (Apache
Kafka, started for the run) unless ``--broker kafka://…`` names a running one. Before measuring,
a warm-up phase loads the pipeline at 200/s (``--warmup-s``): the JVM's compiler and the
workers' first batches settle there, not in the figures.
Latency is client-side: from the producer's send to the Result's arrival, measured by the
load generator (``--client``: librdkafka by default, ``benchmarks/loadgen.py``). A rate is
*sustained* when nothing is lost, under 1% time out, and p99 ≤ the SLO.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from pipelines.spec import load_spec
from pipelines.jobs.train import agrawal_rows, train_demo_models
from streams.kafka.broker import KAFKA_VERSION, KafkaBroker, free_port
from streams.client import PipelineClient
from streams.demo import percentile
from streams.kafka.settings import Settings
from streams.stack import Stack

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- e2e:start -->", "<!-- e2e:end -->"
WARMUP_S = 20.0
BROKER = f"Apache Kafka {KAFKA_VERSION} (KRaft, one node)"
CLIENT_HELP = ("the load generator: native (librdkafka, benchmarks/loadgen.py: the cheapest on the shared "
               "cores) or python (aiokafka, streams.client.PipelineClient)")
BROKER_HELP = "a running broker, kafka://HOST:PORT (default: start the embedded one for this run)"


@contextmanager
def running_broker(url: str | None, workdir: Path) -> Iterator[str]:
    """``url`` as it is, or the embedded broker started in ``workdir`` (and stopped after): its URL."""
    if url:
        yield url
        return
    with KafkaBroker(data_dir=workdir / "kafka", log_path=workdir / "kafka.log") as broker:
        yield broker.url


async def measure_rate(client: PipelineClient, pool: list[dict], rate: float, duration_s: float, slo_ms: float,
                       deadline_ms: float | None = None, truth: list | None = None, labels: float = 0.0) -> dict:
    """Offer ``rate`` requests/s for ``duration_s`` (open loop) and wait for every Result. With the
    pipeline's ``deadline_ms``: ``overshoot_p99``, how long after its deadline a timeout was decided
    (the rendezvous' own clock: the Result's latency minus the deadline). With ``labels`` > 0 and
    the pool's ``truth``: that share of the requests gets its label as soon as its Result came,
    while the load runs (feedback traffic, the learners and the detectors at work)."""
    n = max(1, int(rate * duration_s))
    ids: list[str] = []
    labelling = asyncio.create_task(_label(client, ids, truth, labels, n)) if labels > 0 and truth else None
    started = time.perf_counter()
    await client.run_load((pool[i % len(pool)] for i in range(n)), rate, ids=ids)
    offered = n / (time.perf_counter() - started)
    missing = await client.wait_results(ids, timeout_s=30)
    if labelling:
        await labelling
    lat = client.latencies_ms(ids)
    statuses = [client.received.results[i]["status"] for i in ids if i in client.received.results]
    row = {"rate": rate, "offered": offered, "n": n, "lost": len(missing), "timeouts": statuses.count("timeout"),
           "p50": percentile(lat, 50), "p99": percentile(lat, 99), "p999": percentile(lat, 99.9),
           "duplicates": client.received.duplicates}
    row["sustained"] = row["lost"] == 0 and row["timeouts"] <= 0.01 * n and row["p99"] <= slo_ms
    late = [client.received.results[i]["latency_ms"] - deadline_ms for i in ids
            if deadline_ms is not None and client.received.results.get(i, {}).get("status") == "timeout"]
    row["overshoot_p99"] = percentile(late, 99) if late else None
    return row


async def _label(client: PipelineClient, ids: list[str], truth: list, share: float, n: int) -> None:
    """Feedback for every ``1/share``-th request of ``ids`` (filled as they are sent), once answered."""
    every, done = max(1, round(1 / share)), 0
    while done < n:
        await asyncio.sleep(0.05)
        while done < len(ids) and ids[done] in client.received.result_at:
            if done % every == 0:
                await client.send_feedback(ids[done], truth[done % len(truth)])
            done += 1
        if done < len(ids) and time.perf_counter() - client.sent_at[ids[done]] > 30:  # lost: not labelled
            done += 1


def describe(row: dict) -> str:
    overshoot = row.get("overshoot_p99")
    return (f"  {row['rate']:>6.0f}/s  p50 {row['p50']:6.1f} ms  p99 {row['p99']:6.1f} ms  p99.9 {row['p999']:6.1f} ms"
            f"  timeouts {row.get('timeouts', 0)}"
            + (f" (decided {overshoot:.1f} ms after the deadline, p99)" if overshoot is not None else "")
            + f"  lost {row['lost']}  {'ok' if row['sustained'] else 'NOT sustained'}")


async def warm_up(stack: Stack, client, pool: list[dict], warmup_s: float) -> None:
    """Wait until every model answers (probes through a PipelineClient), then load at 200/s with ``client``."""
    async with PipelineClient(stack.settings, stack.spec.name, stack.settings.encoding) as ready:
        await stack.wait_ready(ready)
    warm = await client.run_load((pool[i % len(pool)] for i in range(int(200 * warmup_s))), 200.0)
    await client.wait_results(warm, timeout_s=30)


async def _measure(stack: Stack, rates: list[float], duration_s: float, slo_ms: float, warmup_s: float,
                   log, labels: float = 0.0, client_kind: str = "native") -> list[dict]:
    from benchmarks.loadgen import load_client

    pairs = list(agrawal_rows(20_000, seed=77))
    pool, truth = [x for x, _ in pairs], [y for _, y in pairs]
    rows_out = []
    async with load_client(stack, client_kind) as client:
        await warm_up(stack, client, pool, warmup_s)
        for rate in rates:
            row = await measure_rate(client, pool, rate, duration_s, slo_ms, stack.spec.deadline_ms, truth, labels)
            log(describe(row))
            rows_out.append(row)
            if row["lost"] or row["p99"] > 5 * slo_ms:  # far past saturation: higher rates say nothing new
                break
    return rows_out


def run_pipeline(broker: str | None, rates, duration_s, deadline_ms, slo_ms, workdir: Path, log, groups: int = 2,
                 warmup_s: float = WARMUP_S, quality: bool = False, labels: float = 0.0,
                 client: str = "native", store: str = "") -> dict:
    run = f"bench-{groups}-{'q' if quality else 'n'}-{round(labels * 100)}-{'s' if store else 'f'}"
    with running_broker(broker, workdir / run) as url:
        spec = load_spec(train_demo_models(workdir / run, pipeline=run, deadline_ms=deadline_ms, groups=groups))
        settings = replace(Settings.from_env(), broker=url, data_dir=workdir / run / "data", web_port=free_port(),
                           store=store)
        if quality:  # a reference profile: the stack then runs the quality worker too
            from features.reference import profile_training_data

            profile_training_data(spec.name, workdir / run / "models" / "training.csv",
                                  list(dict.fromkeys(f for m in spec.models for f in m.features)), settings.data_dir)
        log(f"pipeline {spec.name}, {groups} model group(s), deadline {deadline_ms} ms, "
            f"warm-up {warmup_s:g} s, {duration_s:g} s per rate, quality worker {'on' if quality else 'off'}, "
            f"labels for {labels:.0%} of the requests")
        with Stack(spec, settings) as stack:
            results = asyncio.run(_measure(stack, rates, duration_s, slo_ms, warmup_s, log, labels, client))
    return {"groups": groups, "results": results, "deadline_ms": deadline_ms, "slo_ms": slo_ms, "quality": quality,
            "labels": labels}


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else "?"
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}, {platform.system()}"


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:
        return "unknown"


def render(runs: list[dict], command: str) -> str:
    lines = [START, f"### End-to-end latency — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"- machine: {_machine()}", f"- broker: {BROKER}", f"- git commit: `{_commit()}`",
             f"- command: `{command}`",
             "- pipeline: XGBoost (champion) + logistic regression (challenger) + decision-tree canary + decoy;"
             " one core worker (decoy + rendezvous) and the model-group workers named below; broker and load"
             " generator on the same machine",
             "- latency: client-side, producer send → Result received", ""]
    for run in runs:
        best = max((r["rate"] for r in run["results"] if r["sustained"]), default=0)
        layout = "xgb | lr + canary (2 model-group workers)" if run["groups"] == 2 else "xgb + lr + canary (1 model-group worker)"
        layout += ", with the quality worker (GX + drift on windows of 2,000)" if run.get("quality") else ""
        layout += f", labels for {run['labels']:.0%} of the requests" if run.get("labels") else ""
        lines += [f"**{layout}** — deadline {run['deadline_ms']} ms; sustained = nothing lost, "
                  f"≤1% timeouts, p99 ≤ {run['slo_ms']:g} ms. **Maximum sustained rate measured: {best:g} requests/s.**", "",
                  "| offered rate (req/s) | achieved | requests | p50 ms | p99 ms | p99.9 ms | timeouts | lost | duplicates | sustained |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"]
        for r in run["results"]:
            lines.append(f"| {r['rate']:g} | {r['offered']:.0f} | {r['n']} | {r['p50']:.1f} | {r['p99']:.1f} | "
                         f"{r['p999']:.1f} | {r['timeouts']} | {r['lost']} | {r['duplicates']} | "
                         f"{'yes' if r['sustained'] else 'no'} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def write(path: Path, block: str, start: str = START, end: str = END) -> None:
    """Replace the block between ``start`` and ``end`` in ``path`` (or append it)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if start in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda m: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", default=None, help=BROKER_HELP)
    parser.add_argument("--rates", default="100,250,500,1000",
                        help="offered rates in requests/s, ascending; stops once p99 passes 5x the SLO or a request is lost")
    parser.add_argument("--duration-s", type=float, default=10.0, help="seconds of load per rate")
    parser.add_argument("--deadline-ms", type=int, default=100)
    parser.add_argument("--slo-ms", type=float, default=100.0, help="p99 that counts as sustained")
    parser.add_argument("--groups", default="2,1", help="model-group layouts to measure: 2 (demo layout) and/or 1")
    parser.add_argument("--quality", default="off", help="off, on, or off,on: run the data-quality worker beside "
                                                         "the pipeline (to show what validation costs the answers)")
    parser.add_argument("--labels", default="0", help="share(s) of the requests labelled as their Results come, "
                                                      "e.g. 0,0.1: feedback traffic beside the load")
    parser.add_argument("--client", choices=["native", "python"], default="native", help=CLIENT_HELP)
    parser.add_argument("--warmup-s", type=float, default=None,
                        help=f"seconds of 200 req/s before measuring (default: {WARMUP_S:g})")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    warmup_s = args.warmup_s if args.warmup_s is not None else WARMUP_S
    with tempfile.TemporaryDirectory(prefix="rdv-bench-") as tmp:
        runs = [run_pipeline(args.broker, rates, args.duration_s, args.deadline_ms, args.slo_ms, Path(tmp), print,
                             int(g), warmup_s, q == "on", float(share), args.client)
                for g in args.groups.split(",") for q in args.quality.split(",") for share in args.labels.split(",")]
    command = "python -m benchmarks.e2e " + " ".join(argv if argv is not None else os.sys.argv[1:])
    write(args.out, render(runs, command.strip()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
