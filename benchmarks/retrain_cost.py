"""What automatic retraining costs the answers (issue 24, item 4), on Apache Kafka.

    python -m benchmarks.retrain_cost                       # 3 pairs of runs, 100 requests/s, 90 s each
    python -m benchmarks.retrain_cost --runs 1 --seconds 60 --out /tmp/x.md

The same pipeline twice per pair, alternating: the demo's xgb champion, lr and canary trained on
one Agrawal concept, the quality worker on (windows of 1,000 requests or 10 s), a deadline of
``--deadline-ms``; ``--seconds`` of traffic at ``--rate`` (the same rows, the same pacing), every
request labelled within a few seconds of its answer, the labels flipped from ``--flip-at`` seconds
on — the hardest concept change there is, so xgb and the canary decay for certain. The one
difference: ``quality.auto_retrain`` off, then on. On, the core retrains each decayed model once
500 labelled requests came after the change (a process of its own at idle priority), and refines
it as they double; each retrain's Alert carries how long it ran (``figures.seconds``).

Reported per pair: the requests sent while a retrain ran — their p99 and timeouts, against the
requests at the same positions of the run without retraining; and the same over the whole
minute after the change. The goal: within 10 % (median of the pairs).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

START, END = "<!-- retrain-cost:start -->", "<!-- retrain-cost:end -->"
RETRAIN_KINDS = ("retrained", "retrain-rejected", "retrain-failed")


@dataclass
class Run:
    retrain: bool
    sent: list[float] = field(default_factory=list)         # per request, seconds since the first send
    latency: list[float | None] = field(default_factory=list)  # ms, None when no Result came
    status: list[str] = field(default_factory=list)
    retrains: list[tuple[float, float, str]] = field(default_factory=list)  # (start s, end s, "kind model")

    def during_retrains(self) -> list[int]:
        """Positions of the requests sent while a retrain ran."""
        return [i for i, t in enumerate(self.sent) if any(a <= t <= b for a, b, _ in self.retrains)]


def figures(run: Run, positions: list[int]) -> tuple[float | None, int, int]:
    """(p99 ms of the answered, timeouts, requests) over ``positions``."""
    values = [run.latency[i] for i in positions if run.latency[i] is not None]
    timeouts = sum(1 for i in positions if run.status[i] != "ok")
    return (float(np.percentile(values, 99)) if values else None), timeouts, len(positions)


def one_run(broker, trained, workdir: Path, retrain: bool, rate: float, seconds: float, flip_at: float,
            deadline_ms: int, chunk_s: float = 5.0) -> Run:
    from pipelines.jobs.train import agrawal_rows
    from streams.testing import make_stack, ready_client

    run = Run(retrain)
    spec = {"quality": {"auto_retrain": retrain, "window_rows": 1000, "window_s": 10, "retrain_min_rows": 500}}
    stack = make_stack(broker, trained, workdir, deadline_ms=deadline_ms, spec=spec)

    async def traffic() -> None:
        client = await ready_client(stack, watch_alerts=True)
        try:
            rows = list(agrawal_rows(int(seconds * rate), seed=4321))
            flip, step, ids = int(flip_at * rate), max(1, int(rate * chunk_s)), []
            for start in range(0, len(rows), step):
                part = rows[start:start + step]
                chunk = await client.run_load([x for x, _ in part], rate_per_s=rate)
                ids += chunk
                await client.wait_results(chunk, timeout_s=30)
                for n, (rid, (_, label)) in enumerate(zip(chunk, part)):
                    await client.send_feedback(rid, 1 - label if start + n >= flip else label)
            if retrain:  # the retrains that the last labels started end, each with its Alert
                await asyncio.sleep(2 * stack.settings.archive_flush_s + 20)
            t0 = client.sent_at[ids[0]]
            for rid in ids:
                result = client.received.results.get(rid)
                run.sent.append(client.sent_at[rid] - t0)
                run.status.append(result["status"] if result else "missing")
                run.latency.append((client.received.result_at[rid] - client.sent_at[rid]) * 1000.0 if result else None)
            for alert, at in zip(client.received.alerts, client.received.alert_at):
                if alert["kind"] in RETRAIN_KINDS:
                    took = (alert.get("figures") or {}).get("seconds", 0.0)
                    run.retrains.append((at - t0 - took, at - t0, f"{alert['kind']} {alert['model_id']}"))
        finally:
            await client.__aexit__(None, None, None)

    with stack:
        asyncio.run(traffic())
        stack.check_alive()
    return run


def measure(runs: int, rate: float, seconds: float, flip_at: float, deadline_ms: int, log=print) -> list[tuple[Run, Run]]:
    from pipelines.jobs.train import train_demo_models
    from streams.kafka.broker import KafkaBroker

    pairs = []
    with tempfile.TemporaryDirectory(prefix="rdv-retrain-cost-") as tmp:
        tmp = Path(tmp)
        trained = (tmp / "trained", train_demo_models(tmp / "trained", pipeline="template", n_train=5000))
        with KafkaBroker(data_dir=tmp / "kafka", log_path=tmp / "kafka.log") as broker:
            for n in range(runs):
                pair = []
                for retrain in (False, True):
                    workdir = tmp / f"run{n}-{'on' if retrain else 'off'}"
                    workdir.mkdir()
                    pair.append(one_run(broker, trained, workdir, retrain, rate, seconds, flip_at, deadline_ms))
                    log(f"pair {n + 1}, auto-retrain {'on' if retrain else 'off'}: {len(pair[-1].retrains)} retrains")
                pairs.append(tuple(pair))
    return pairs


def render(pairs: list[tuple[Run, Run]], args, command: str) -> str:
    from benchmarks.e2e import _commit, _machine

    def ms(value):
        return "—" if value is None else f"{value:.1f}"

    lines = [START, f"### What retraining costs the answers — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"- machine: {_machine()}; broker: Apache Kafka 4.1.1 (KRaft, one node); git commit: `{_commit()}`",
             f"- command: `{command}`",
             f"- xgb, lr, canary; quality worker on; {args.rate:g} requests/s for {args.seconds:g} s, every request "
             f"labelled, the labels flipped from {args.flip_at:g} s; deadline {args.deadline_ms} ms; auto-retrain off, "
             "then on, in each pair", "",
             "| pair | before the change: p99 ms off / on, timeouts off / on | retrains (kind model: seconds) "
             "| requests sent during them | p99 ms off / on | timeouts off / on "
             "| after the change: p99 ms off / on | timeouts off / on |",
             "|---|---|---|---:|---|---|---|---|"]
    rows = []
    for n, (off, on) in enumerate(pairs, 1):
        during = on.during_retrains()
        after = [i for i, t in enumerate(on.sent) if t >= args.flip_at]
        p_off, t_off, count = figures(off, during)
        p_on, t_on, _ = figures(on, during)
        a_off, at_off, _ = figures(off, after)
        a_on, at_on, _ = figures(on, after)
        before = [i for i, t in enumerate(on.sent) if t < args.flip_at]
        (b_off, bt_off, _), (b_on, bt_on, _) = figures(off, before), figures(on, before)
        rows.append((p_off, p_on, t_off, t_on, a_off, a_on, at_off, at_on))
        spans = ", ".join(f"{what}: {b - a:.1f}" for a, b, what in on.retrains) or "none"
        lines.append(f"| {n} | {ms(b_off)} / {ms(b_on)}, {bt_off} / {bt_on} | {spans} | {count:,} | {ms(p_off)} / {ms(p_on)} | {t_off} / {t_on} | "
                     f"{ms(a_off)} / {ms(a_on)} | {at_off} / {at_on} |")

    def median(k):
        values = [r[k] for r in rows if r[k] is not None]
        return statistics.median(values) if values else None

    lines += ["", f"Medians: during the retrains p99 {ms(median(0))} ms without against {ms(median(1))} ms with, "
              f"timeouts {median(2)} against {median(3)}; over the time after the change p99 {ms(median(4))} against "
              f"{ms(median(5))} ms, timeouts {median(6)} against {median(7)}.", END]
    return "\n".join(lines)


def main(argv=None) -> None:
    from benchmarks import e2e

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="pairs of runs (off, on), alternating")
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s")
    parser.add_argument("--seconds", type=float, default=90.0, help="traffic per run")
    parser.add_argument("--flip-at", type=float, default=30.0, help="seconds of traffic before the labels flip")
    parser.add_argument("--deadline-ms", type=int, default=100)
    parser.add_argument("--out", type=Path, default=e2e.ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.retrain_cost " + " ".join(argv if argv is not None else sys.argv[1:])
    pairs = measure(args.runs, args.rate, args.seconds, args.flip_at, args.deadline_ms,
                    log=lambda line: print(line, file=sys.stderr))
    text = render(pairs, args, command)
    print(text)
    e2e.write(args.out, text, START, END)


if __name__ == "__main__":
    main()
