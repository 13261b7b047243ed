"""Where the CPU goes: per-process CPU of a running pipeline under a steady load.

    python -m benchmarks.cpu_split --rate 300 --rounds 3 [--py-spy DIR]

Starts the embedded broker (RDV_BROKER_JVM_OPTS applies) and the demo pipeline, offers ``--rate`` requests/s for ``--window-s``
seconds ``--rounds`` times, and prints each process's CPU share per window (from
/proc/<pid>/stat) with the window's latency. With ``--py-spy DIR`` the last window is also
sampled by py-spy (non-blocking; `pip install py-spy`) into DIR/<role>.txt (raw folded stacks).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from pipelines.spec import load_spec
from pipelines.jobs.train import agrawal_rows, train_demo_models
from streams.kafka.broker import KafkaBroker, free_port
from benchmarks.loadgen import load_client
from streams.client import PipelineClient
from streams.demo import percentile
from streams.kafka.settings import Settings
from streams.stack import Stack


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(stack: Stack, broker, args) -> None:
    pool = [x for x, _ in agrawal_rows(20_000, seed=1)]
    async with PipelineClient(stack.settings, stack.spec.name) as ready:
        await stack.wait_ready(ready)
    async with load_client(stack, args.client) as client:
        pids = {role: p.pid for role, p in stack.workers.items()}
        pids.update(broker=broker.process.pid, client=os.getpid())
        for window in range(args.rounds):
            spies = []
            if args.py_spy and window == args.rounds - 1:
                args.py_spy.mkdir(parents=True, exist_ok=True)
                spies = [subprocess.Popen(["py-spy", "record", "-d", str(int(args.window_s)), "-r", "100", "-f", "raw",
                                           "-o", str(args.py_spy / f"{role.replace(':', '-')}.txt"), "-p", str(pid),
                                           "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                         for role, pid in pids.items() if role not in ("broker", "client")]
            before = {role: cpu_seconds(pid) for role, pid in pids.items()}
            started = time.time()
            ids = await client.run_load(pool[: int(args.rate * args.window_s)], args.rate)
            elapsed = time.time() - started
            shares = {role: (cpu_seconds(pid) - before[role]) / elapsed for role, pid in pids.items()}
            await client.wait_results(ids, 30)
            latency = client.latencies_ms(ids)
            print(f"window {window + 1}: " + "  ".join(f"{r} {100 * s:.0f}%" for r, s in shares.items())
                  + f"  total {100 * sum(shares.values()):.0f}%  p50 {percentile(latency, 50):.1f} ms"
                  f"  p99 {percentile(latency, 99):.1f} ms")
            for spy in spies:
                spy.wait()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3, help="windows in a row (the first ones warm the JVM up)")
    parser.add_argument("--groups", type=int, default=2, choices=[1, 2])
    parser.add_argument("--py-spy", type=Path, default=None, help="directory for py-spy profiles of the last window")
    parser.add_argument("--quality", action="store_true",
                        help="profile the training data first: the stack then runs the quality worker too")
    parser.add_argument("--client", choices=["native", "python"], default="native",
                        help="the load generator: librdkafka (benchmarks/loadgen.py) or aiokafka (PipelineClient)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rdv-cpu-") as tmp:
        spec = load_spec(train_demo_models(Path(tmp), pipeline="cpu", groups=args.groups))
        with KafkaBroker(data_dir=Path(tmp) / "kafka") as broker:
            settings = replace(Settings.from_env(), broker=broker.url, data_dir=Path(tmp) / "data", web_port=free_port())
            if args.quality:
                from features.reference import profile_training_data

                profile_training_data(spec.name, Path(tmp) / "models" / "training.csv",
                                      list(dict.fromkeys(f for m in spec.models for f in m.features)), settings.data_dir)
            with Stack(spec, settings) as stack:
                asyncio.run(measure(stack, broker, args))


if __name__ == "__main__":
    main()
