"""Scaling a model group out under a load one replica cannot hold, driven by its consumer lag.

    python -m benchmarks.scaling                    # Apache Kafka, writes BENCHMARKS.md and a plot
    python -m benchmarks.scaling --rate 250 --seconds 90 --max-replicas 3

The pipeline's one live model is a k-nearest-neighbours classifier (brute force over
``--knn-rows`` training rows): every row scored scans them all, as a model that is expensive per
request does (over 400,000 rows, about 1.7 ms of CPU per row in batches of 16, 8 ms for a batch of
one). Every worker runs its numerical libraries on one
thread (``OMP_NUM_THREADS=1``), as a pod with a one-CPU limit would, so a replica is one core
at most.

An autoscaler runs beside the load, as KEDA's Kafka scaler does for the Helm chart: every
``--poll-s`` it reads the group's consumer lag, and while the lag exceeds ``--lag-per-replica``
per replica it starts one more replica (``up``'s ``group:NAME#N``), at most one per
``--cooldown-s`` and never more than the partitions or ``--max-replicas``.

Reported: per second, the requests answered and the p99 of their latency; the lag at every
poll; for each replica, when it was started, when the group counted it (process start, model
load and the rebalance), and the longest pause in answers around the join.

The deadline is long (``--deadline-ms``, 10 s), so a request waits in the lag and its latency
*is* the queueing delay, instead of timing out at the deadline. The machine has 2 cores that the
broker, the core worker and the load generator share with the replicas: a third replica adds
less than the second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.jobs.train import AGRAWAL_FEATURES, agrawal_rows
from streams.stack import Stack

START, END = "<!-- scaling:start -->", "<!-- scaling:end -->"
GROUP = "neighbours"


@dataclass
class Join:
    replica: int
    started_s: float                   # the autoscaler started it (seconds into the load)
    lag_then: int
    counted_s: float | None = None     # the group's member count first included it
    pause_s: float | None = None       # the longest gap between two Results from the start to 10 s after it counted


@dataclass
class Run:
    rate: float
    seconds: float
    sent: dict[str, float] = field(default_factory=dict)     # request id -> sent (s into the load)
    answered: dict[str, float] = field(default_factory=dict)  # request id -> its Result (s into the load)
    statuses: dict[str, int] = field(default_factory=dict)
    lag: list[tuple[float, int, int]] = field(default_factory=list)  # (s, lag, members)
    joins: list[Join] = field(default_factory=list)
    lost: int = 0
    duplicates: int = 0

    def seconds_table(self) -> list[dict]:
        """Per second of sending: requests sent in it, and the p50/p99 of their latency."""
        from streams.demo import percentile

        out = []
        for second in range(int(self.seconds)):
            latencies = [(self.answered[i] - t) * 1000 for i, t in self.sent.items()
                         if second <= t < second + 1 and i in self.answered]
            out.append({"t_s": second, "n": len(latencies),
                        "p50_ms": percentile(latencies, 50) if latencies else None,
                        "p99_ms": percentile(latencies, 99) if latencies else None})
        return out


def train_knn(out_dir: Path, rows: int, seed: int = 3) -> dict:
    """A brute-force k-NN over ``rows`` Agrawal rows, saved with skops; its spec entry."""
    import numpy as np
    from sklearn.neighbors import KNeighborsClassifier

    from pipelines.flavours import sklearn as sk_flavour
    from pipelines.flavours.base import sha256_of

    data = list(agrawal_rows(rows, seed=seed))
    X = np.array([[x[k] for k in AGRAWAL_FEATURES] for x, _ in data], dtype=np.float64)  # as a replica's rows come
    model = KNeighborsClassifier(n_neighbors=25, algorithm="brute").fit(X, [y for _, y in data])
    path = out_dir / "models" / "knn.skops"
    path.parent.mkdir(parents=True, exist_ok=True)
    sk_flavour.save(model, path)
    return {"id": "knn", "version": "1", "flavour": "sklearn", "artifact": "models/knn.skops", "sha256": sha256_of(path),
            "role": "champion", "group": GROUP, "preference": 0, "features": list(AGRAWAL_FEATURES)}


async def autoscaled_load(stack: Stack, rate: float, seconds: float, max_replicas: int, lag_per_replica: int,
                          poll_s: float, cooldown_s: float, log=print) -> Run:
    from streams.kafka.topics import PipelineTopics
    from streams.metrics import LagMonitor
    from streams.testing import all_answered, ready_client

    topics = PipelineTopics(stack.spec.name)
    group_id = topics.app_id(f"group:{GROUP}")
    monitor = LagMonitor(stack.settings.broker, {group_id: [topics.requests]}, interval_s=poll_s)
    limit = min(max_replicas, stack.spec.partitions)
    run = Run(rate, seconds)
    client = await ready_client(stack)
    watcher = asyncio.create_task(monitor.run())
    try:
        rows = [x for x, _ in agrawal_rows(int(rate * seconds), seed=17)]
        t0 = time.perf_counter()
        load = asyncio.create_task(client.run_load(rows, rate_per_s=rate))
        replicas, last_start, seen_at = 1, -cooldown_s, None
        while not load.done() or (run.lag and run.lag[-1][1] > 0 and time.perf_counter() - t0 < seconds + 60):
            await asyncio.sleep(poll_s)
            if monitor.measured_at is None or monitor.measured_at == seen_at:
                continue
            seen_at = monitor.measured_at
            now = time.perf_counter() - t0
            behind = sum(v for (g, _), v in monitor.lag.items() if g == group_id)
            members = monitor.members.get(group_id, 0)
            run.lag.append((now, behind, members))
            for join in run.joins:
                if join.counted_s is None and members >= join.replica:
                    join.counted_s = now
            if not load.done() and behind > lag_per_replica * replicas and replicas < limit \
                    and now - last_start >= cooldown_s:
                replicas += 1
                last_start = now
                stack.start_worker(f"group:{GROUP}#{replicas}")
                run.joins.append(Join(replicas, now, behind))
                log(f"{now:5.1f} s: lag {behind} > {lag_per_replica} x {replicas - 1}: replica {replicas} started")
        ids = await load
        lost = await all_answered(client, ids, timeout_s=120)
        received = client.received
        run.sent = {i: client.sent_at[i] - t0 for i in ids}
        run.answered = {i: received.result_at[i] - t0 for i in ids if i in received.result_at}
        for i in ids:
            if i in received.results:
                status = received.results[i]["status"]
                run.statuses[status] = run.statuses.get(status, 0) + 1
        run.lost, run.duplicates = len(lost), received.duplicates
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await client.__aexit__(None, None, None)
    times = sorted(run.answered.values())
    for join in run.joins:
        end = (join.counted_s if join.counted_s is not None else join.started_s) + 10
        window = [t for t in times if join.started_s <= t <= end]
        join.pause_s = max((b - a for a, b in zip(window, window[1:])), default=None)
    return run


def plot(run: Run, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = run.seconds_table()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot([s for s, _, _ in run.lag], [v for _, v, _ in run.lag], color="black", label="consumer lag (requests)")
    top.set_ylabel("lag of the model group")
    bottom.plot([r["t_s"] for r in table if r["p99_ms"] is not None],
                [r["p99_ms"] for r in table if r["p99_ms"] is not None], label="p99 latency")
    bottom.plot([r["t_s"] for r in table if r["p50_ms"] is not None],
                [r["p50_ms"] for r in table if r["p50_ms"] is not None], label="p50 latency", alpha=0.7)
    bottom.set_yscale("log")
    bottom.set_ylabel("ms (by second sent)")
    bottom.set_xlabel("seconds into the load")
    for axis in (top, bottom):
        for join in run.joins:
            axis.axvline(join.started_s, color="tab:red", linestyle="--", linewidth=1)
            if join.counted_s is not None:
                axis.axvline(join.counted_s, color="tab:green", linestyle=":", linewidth=1)
        axis.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"A model group scaled out on its lag at {run.rate:g} req/s "
                 "(red: replica started, green: counted in the group)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(run: Run, per_row_ms: float, command: str, png: str) -> str:
    from benchmarks.e2e import _commit, _machine

    table = run.seconds_table()

    def span(a: float, b: float) -> str:
        rows = [r for r in table if a <= r["t_s"] < b and r["p99_ms"] is not None]
        return f"{max(r['p99_ms'] for r in rows):,.0f}" if rows else "—"

    def lag_at(t: float) -> str:
        near = [v for s, v, _ in run.lag if s <= t]
        return f"{near[-1]:,}" if near else "—"

    marks = [0.0] + [j.started_s for j in run.joins] + [run.seconds]
    lines = [START, f"### Scaling a model group out on its lag — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"- machine: {_machine()}", "- broker: Apache Kafka 4.1.1 (KRaft, one node)",
             f"- git commit: `{_commit()}`", f"- command: `{command}`",
             f"- one live model, a brute-force k-NN ({per_row_ms:.2f} ms of CPU per row on one thread, measured "
             "before the run); every worker's numerical libraries on one thread; deadline 10 s, so latency is queueing",
             f"- {len(run.sent):,} requests at {run.rate:g}/s; results {run.statuses}; lost {run.lost}; "
             f"duplicates {run.duplicates}", "",
             "| replicas | from (s) | lag then | p99 in the span (ms, by second sent) |", "|---:|---:|---:|---:|"]
    for n, (a, b) in enumerate(zip(marks, marks[1:]), start=1):
        lines.append(f"| {n} | {a:.0f} | {lag_at(a) if n > 1 else '0'} | {span(a, b)} |")
    lines += ["", "| replica | started at (s) | counted in the group after (s) | longest pause in answers around the join (s) |",
              "|---:|---:|---:|---:|"]
    for j in run.joins:
        counted = f"{j.counted_s - j.started_s:.1f}" if j.counted_s is not None else "never"
        pause = f"{j.pause_s:.2f}" if j.pause_s is not None else "—"
        lines.append(f"| {j.replica} | {j.started_s:.1f} | {counted} | {pause} |")
    tail = [r for r in table[-10:] if r["p99_ms"] is not None]
    if tail:
        lines += ["", f"Last 10 s of sending: p99 {max(r['p99_ms'] for r in tail):,.0f} ms, lag at the end "
                      f"{lag_at(run.seconds + 1e9)}."]
    lines += ["", f"![lag and latency as replicas join]({png})", "", END]
    return "\n".join(lines)


def per_row_cost_ms(spec_entry: dict, directory: Path, rows: int = 400) -> float:
    """The k-NN's cost per row on one thread, loaded and scored as a replica does (batches of 16)."""
    from threadpoolctl import threadpool_limits

    from pipelines.flavours import sklearn as sk_flavour
    from pipelines.spec import ModelSpec

    spec = ModelSpec(spec_entry["id"], "sklearn", "champion", GROUP, features=AGRAWAL_FEATURES)
    model = sk_flavour.load(spec, (directory / spec_entry["artifact"]).read_bytes())
    batch = [x for x, _ in agrawal_rows(rows, seed=99)]
    with threadpool_limits(1):
        start = time.perf_counter()
        for i in range(0, rows, 16):
            model.score_batch(batch[i:i + 16])
        return (time.perf_counter() - start) * 1000 / rows


def main(argv=None) -> None:
    from benchmarks import e2e
    from pipelines.jobs.train import train_demo_models
    from streams.kafka.broker import KafkaBroker
    from streams.testing import make_stack

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=250.0, help="steady load in requests/s")
    parser.add_argument("--seconds", type=float, default=90.0, help="length of the load")
    parser.add_argument("--knn-rows", type=int, default=400_000, help="the k-NN's training rows (its cost per row)")
    parser.add_argument("--max-replicas", type=int, default=3, help="the autoscaler's bound (the partitions bound it too)")
    parser.add_argument("--lag-per-replica", type=int, default=500, help="scale out while lag > this x replicas")
    parser.add_argument("--poll-s", type=float, default=2.0, help="how often the autoscaler reads the lag")
    parser.add_argument("--cooldown-s", type=float, default=15.0, help="at least this long between two scale-outs")
    parser.add_argument("--out", type=Path, default=e2e.ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"  # inherited by every worker: one thread each, as under a 1-CPU limit
    with tempfile.TemporaryDirectory(prefix="rdv-scaling-") as tmp:
        tmp = Path(tmp)
        trained = tmp / "trained"
        template = train_demo_models(trained, pipeline="template", n_train=2000)
        knn = train_knn(trained, args.knn_rows)
        per_row = per_row_cost_ms(knn, trained)
        print(f"k-NN over {args.knn_rows:,} rows: {per_row:.2f} ms per row on one thread "
              f"(one replica holds about {1000 / per_row:,.0f} rows/s with nothing else on its core)")
        with KafkaBroker(data_dir=tmp / "kafka", log_path=tmp / "kafka.log") as broker:
            (tmp / "run").mkdir()
            stack = make_stack(broker, (trained, template), tmp / "run", deadline_ms=10_000,
                               spec={"policy": "preference", "models": []}, extra_models=[knn])
            with stack:
                run = asyncio.run(autoscaled_load(stack, args.rate, args.seconds, args.max_replicas,
                                                  args.lag_per_replica, args.poll_s, args.cooldown_s))
                stack.check_alive()
    png = "BENCHMARKS-scaling.png"
    plot(run, args.out.parent / png)
    command = "python -m benchmarks.scaling " + " ".join(argv if argv is not None else sys.argv[1:])
    e2e.write(args.out, render(run, per_row, command.strip(), png), START, END)
    print(f"wrote {args.out} and {png}")


if __name__ == "__main__":
    main()
