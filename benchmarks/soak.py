"""Soak: a steady load for minutes, with feedback, and the memory of every worker over time.

    python -m benchmarks.soak                        # 10 minutes at 500 requests/s on Apache Kafka
    python -m benchmarks.soak --minutes 2 --rate 200 --ttl-s 30

Mailboxes are kept ``feedback_ttl_s`` after their request (feedback can join them until then),
so the core's memory grows for one TTL and must then stay flat: retention forgets as many as
arrive. The soak uses a TTL of ``--ttl-s`` (120 s by default, not the spec's 600 s) so that the
steady state is reached and held within the run. Every 10 s it samples each worker's resident
memory (``/proc/PID/status``), the core's mailboxes in memory (``/metrics``), the archive's size
on disk and the window's latency; it writes a table to BENCHMARKS.md and the curves to
``BENCHMARKS-soak.png``. One request in ten gets its label (feedback) 1 s later.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx

START, END = "<!-- soak:start -->", "<!-- soak:end -->"
SAMPLE_S = 10.0


def rss_mib(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else None


def _dir_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20 if path.exists() else 0.0


async def _mailboxes(port: int, name: str) -> float | None:
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    except httpx.HTTPError:
        return None
    match = re.search(rf'rendezvous_mailboxes\{{pipeline="{re.escape(name)}"\}} ([0-9.e+]+)', text)
    return float(match.group(1)) if match else None


async def soak(stack, rate: float, seconds: float, log=print) -> list[dict]:
    from pipelines.jobs.train import agrawal_rows
    from streams.demo import percentile
    from streams.testing import ready_client

    client = await ready_client(stack)
    samples: list[dict] = []
    try:
        pool = list(agrawal_rows(20_000, seed=3))
        rng = random.Random(7)
        labels: list[tuple[float, str, object]] = []
        start = time.perf_counter()
        total = int(rate * seconds)
        next_sample, window = start + SAMPLE_S, []
        for i in range(total):
            now = time.perf_counter()
            delay = start + i / rate - now
            if delay > 0:
                await asyncio.sleep(delay)
            x, y = pool[i % len(pool)]
            rid = await client.send(x)
            window.append(rid)
            if rng.random() < 0.1:
                labels.append((time.perf_counter() + 1.0, rid, y))
            while labels and labels[0][0] <= time.perf_counter():
                _, lid, label = labels.pop(0)
                await client.send_feedback(lid, label)
            if time.perf_counter() >= next_sample:
                next_sample += SAMPLE_S
                done = [r for r in window if r in client.received.result_at]
                lat = client.latencies_ms(done)
                row = {"t_s": time.perf_counter() - start, "sent": i + 1,
                       "answered": len(client.received.results), "p50_ms": percentile(lat, 50) if lat else None,
                       "p99_ms": percentile(lat, 99) if lat else None,
                       "mailboxes": await _mailboxes(stack.settings.web_port, stack.spec.name),
                       "archive_mib": _dir_mib(stack.settings.data_dir / stack.spec.name),
                       **{f"rss_{role}": rss_mib(p.pid) for role, p in stack.workers.items()}}
                window = [r for r in window if r not in client.received.result_at]
                samples.append(row)
                log(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        ids = list(client.sent_at)
        missing = await client.wait_results(ids, timeout_s=60)
        samples.append({"t_s": time.perf_counter() - start, "lost": len(missing), "duplicates": client.received.duplicates,
                        "requests": len(ids)})
    finally:
        await client.__aexit__(None, None, None)
    return samples


def plot(samples: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [s for s in samples if "sent" in s]
    roles = sorted({k for s in rows for k in s if k.startswith("rss_")})
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    minutes = [s["t_s"] / 60 for s in rows]
    for role in roles:
        top.plot(minutes, [s.get(role) for s in rows], label=role[4:])
    top.set_ylabel("resident memory (MiB)")
    top.legend(loc="upper left", fontsize=8)
    bottom.plot(minutes, [s["mailboxes"] for s in rows], color="black", label="mailboxes in memory")
    bottom.set_ylabel("mailboxes")
    bottom.set_xlabel("minutes")
    fig.suptitle("Soak: memory per worker and mailboxes held (retention = feedback TTL)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(samples: list[dict], rate: float, ttl_s: float, command: str, png: str) -> str:
    from benchmarks.e2e import _commit, _machine

    rows = [s for s in samples if "sent" in s]
    end = samples[-1]
    roles = sorted({k for s in rows for k in s if k.startswith("rss_")})
    settle = [s for s in rows if s["t_s"] >= ttl_s + 2 * SAMPLE_S]  # after one TTL: retention is working

    def pick(t: float) -> dict:
        return min(rows, key=lambda s: abs(s["t_s"] - t))

    points = [pick(60), pick(ttl_s + 2 * SAMPLE_S), pick((ttl_s + rows[-1]["t_s"]) / 2), rows[-1]]
    lines = [START, f"### Soak: {rate:g} requests/s for {rows[-1]['t_s'] / 60:.0f} minutes — "
                    f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"- machine: {_machine()}", "- broker: Apache Kafka 4.1.1 (KRaft, one node)",
             f"- git commit: `{_commit()}`", f"- command: `{command}`",
             f"- mailbox retention (feedback_ttl_s) {ttl_s:g} s; one request in ten labelled 1 s later; "
             f"{end.get('requests')} requests, lost {end.get('lost')}, duplicates {end.get('duplicates')}", "",
             "| minute | sent | mailboxes in memory | " + " | ".join(f"RSS {r[4:]} MiB" for r in roles)
             + " | data dir MiB | p50 / p99 ms (last 10 s) |",
             "|---:|---:|---:|" + "---:|" * len(roles) + "---:|---:|"]
    for s in points:
        lat = f"{s['p50_ms']:.0f} / {s['p99_ms']:.0f}" if s["p99_ms"] is not None else "—"
        lines.append(f"| {s['t_s'] / 60:.1f} | {s['sent']} | {s['mailboxes'] or 0:.0f} | "
                     + " | ".join(f"{s.get(r) or 0:.0f}" for r in roles) + f" | {s['archive_mib']:.0f} | {lat} |")
    if settle:
        lines += ["", "After the first TTL (the steady state), per worker: first → last sample, and the largest:", ""]
        for r in roles:
            values = [s[r] for s in settle if s.get(r)]
            if values:
                lines.append(f"- {r[4:]}: {values[0]:.0f} → {values[-1]:.0f} MiB (max {max(values):.0f}, "
                             f"{(values[-1] - values[0]) / max(1e-9, (settle[-1]['t_s'] - settle[0]['t_s']) / 60):+.1f} MiB/min)")
        boxes = [s["mailboxes"] for s in settle if s["mailboxes"] is not None]
        if boxes:
            lines.append(f"- mailboxes in memory: {min(boxes):.0f}–{max(boxes):.0f} (rate × TTL = {rate * ttl_s:.0f})")
    lines += ["", f"![memory over time]({png})", "", END]
    return "\n".join(lines)


def main(argv=None) -> None:
    from benchmarks import e2e
    from pipelines.jobs.train import train_demo_models
    from streams.app import tune_gc
    from streams.kafka.broker import KafkaBroker
    from streams.testing import make_stack

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=500.0, help="steady load in requests/s")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--ttl-s", type=float, default=120.0, help="mailbox retention (the spec's feedback_ttl_s)")
    parser.add_argument("--out", type=Path, default=e2e.ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    tune_gc()
    with tempfile.TemporaryDirectory(prefix="rdv-soak-") as tmp:
        tmp = Path(tmp)
        spec = train_demo_models(tmp / "trained", pipeline="template", n_train=5000)
        with KafkaBroker(data_dir=tmp / "kafka", log_path=tmp / "kafka.log") as broker:
            (tmp / "run").mkdir()
            stack = make_stack(broker, (tmp / "trained", spec), tmp / "run", deadline_ms=1000,
                               spec={"feedback_ttl_s": int(args.ttl_s)})
            with stack:
                samples = asyncio.run(soak(stack, args.rate, args.minutes * 60))
                stack.check_alive()
    png = args.out.with_name(args.out.stem + "-soak.png")
    plot(samples, png)
    command = "python -m benchmarks.soak " + " ".join(argv if argv is not None else sys.argv[1:])
    e2e.write(args.out, render(samples, args.rate, args.ttl_s, command.strip(), png.name), START, END)
    print(f"wrote {args.out} and {png}")


if __name__ == "__main__":
    main()
