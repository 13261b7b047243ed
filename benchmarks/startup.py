"""How long a pipeline takes to answer: from start, and from a SIGKILL of its core.

    python -m benchmarks.startup                    # 3 runs on the embedded broker, writes BENCHMARKS.md
    python -m benchmarks.startup --runs 5

Each run is a fresh pipeline (its own topics and consumer groups) on a running broker:
*ready* is from ``Stack.start()`` (topics created, the registry seeded, the core and the demo's
two model-group workers spawned) until a probe was answered and every model scored one
(``Stack.wait_ready``): process start and imports, Faust's start-up, the consumer-group joins.
*after a SIGKILL* is from killing the core until a probe is answered again: a new process, the
join, the changelog recovery and the read-back of recent Results. Every integration test pays
the first once per pipeline it starts; a crash costs the second in answers.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import e2e
from pipelines.jobs.train import train_demo_models
from streams.kafka.broker import KafkaBroker
from streams.client import PipelineClient
from streams.stack import Stack

START, END = "<!-- startup:start -->", "<!-- startup:end -->"


async def _probe(stack: Stack, started: float) -> tuple[float, float]:
    """(seconds from ``started`` until ready, seconds from a SIGKILL of the core until ready again)."""
    async with PipelineClient(stack.settings, stack.spec.name, stack.settings.encoding) as client:
        await stack.wait_ready(client)
        ready_s = time.perf_counter() - started
        killed = time.perf_counter()
        stack.stop_worker("core", signal.SIGKILL)
        stack.start_worker("core")
        await stack.wait_ready(client)
        return ready_s, time.perf_counter() - killed


def run(runs: int, workdir: Path, log=print) -> dict:
    from streams.testing import make_stack  # a fresh pipeline, as benchmarks.faults makes it

    trained = workdir / "trained", train_demo_models(workdir / "trained", pipeline="template", n_train=5000)
    ready, restart = [], []
    with KafkaBroker(data_dir=workdir / "kafka") as broker:
        for i in range(runs):
            (workdir / f"run-{i}").mkdir()
            stack = make_stack(broker, trained, workdir / f"run-{i}", deadline_ms=100)
            started = time.perf_counter()
            with stack:
                first, again = asyncio.run(_probe(stack, started))
            log(f"run {i + 1}: ready {first:.1f} s, answering again {again:.1f} s after a SIGKILL of the core")
            ready.append(first)
            restart.append(again)
    return {"ready": ready, "restart": restart}


def render(result: dict, command: str) -> str:
    def cell(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} / {max(values):.1f}"

    return "\n".join([
        START, f"### Start-up and restart — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
        f"- machine: {e2e._machine()}", f"- broker: {e2e.BROKER}", f"- git commit: `{e2e._commit()}`",
        f"- command: `{command}`",
        "- demo pipeline (core + two model-group workers), a fresh one per run; see `benchmarks/startup.py`", "",
        "| runs | ready after start: median / max s | answering again after a SIGKILL of the core: median / max s |",
        "|---:|---:|---:|",
        f"| {len(result['ready'])} | {cell(result['ready'])} | {cell(result['restart'])} |",
        "", END])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="fresh pipelines")
    parser.add_argument("--out", default=str(e2e.ROOT / "BENCHMARKS.md"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rdv-startup-") as tmp:
        result = run(args.runs, Path(tmp))
    command = "python -m benchmarks.startup " + " ".join(argv if argv is not None else sys.argv[1:])
    e2e.write(Path(args.out), render(result, command.strip()), START, END)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
