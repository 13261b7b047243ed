"""``rendezvous demo``: the main job, end to end on a real broker, with a summary table.

Train, start everything, wait until every model answers, **warm up** (the JVM's compiler, the
workers' first batches and the quality worker's first windows settle there), then stream the
measured requests, send their ground truth back and summarise — the warm-up on a row of its own.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
from collections import Counter

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from pipelines.spec import load_spec
from pipelines.jobs.train import agrawal_rows, train_demo_models
from streams.app import tune_gc
from streams.client import PipelineClient
from streams.kafka.settings import Settings
from streams.stack import Stack
from tables.quality import read_quality

__all__ = ["DEFAULT_RATE", "percentile", "run_demo"]

DEFAULT_RATE = 100.0  # requests/s: the highest rate that held 0 timeouts and p99 ≤ 100 ms here (BENCHMARKS.md, "The demo's rate")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def run_demo(settings: Settings, n_requests: int, rate: float, deadline_ms: int, warmup_s: float = 10.0) -> int:
    """The whole demo; 0 when every request got exactly one Result (1 otherwise)."""
    console = Console(stderr=True)
    with console.status("training lr, xgb and a canary on River's Agrawal stream …"):
        spec = load_spec(train_demo_models(settings.data_dir / "demo", deadline_ms=deadline_ms))
    embedded = not settings.broker
    if embedded:  # a fresh demo: the files of an earlier run (its topics go when the broker is up: Stack(fresh=))
        shutil.rmtree(settings.data_dir / spec.name, ignore_errors=True)
    with console.status("profiling the training data (reference for the quality monitor) …"):
        from features.reference import profile_training_data

        features = list(dict.fromkeys(f for m in spec.models for f in m.features))
        profile_training_data(spec.name, settings.data_dir / "demo" / "models" / "training.csv", features, settings.data_dir,
                              settings.open_store())
    stack = Stack(spec, settings, fresh=embedded)
    tune_gc()  # this process is the load generator too: a full collection of all it imported paused it >100 ms
    try:
        with console.status(f"starting {'the embedded broker and ' if embedded else ''}{len(stack.roles)} workers …"):
            stack.start()
        table, complete = asyncio.run(_stream(stack, spec, n_requests, rate, warmup_s, console))
    finally:
        with console.status("stopping …"):
            stack.stop()
    console.print(table)
    console.print(_next_steps(stack, spec))
    return 0 if complete else 1


async def _stream(stack: Stack, spec, n: int, rate: float, warmup_s: float, console: Console) -> tuple[Table, bool]:
    warm_rows = [x for x, _ in agrawal_rows(int(rate * warmup_s), seed=2023)]
    data = list(agrawal_rows(n, seed=2024))
    async with PipelineClient(stack.settings, spec.name, stack.settings.encoding, tuning=stack.settings) as client:
        with console.status("waiting until every worker has joined and every model answered a probe …"):
            await stack.wait_ready(client)
        warm = await _load(client, warm_rows, rate, console, "warming up")
        await client.wait_results(warm, timeout_s=10 + spec.deadline_ms / 1000)
        ids = await _load(client, [x for x, _ in data], rate, console, "streaming ")
        missing = await client.wait_results(ids, timeout_s=10 + spec.deadline_ms / 1000)
        with console.status("sending the ground truth as feedback …"):
            answered = [(rid, label) for rid, (_, label) in zip(ids, data) if rid in client.received.results]
            for rid, label in answered:
                await client.send_feedback(rid, label)
            state = await _score_state(stack, spec, len(answered))
        quality = read_quality(stack.settings.data_dir / spec.name / "quality")
        table = _summary(spec, client, warm, ids, missing, rate, state, quality)
        return table, not missing and client.received.duplicates == 0


async def _load(client: PipelineClient, rows: list[dict], rate: float, console: Console, label: str) -> list[str]:
    """``rows`` at ``rate`` per second with a progress bar (shown on a terminal only)."""
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn(f"at {rate:g}/s"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(label, total=len(rows))
        return await client.run_load(rows, rate, on_sent=lambda i: progress.update(task, completed=i))


async def _score_state(stack: Stack, spec, labelled: int, timeout_s: float = 30.0) -> dict:
    """The core's score state once it counted every label (``GET /v1/{pipeline}/models``)."""
    import aiohttp

    url = f"http://127.0.0.1:{stack.settings.web_port}/v1/{spec.name}/models"
    end = asyncio.get_running_loop().time() + timeout_s
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(url) as response:
                models = {m["id"]: m for m in (await response.json())["models"]}
            if all(m.get("labelled", 0) >= labelled for m in models.values()) or asyncio.get_running_loop().time() > end:
                return models
            await asyncio.sleep(0.2)


def _latency_row(client: PipelineClient, ids: list[str]) -> str:
    results = [client.received.results[i] for i in ids if i in client.received.results]
    timeouts = sum(r["status"] == "timeout" for r in results)
    latencies = client.latencies_ms(ids)
    return (f"{timeouts:,} timeouts  ·  p50 {percentile(latencies, 50):.1f}  ·  p95 {percentile(latencies, 95):.1f}  ·  "
            f"p99 {percentile(latencies, 99):.1f}  ·  max {max(latencies, default=float('nan')):.1f} ms")


def _summary(spec, client: PipelineClient, warm: list[str], ids: list[str], missing: set[str], rate: float,
             state: dict, quality) -> Table:
    results = [client.received.results[i] for i in ids if i in client.received.results]
    statuses = Counter(r["status"] for r in results)
    latencies = client.latencies_ms(ids)
    table = Table(title=f"Rendezvous demo — pipeline {spec.name}, {len(ids):,} requests at {rate:g}/s, "
                        f"deadline {spec.deadline_ms} ms")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row(f"warm-up ({len(warm):,} requests before these, not counted below)", _latency_row(client, warm))
    for name, value in [
        ("sent", len(ids)), ("answered (status ok)", statuses["ok"]), ("timeouts", statuses["timeout"]),
        ("errors (every model failed)", statuses["error"]), ("no result", len(missing)),
        ("duplicate results", client.received.duplicates), ("DLQ records", len(client.received.dlq)),
    ]:
        table.add_row(name, f"{value:,}")
    for q in (50, 95, 99):
        table.add_row(f"end-to-end latency p{q}", f"{percentile(latencies, q):.1f} ms")
    table.add_row("end-to-end latency max", f"{max(latencies, default=float('nan')):.1f} ms")
    answered_by = Counter(r["model_id"] for r in results if r["model_id"])
    for model in spec.models:  # agreement and accuracy: the core's score state (recent windows), not the client's
        agree, accuracy = state.get(model.id, {}).get("agreement_canary"), state.get(model.id, {}).get("accuracy")
        table.add_row(f"answers by {model.id} ({model.role})",
                      f"{answered_by[model.id]:,}  ·  "
                      + ("the baseline" if model.role == "canary" else "agrees with canary " + _share(agree))
                      + "  ·  recent accuracy on feedback " + _share(accuracy))
    if not quality.empty:
        table.add_row("quality windows checked (GX ok · decay verdicts)",
                      f"{len(quality)}  ({int(quality['gx_success'].sum())} ok · {int(quality['decay'].sum())} decay)")
    table.add_row("median rendezvous wait (mailbox open → answer)", f"{statistics.median(r['latency_ms'] for r in results):.1f} ms"
                  if results else "n/a")
    return table


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _next_steps(stack: Stack, spec) -> str:
    data = stack.settings.data_dir
    where = "" if str(data) == "data" else f" --data-dir {data}"
    broker = f"  the embedded broker's log: {stack.broker.data_dir} (kept for `rendezvous up`)\n" if stack.broker else ""
    return (f"\n[bold]Where things are[/bold]\n"
            f"  spec and models: {data / 'demo'}\n"
            f"  archive, Scores, quality windows: {data / spec.name}\n"
            f"  worker logs: {stack.log_dir}\n"
            f"{broker}"
            f"[bold]Try next[/bold]\n"
            f"  rendezvous up{where}\n"
            f"      this pipeline again, as it was; REST on :8080 (README: a curl and a kcat example)\n"
            f"  rendezvous report --pipeline {spec.name}{where or ' --data-dir data'}\n"
            f"      an HTML report of this run\n"
            f"  rendezvous models list --pipeline {spec.name} --broker RDV_BROKER-that-up-prints\n"
            f"      the registry, while `up` runs\n")
