"""Time from ``promote`` to the first answer of the new champion, under steady load.

    python -m benchmarks.swap                       # the embedded broker, writes BENCHMARKS.md
    python -m benchmarks.swap --swaps 20 --rate 200

The demo pipeline runs with xgb2 staged as a shadow in xgb's group; requests flow at
``--rate``. Each swap publishes the registry events of ``promote`` (what the command writes
after its checks) and measures, client-side, from just before the publication to the arrival
of the first Result answered by the new champion for a request sent after it; champions
alternate between xgb and xgb2. Also counted: requests sent after the publication that were
still answered by the old champion, and — over the whole run — lost requests, errors and
duplicates (all must be 0). One more swap goes through the real command line
(``rendezvous models promote``, checks included) to show what a user waits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.e2e import BROKER, ROOT, _commit, _machine, running_broker
from pipelines.registry import ArtifactStore, event, promote
from pipelines.spec import load_spec
from pipelines.jobs.train import agrawal_rows, train_demo_models
from streams.kafka.broker import free_port
from streams.client import PipelineClient
from streams.demo import percentile
from streams.kafka.settings import Settings
from streams.stack import Stack
from tables.registry import publish_events, read_registry

START, END = "<!-- swap:start -->", "<!-- swap:end -->"


async def _swaps(stack: Stack, models_dir: Path, swaps: int, rate: float, log) -> dict:
    settings, name = stack.settings, stack.spec.name
    control = f"{name}.control"
    pool = [x for x, _ in agrawal_rows(50_000, seed=5)]
    async with PipelineClient(settings, name, settings.encoding) as client:
        await stack.wait_ready(client)
        store = ArtifactStore(settings.data_dir / "registry")
        sha = store.put(models_dir / "xgb2.ubj")
        state = await read_registry(settings, control)
        await publish_events(settings, control, [event(
            name, "xgb2", "1", "register", "shadow", "xgboost", sha256=sha, group="boosted",
            features=state["xgb"]["features"], preference=5, by="benchmark")])
        sent_at: list[tuple[float, str]] = []
        stop = asyncio.Event()

        async def load():
            start, i = time.perf_counter(), 0
            while not stop.is_set():
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                rid = await client.send(pool[i % len(pool)])
                sent_at.append((client.sent_at[rid], rid))
                i += 1

        task = asyncio.create_task(load())
        await asyncio.sleep(3.0)  # the shadow loads and scores; traffic for the CLI's checks
        times, stale = [], []
        champion = "xgb"
        for k in range(swaps + 1):
            target = "xgb2" if champion == "xgb" else "xgb"
            state = await read_registry(settings, control)
            through_cli = k == swaps
            t0 = time.perf_counter()
            if through_cli:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "streams.cli", "models", "promote", target, "--pipeline", name,
                    env={**os.environ, "RDV_BROKER": settings.broker, "RDV_DATA_DIR": str(settings.data_dir)},
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
                out, _ = await process.communicate()
                if process.returncode:
                    raise RuntimeError(f"promote failed:\n{out.decode()}")
            else:
                await publish_events(settings, control, promote(state, target, by="benchmark"))
            first = await _first_answer(client, sent_at, t0, target)
            after = [rid for at, rid in sent_at if at >= t0 and rid in client.received.results
                     and client.received.result_at[rid] <= first]
            old = sum(client.received.results[rid]["model_id"] == champion for rid in after)
            if through_cli:
                cli_ms = (first - t0) * 1000
            else:
                times.append((first - t0) * 1000)
                stale.append(old)
            log(f"swap {k + 1}: {champion} -> {target} in {(first - t0) * 1000:.0f} ms"
                f"{' (command line, with checks)' if through_cli else ''}; {old} later requests answered by {champion}")
            champion = target
            await asyncio.sleep(1.0)  # steady state between swaps
        stop.set()
        await task
        ids = [rid for _, rid in sent_at]
        missing = await client.wait_results(ids, 60)
        statuses = [client.received.results[i]["status"] for i in ids if i in client.received.results]
        return {"swaps": swaps, "rate": rate, "ms": times, "stale": stale, "cli_ms": cli_ms, "requests": len(ids),
                "lost": len(missing), "not_ok": sum(s != "ok" for s in statuses),
                "duplicates": client.received.duplicates}


async def _first_answer(client: PipelineClient, sent_at, t0: float, model_id: str, timeout_s: float = 30) -> float:
    def found():
        times = [client.received.result_at[rid] for at, rid in sent_at if at >= t0
                 and client.received.results.get(rid, {}).get("model_id") == model_id]
        return min(times) if times else None

    if not await client.wait_for(lambda r: found() is not None, timeout_s):
        raise TimeoutError(f"{model_id} never answered within {timeout_s} s of its promotion")
    return found()


def run(broker: str | None, swaps: int, rate: float, workdir: Path, log) -> dict:
    with running_broker(broker, workdir) as url:
        models = workdir / "swap"
        spec = load_spec(train_demo_models(models, pipeline=f"swap-{os.getpid()}", deadline_ms=100))
        settings = replace(Settings.from_env(), broker=url, data_dir=models / "data", web_port=free_port(),
                           archive_flush_s=0.5)
        log(f"{swaps} swaps under {rate:g} req/s")
        with Stack(spec, settings) as stack:
            return asyncio.run(_swaps(stack, models / "models", swaps, rate, log))


def render(runs: list[dict], command: str) -> str:
    lines = [START, f"### Model swap: `promote` → first answer of the new champion — "
                    f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"- machine: {_machine()}", f"- broker: {BROKER}", f"- git commit: `{_commit()}`",
             f"- command: `{command}`",
             "- from just before the registry events are published to the first Result answered by the new "
             "champion for a request sent after that (client-side); champions alternate xgb ↔ xgb2 (both hosted "
             "by the same model-group worker, the other one scoring as a challenger)", "",
             "| load (req/s) | swaps | p50 ms | p95 ms | max ms | later requests still answered by the old champion (mean) | via `rendezvous models promote` (checks, process start) ms | requests | lost | not ok | duplicates |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['rate']:g} | {r['swaps']} | {percentile(r['ms'], 50):.0f} | "
                     f"{percentile(r['ms'], 95):.0f} | {max(r['ms']):.0f} | {sum(r['stale']) / len(r['stale']):.1f} | "
                     f"{r['cli_ms']:.0f} | {r['requests']} | {r['lost']} | {r['not_ok']} | {r['duplicates']} |")
    lines += ["", END]
    return "\n".join(lines)


def main(argv=None) -> None:
    from benchmarks import e2e

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", default=None, help=e2e.BROKER_HELP)
    parser.add_argument("--swaps", type=int, default=10)
    parser.add_argument("--rate", type=float, default=200.0, help="steady load in requests/s")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rdv-swap-") as tmp:
        runs = [run(args.broker, args.swaps, args.rate, Path(tmp), print)]
    command = "python -m benchmarks.swap " + " ".join(argv if argv is not None else sys.argv[1:])
    e2e.write(args.out, render(runs, command.strip()), START, END)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
