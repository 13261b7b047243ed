"""Faults under a steady load, checked like Kafka's own system tests: every request id gets
exactly one Result (a timeout counts), none lost, none twice, and the decoy archived it.

    python -m benchmarks.faults                     # Apache Kafka, writes BENCHMARKS.md
    python -m benchmarks.faults --rate 200 --seconds 120

Three scenarios, each on a fresh pipeline, the faults spread evenly over the run:

* ``kills``     — SIGKILL (no shutdown, no flush, no commit) of every model group and of the
  core, in turn, twice, each restarted at once;
* ``rebalance`` — a second core worker joins, leaves (SIGTERM), joins, is SIGKILLed: four
  rebalances of the core's partitions;
* ``broker``    — the Apache Kafka broker is SIGKILLed and restarted on its data directory.

For each fault: how long from the fault until the first Result of a request sent after it
(the pipeline answers again). ``tests/reliability/test_kills.py`` runs the same code, shorter.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pipelines.jobs.train import agrawal_rows
from streams.stack import Stack
from tables.archive import read_archive

START, END = "<!-- faults:start -->", "<!-- faults:end -->"


@dataclass
class Fault:
    """One fault: ``label`` for the report, ``act(stack)`` does it (blocking, off the event loop)."""

    label: str
    act: Callable[[Stack], None]
    at_s: float | None = None        # when it happened (the client's clock)
    recovered_s: float | None = None  # until the first Result for a request sent after it

    @classmethod
    def sigkill(cls, role: str) -> "Fault":
        def act(stack: Stack) -> None:
            stack.stop_worker(role, signal.SIGKILL)
            stack.start_worker(role)
        return cls(f"SIGKILL {role}, restarted", act)

    @classmethod
    def start(cls, role: str) -> "Fault":
        return cls(f"{role} joins", lambda stack: stack.start_worker(role))

    @classmethod
    def stop(cls, role: str) -> "Fault":
        return cls(f"{role} leaves (SIGTERM)", lambda stack: stack.stop_worker(role))

    @classmethod
    def broker(cls, broker) -> "Fault":
        def act(stack: Stack) -> None:
            broker.kill()
            broker.start()
        return cls("SIGKILL the broker, restarted on its data", act)


@dataclass
class Report:
    ids: list[str]
    statuses: dict[str, int]
    lost: list[str]
    duplicates: int
    faults: list[Fault] = field(default_factory=list)
    rate: float = 0.0
    missing_from_archive: list[str] | None = None  # set by check_archive, once the workers stopped

    @property
    def requests(self) -> int:
        return len(self.ids)

    def check_archive(self, stack: Stack) -> "Report":
        """After the stack stopped (the decoy flushed): which requests the archive does not hold."""
        archive = read_archive(stack.settings.data_dir / stack.spec.name / "archive", features=False)
        self.missing_from_archive = sorted(set(self.ids) - set(archive["request_id"]))
        return self

    def summary(self) -> str:
        lines = [f"{self.requests} requests at {self.rate:g}/s, {len(self.faults)} faults; results {self.statuses}; "
                 f"lost {len(self.lost)}; duplicates {self.duplicates}; missing from the archive "
                 f"{'(not checked)' if self.missing_from_archive is None else len(self.missing_from_archive)}"]
        lines += [f"  {f.label}: answering again after {f.recovered_s:.2f} s" if f.recovered_s is not None
                  else f"  {f.label}: no Result after it" for f in self.faults]
        return "\n".join(lines)


async def run_faults(stack: Stack, faults: list[Fault], rate: float, seconds: float, seed: int = 21) -> Report:
    """Send ``rate * seconds`` requests at a steady rate; do the faults evenly spread over the run;
    wait for every Result. (The archive is checked once the workers stopped: Report.check_archive.)"""
    from streams.testing import all_answered, ready_client

    client = await ready_client(stack)
    try:
        total = int(rate * seconds)
        base = len(client.sent_at)
        rows = [x for x, _ in agrawal_rows(total, seed=seed)]
        load = asyncio.create_task(client.run_load(rows, rate_per_s=rate))
        for i, fault in enumerate(faults):
            target = base + (i + 1) * total // (len(faults) + 1)
            while len(client.sent_at) < target:  # the load generator's own progress: a fault at a point in the stream
                if load.done():
                    load.result()  # raises what stopped it
                    break
                await asyncio.sleep(0.05)
            fault.at_s = time.perf_counter()
            await asyncio.to_thread(fault.act, stack)
        ids = await load
        lost = await all_answered(client, ids, timeout_s=180)
        for fault in faults:
            after = [client.received.result_at[i] for i in ids
                     if client.sent_at[i] > fault.at_s and i in client.received.result_at]
            fault.recovered_s = min(after) - fault.at_s if after else None
        received = client.received
    finally:
        await client.__aexit__(None, None, None)
    statuses: dict[str, int] = {}
    for i in ids:
        if i in received.results:
            status = received.results[i]["status"]
            statuses[status] = statuses.get(status, 0) + 1
    return Report(ids, statuses, sorted(lost), received.duplicates, faults, rate)


def scenarios(broker) -> dict[str, list[Fault]]:
    groups = ["group:boosted", "group:linear"]
    return {
        "kills": [Fault.sigkill(role) for role in [*groups, "core"] * 2],
        "rebalance": [Fault.start("core#2"), Fault.stop("core#2"), Fault.start("core#2"), Fault.sigkill("core#2")],
        "broker": [Fault.broker(broker)],
    }


def run_all(rate: float, seconds: float, names: list[str], tmp: Path, log=print) -> list[tuple[str, Report]]:
    from pipelines.jobs.train import train_demo_models
    from streams.kafka.broker import KafkaBroker
    from streams.testing import make_stack

    trained = tmp / "trained"
    spec = train_demo_models(trained, pipeline="template", n_train=5000)
    out = []
    for name in names:
        with KafkaBroker(data_dir=tmp / f"kafka-{name}", log_path=tmp / f"kafka-{name}.log") as broker:
            (tmp / name).mkdir()
            stack = make_stack(broker, (trained, spec), tmp / name, deadline_ms=1000)
            with stack:
                report = asyncio.run(run_faults(stack, scenarios(broker)[name], rate, seconds))
                stack.check_alive()
            report.check_archive(stack)
        log(f"{name}: {report.summary()}")
        out.append((name, report))
    return out


def render(runs: list[tuple[str, Report]], command: str) -> str:
    from benchmarks.e2e import _commit, _machine
    from streams.demo import percentile

    lines = [START, f"### Faults under load — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"- machine: {_machine()}", "- broker: Apache Kafka 4.1.1 (KRaft, one node), a fresh one per scenario",
             f"- git commit: `{_commit()}`", f"- command: `{command}`",
             "- demo pipeline (xgb, lr, canary in two model groups, decoy), deadline 1,000 ms; the faults spread "
             "evenly over the run; *answering again*: from the fault to the first Result of a request sent after it",
             "", "| scenario | requests | faults | ok | timeout | other | lost | duplicates | missing from the archive | answering again: median / max s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in runs:
        times = [f.recovered_s for f in r.faults if f.recovered_s is not None]
        other = r.requests - r.statuses.get("ok", 0) - r.statuses.get("timeout", 0)
        again = f"{percentile(times, 50):.1f} / {max(times):.1f}" if times else "—"
        lines.append(f"| {name} | {r.requests} | {len(r.faults)} | {r.statuses.get('ok', 0)} | {r.statuses.get('timeout', 0)} | "
                     f"{other} | {len(r.lost)} | {r.duplicates} | {len(r.missing_from_archive)} | {again} |")
    lines += ["", "Each fault:", ""]
    for name, r in runs:
        lines += [f"- {name}: " + "; ".join(f"{f.label} {f.recovered_s:.1f} s" if f.recovered_s is not None
                                              else f"{f.label} (no Result after it)" for f in r.faults)]
    lines += ["", END]
    return "\n".join(lines)


def main(argv=None) -> None:
    from benchmarks import e2e

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0, help="steady load in requests/s")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each scenario's load")
    parser.add_argument("--scenarios", default="kills,rebalance,broker", help="comma-separated: kills, rebalance, broker")
    parser.add_argument("--out", type=Path, default=e2e.ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rdv-faults-") as tmp:
        runs = run_all(args.rate, args.seconds, args.scenarios.split(","), Path(tmp))
    command = "python -m benchmarks.faults " + " ".join(argv if argv is not None else sys.argv[1:])
    e2e.write(args.out, render(runs, command.strip()), START, END)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
