"""Rendezvous side by side with the limit and a peer, in one run, on one broker and machine.

    python -m benchmarks.compare                       # 100,500,1000,2000 req/s on the embedded broker
    python -m benchmarks.compare --broker kafka://HOST:PORT --rates 500,1000

Three systems, the same offered loads, the same open-loop pacing, client-side latency:

(a) the limit — a raw aiokafka consume -> produce pipe (benchmarks/rawpipe.py): latency of
    its two hops and of one hop, and the messages/s of a flood;
(b) Rendezvous — XGBoost, logistic regression and a River model + a canary + the decoy, the
    whole pipeline as worker processes (one core, ``--groups`` model-group workers);
(c) the peer — the same models behind FastAPI + uvicorn (benchmarks/peer.py), each request
    calling every model and answering by the same preference.

Each system's *maximum sustained rate* is the highest offered rate with nothing lost, ≤1%
timeouts and p99 ≤ the SLO (100 ms), refined by bisection between the last rate held and the
first one missed. Results go to BENCHMARKS.md (between the ``compare`` markers) with ratios,
machine, broker, date and git commit, and a plot of latency against offered load beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks import e2e, rawpipe
from benchmarks.peer import HttpLoad
from pipelines.spec import load_spec
from pipelines.jobs.train import agrawal_rows, train_demo_models
from streams.app import tune_gc
from streams.kafka.broker import free_port
from benchmarks.loadgen import load_client
from streams.demo import percentile
from streams.kafka.settings import Settings
from streams.stack import Stack

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- compare:start -->", "<!-- compare:end -->"
SYSTEMS = ("raw", "rendezvous", "peer")
LABELS = {"raw": "raw aiokafka pipe (2 hops)", "rendezvous": "Rendezvous", "peer": "REST peer (FastAPI + uvicorn)"}


def _pool() -> list[dict]:
    return [x for x, _ in agrawal_rows(20_000, seed=77)]


async def sweep(measure, rates: list[float], slo_ms: float, refine: int, log, extend: int = 3) -> list[dict]:
    """Measure each rate (stopping far past saturation); if even the highest held, go on by 1.5x
    (``extend`` times at most) to find where it stops; then bisect toward the maximum sustained rate."""
    rows: list[dict] = []

    async def one(rate: float) -> dict:
        row = await measure(rate)
        log(e2e.describe(row))
        rows.append(row)
        return row

    for rate in rates:
        row = await one(rate)
        if row["lost"] > 0.05 * row["n"] or row["p99"] > 10 * slo_ms:  # higher rates say nothing new
            break
    for _ in range(extend if refine else 0):
        if not (rows[-1]["sustained"] and rows[-1]["rate"] >= rates[-1]):
            break
        await one(float(round(rows[-1]["rate"] * 1.5, -1)))
    for _ in range(refine):
        held = max((r["rate"] for r in rows if r["sustained"]), default=0.0)
        missed = min((r["rate"] for r in rows if not r["sustained"] and r["rate"] > held), default=None)
        if missed is None or missed - held <= max(25.0, 0.1 * held):
            break
        await one(float(round((held + missed) / 2, -1)))
    return sorted(rows, key=lambda r: r["rate"])


def best(rows: list[dict]) -> float:
    return max((r["rate"] for r in rows if r["sustained"]), default=0.0)


# -- (a) the limit ---------------------------------------------------------------------------
def run_raw(settings: Settings, partitions: int, rates, duration_s, slo_ms, flood_n, warmup_s, log) -> dict:
    """The pipe with the fetch and linger settings Rendezvous runs with on this broker."""
    run, bootstrap = f"{os.getpid()}-{int(time.time())}", settings.bootstrap
    asyncio.run(rawpipe.create_topics(bootstrap, run, partitions))
    env = {**os.environ, **{f"RDV_{k.upper()}": str(getattr(settings, k))
                            for k in ("fetch_max_wait_ms", "fetch_min_bytes", "linger_ms")}}
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.rawpipe", "pipe", "--bootstrap", bootstrap,
                                "--run", run], stdout=subprocess.PIPE, text=True, env=env)
    try:
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the raw pipe did not start (exit code {process.poll()})")
        rows, flood = asyncio.run(rawpipe.measure(settings, run, partitions, rates, duration_s, slo_ms, flood_n, log,
                                                  warmup_s=min(warmup_s, 10.0)))
    finally:
        process.terminate()
        process.wait(20)
    return {"rows": rows, "flood": flood}


# -- (b) Rendezvous --------------------------------------------------------------------------
def run_rendezvous(spec, settings: Settings, rates, duration_s, slo_ms, warmup_s, refine, log,
                   client_kind: str = "native") -> dict:
    async def scenario(stack: Stack) -> list[dict]:
        pool = _pool()
        async with load_client(stack, client_kind) as client:
            await e2e.warm_up(stack, client, pool, warmup_s)
            return await sweep(lambda rate: e2e.measure_rate(client, pool, rate, duration_s, slo_ms,
                                                             stack.spec.deadline_ms), rates, slo_ms,
                               refine, log)

    with Stack(spec, settings) as stack:
        return {"rows": asyncio.run(scenario(stack))}


# -- (c) the peer ----------------------------------------------------------------------------
def run_peer(spec_path: Path, workers: int, rates, duration_s, slo_ms, refine, log) -> dict:
    port = free_port()
    env = {**os.environ, "RDV_PEER_SPEC": str(spec_path)}
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "benchmarks.peer:create_app",
                                "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                                "--log-level", "warning", "--no-access-log"], env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/predict"
    pool = _pool()

    async def scenario() -> list[dict]:
        load = HttpLoad(url)
        await _wait_http(load, pool, process)
        await load.run(lambda i: {"features": pool[i % len(pool)]}, 400, 200.0)  # warm-up: every worker loaded

        async def measure(rate: float) -> dict:
            count = max(1, int(rate * duration_s))
            latencies, failed, achieved = await load.run(lambda i: {"features": pool[i % len(pool)]}, count, rate)
            row = {"rate": rate, "offered": achieved, "n": count, "lost": failed, "timeouts": 0,
                   "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
                   "p999": percentile(latencies, 99.9), "duplicates": 0}
            row["sustained"] = failed == 0 and row["p99"] <= slo_ms
            return row

        return await sweep(measure, rates, slo_ms, refine, log)

    try:
        return {"rows": asyncio.run(scenario()), "workers": workers}
    finally:
        process.terminate()
        process.wait(20)


async def _wait_http(load: HttpLoad, pool, process, timeout_s: float = 60.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"the REST peer exited with code {process.returncode}")
        latencies, _, _ = await load.run(lambda i: {"features": pool[0]}, 1, 1.0)
        if latencies:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the REST peer did not answer within {timeout_s:.0f} s")


# -- the report ------------------------------------------------------------------------------
def plot(runs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.8))
    for system, color in zip(SYSTEMS, ("#888888", "#1f77b4", "#d62728")):
        rows = runs.get(system, {}).get("rows") or []
        if not rows:
            continue
        x = [r["rate"] for r in rows]
        ax.plot(x, [r["p99"] for r in rows], "o-", color=color, label=f"{LABELS[system]} p99")
        ax.plot(x, [r["p50"] for r in rows], "--", color=color, alpha=0.6, label=f"{LABELS[system]} p50")
    ax.axhline(100, color="black", linewidth=0.8, linestyle=":", label="SLO 100 ms")
    ax.set(xlabel="offered load (requests/s)", ylabel="latency (ms, log)", yscale="log",
           title="Latency vs offered load, Apache Kafka, one 2-core machine")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(runs: dict, meta: dict, plot_name: str) -> str:
    raw, rdv, peer = (runs.get(s, {}) for s in SYSTEMS)
    lines = [START, f"### Side by side: the limit, Rendezvous, a REST peer — {meta['date']}", "",
             f"- machine: {meta['machine']}", f"- broker: {meta['broker']}", f"- git commit: `{meta['commit']}`",
             f"- command: `{meta['command']}`",
             f"- models: {meta['models']}; Rendezvous: one core worker (decoy + rendezvous) and "
             f"{meta['groups']} model-group worker(s), deadline {meta['deadline_ms']} ms; peer: the same models and "
             f"artifacts, FastAPI + uvicorn with {peer.get('workers', '?')} worker process(es), one request per call",
             f"- load: open loop, {meta['duration_s']:g} s per rate, latency client-side (send → answer); sustained ="
             f" nothing lost, ≤1% timeouts, p99 ≤ {meta['slo_ms']:g} ms", ""]
    rates = sorted({r["rate"] for s in SYSTEMS for r in runs.get(s, {}).get("rows", [])})

    def cell(system, rate):
        row = next((r for r in runs.get(system, {}).get("rows", []) if r["rate"] == rate), None)
        if row is None:
            return "—"
        mark = "" if row["sustained"] else " ✗"
        return f"{row['p50']:.1f} / {row['p99']:.1f}{mark}"

    lines += ["| offered req/s | " + " | ".join(f"{LABELS[s]} p50 / p99 ms" for s in SYSTEMS) + " |",
              "|---:|" + "---:|" * len(SYSTEMS)]
    lines += [f"| {rate:g} | " + " | ".join(cell(s, rate) for s in SYSTEMS) + " |" for rate in rates]
    lines += ["", "✗ = not sustained (lost, timed out or p99 over the SLO).", ""]
    summary = []
    if raw:
        flood, hop = raw["flood"], raw["rows"][0] if raw["rows"] else None
        summary.append(f"**The limit:** a flood of {flood['n']:,} messages went through the raw pipe at "
                       f"**{flood['per_s']:,.0f} messages/s** ({flood['lost']} lost)"
                       + (f"; one hop at {hop['rate']:g}/s: p50 {hop['hop_p50']:.2f} ms, p99 {hop['hop_p99']:.2f} ms."
                          if hop else "."))
    if rdv and peer:
        r_best, p_best = best(rdv["rows"]), best(peer["rows"])
        ratio = f"{r_best / p_best:.2f}×" if p_best else "n/a (the peer held no rate)"
        summary.append(f"**Maximum sustained rate:** Rendezvous **{r_best:g}/s**, REST peer **{p_best:g}/s** — "
                       f"Rendezvous / peer at the same p99 ≤ {meta['slo_ms']:g} ms: **{ratio}**.")
    if raw and rdv and raw["rows"] and rdv["rows"]:
        low_r, low_raw = rdv["rows"][0], raw["rows"][0]
        per_hop = low_r["p50"] / 3
        summary.append(f"**Per-hop overhead** at {low_r['rate']:g}/s: a Result crosses the broker 3 times (request → "
                       f"model group and core, ScoreBatch → core, Result → client); Rendezvous p50 {low_r['p50']:.1f} ms "
                       f"= {per_hop:.1f} ms per hop against {low_raw['hop_p50']:.2f} ms for a raw hop: "
                       f"**{per_hop / low_raw['hop_p50']:.1f}×**.")
    lines += summary + [""]
    for system in SYSTEMS:
        rows = runs.get(system, {}).get("rows")
        if not rows:
            continue
        lines += [f"**{LABELS[system]}** — maximum sustained rate **{best(rows):g}/s**", "",
                  "| offered | achieved | requests | p50 ms | p99 ms | p99.9 ms | timeouts | timeouts decided after the deadline, p99 ms | lost | sustained |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"]
        lines += [f"| {r['rate']:g} | {r['offered']:.0f} | {r['n']} | {r['p50']:.1f} | {r['p99']:.1f} | {r['p999']:.1f} | "
                  f"{r['timeouts']} | {_overshoot(r)} | {r['lost']} | {'yes' if r['sustained'] else 'no'} |" for r in rows]
        lines.append("")
    lines += [f"![latency against offered load]({plot_name})", "", END]
    return "\n".join(lines)


def _overshoot(row: dict) -> str:
    value = row.get("overshoot_p99")
    return "—" if value is None else f"{value:.1f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", default=None, help=e2e.BROKER_HELP)
    parser.add_argument("--rates", default="100,500,1000,2000", help="offered loads in requests/s, ascending")
    parser.add_argument("--duration-s", type=float, default=10.0, help="seconds of load per rate")
    parser.add_argument("--slo-ms", type=float, default=100.0, help="p99 that counts as sustained")
    parser.add_argument("--deadline-ms", type=int, default=100, help="Rendezvous' per-request deadline")
    parser.add_argument("--groups", type=int, choices=[1, 2], default=1,
                        help="model-group workers: 1 (all models in one) or 2 (xgb | the rest)")
    parser.add_argument("--peer-workers", type=int, default=2, help="uvicorn worker processes of the peer")
    parser.add_argument("--refine", type=int, default=2, help="bisection steps toward each maximum sustained rate")
    parser.add_argument("--flood", type=int, default=20_000, help="messages in the raw pipe's throughput flood")
    parser.add_argument("--warmup-s", type=float, default=e2e.WARMUP_S, help="warm-up at 200/s (seconds)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="which to run: raw,rendezvous,peer")
    parser.add_argument("--client", choices=["native", "python"], default="native", help=e2e.CLIENT_HELP)
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    systems = args.systems.split(",")
    warmup_s = args.warmup_s
    runs: dict = {}
    with tempfile.TemporaryDirectory(prefix="rdv-compare-") as tmp:
        work = Path(tmp)
        with e2e.running_broker(args.broker, work) as url:
            spec_path = train_demo_models(work, pipeline="compare", deadline_ms=args.deadline_ms, groups=args.groups,
                                          river=True)
            spec = load_spec(spec_path)
            settings = replace(Settings.from_env(), broker=url, data_dir=work / "data", web_port=free_port())
            tune_gc()  # the load generator too: a full collection would pause it mid-measurement
            if "raw" in systems:
                print("(a) the limit: raw aiokafka consume -> produce")
                runs["raw"] = run_raw(settings, spec.partitions, rates, args.duration_s, args.slo_ms,
                                      args.flood, warmup_s, print)
            if "rendezvous" in systems:
                print(f"(b) Rendezvous: {', '.join(m.id for m in spec.models)} + decoy, {args.groups} model group(s)")
                runs["rendezvous"] = run_rendezvous(spec, settings, rates, args.duration_s, args.slo_ms, warmup_s,
                                                    args.refine, print, args.client)
            if "peer" in systems:
                print(f"(c) the REST peer: FastAPI + uvicorn, {args.peer_workers} worker(s)")
                runs["peer"] = run_peer(spec_path, args.peer_workers, rates, args.duration_s, args.slo_ms, args.refine,
                                        print)
    plot_path = args.out.with_name(args.out.stem + "-latency.png")
    command = "python -m benchmarks.compare " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": e2e._machine(),
            "broker": e2e.BROKER, "commit": e2e._commit(), "command": command.strip(),
            "models": ", ".join(f"{m.id} ({m.flavour}, {m.role})" for m in spec.models), "groups": args.groups,
            "deadline_ms": args.deadline_ms, "duration_s": args.duration_s, "slo_ms": args.slo_ms}
    plot(runs, plot_path)
    e2e.write(args.out, render(runs, meta, plot_path.name), START, END)
    print(f"wrote {args.out} and {plot_path}")


if __name__ == "__main__":
    main()
