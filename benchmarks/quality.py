"""Proof of the quality monitor: a covariate shift is caught, a stationary stream never is, bad values fail GX.

    python -m benchmarks.quality                        # writes BENCHMARKS.md
    python -m benchmarks.quality --requests 20000 --shift-at 10000 --window 2000

River's Agrawal loan applications; the reference profile and GX suite come from 10,000
training rows. The monitor (``features.quality.QualityMonitor``: GX validation, per-feature
drift, the share of requests unlike the training population, the decay verdict) checks
tumbling windows of ``--window`` requests of three streams:

* **shift** — from request ``--shift-at`` on, new customers unlike the training population:
  salaries 40% higher and 15 years younger (a covariate shift; the labelling function is the same);
* **control** — the same generator without the shift (a different seed from training);
* **bad values** — one window where 5% of salaries are missing, 3% of ages are 200 and 3% of
  cars are an unknown code 99.

Figures: requests after the shift until the first decay verdict (it can only fire at the end
of a window), false verdicts on the control, and what GX reported for the bad window.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["agrawal_frame", "run_quality"]

START, END = "<!-- quality:start -->", "<!-- quality:end -->"
FEATURES = ("salary", "commission", "age", "elevel", "car", "zipcode", "hvalue", "hyears", "loan")


def agrawal_frame(n: int, seed: int, shift_at: int | None = None) -> pd.DataFrame:
    from river.datasets import synth

    rows = [{k: float(x[k]) for k in FEATURES} for x, _ in itertools.islice(synth.Agrawal(seed=seed), n)]
    frame = pd.DataFrame(rows)
    if shift_at is not None:
        frame.loc[shift_at:, "salary"] *= 1.4
        frame.loc[shift_at:, "age"] = (frame.loc[shift_at:, "age"] - 15).clip(lower=18)
    return frame


def _windows(monitor, frame: pd.DataFrame, window: int) -> list[dict]:
    return [monitor.check(frame.iloc[start:start + window].reset_index(drop=True),
                          {"first": start, "last": min(start + window, len(frame)) - 1})
            for start in range(0, len(frame) - window + 1, window)]


def run_quality(requests: int = 20_000, shift_at: int = 10_000, window: int = 2000, workdir: Path | None = None) -> dict:
    from features.profile import build_profile
    from features.quality import QualityMonitor

    with tempfile.TemporaryDirectory(prefix="rdv-quality-") as tmp:
        profile = build_profile(agrawal_frame(10_000, seed=1), FEATURES)
        monitor = QualityMonitor("proof", profile, Path(workdir or tmp) / "gx")
        shifted = _windows(monitor, agrawal_frame(requests, seed=2, shift_at=shift_at), window)
        monitor.drift.reset()  # another stream: no streak carries over
        control = _windows(monitor, agrawal_frame(requests, seed=3), window)
        bad = agrawal_frame(window, seed=4)
        rng = np.random.default_rng(0)
        bad.loc[rng.choice(window, window * 5 // 100, replace=False), "salary"] = np.nan
        bad.loc[rng.choice(window, window * 3 // 100, replace=False), "age"] = 200.0
        bad.loc[rng.choice(window, window * 3 // 100, replace=False), "car"] = 99.0
        bad_report = monitor.check(bad, {"first": 0, "last": window - 1})
    fired = [w for w in shifted if w["decay"]]
    return {"requests": requests, "shift_at": shift_at, "window": window, "shifted": shifted, "control": control,
            "bad": bad_report,
            "first_verdict_after": (fired[0]["last"] + 1 - shift_at) if fired else None,
            "false_before_shift": sum(w["decay"] for w in shifted if w["last"] < shift_at),
            "false_on_control": sum(w["decay"] for w in control)}


def render(result: dict, command: str) -> str:
    from benchmarks.e2e import _commit, _machine

    first = next((w for w in result["shifted"] if w["decay"]), None)
    bad = result["bad"]
    lines = [START, f"### Data quality and drift — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"- machine: {_machine()}", f"- git commit: `{_commit()}`", f"- command: `{command}`",
             f"- Agrawal, {result['requests']:,} requests in tumbling windows of {result['window']:,}; covariate shift "
             f"(salaries +40%, 15 years younger) from request {result['shift_at']:,}; reference and GX suite from "
             "10,000 training rows (in-process monitor, the one the quality worker runs)", "",
             "| stream | windows | decay verdicts | first verdict | what it said |", "|---|---:|---:|---|---|",
             f"| shift | {len(result['shifted'])} | {sum(w['decay'] for w in result['shifted'])} "
             f"({result['false_before_shift']} before the shift) | "
             + (f"{result['first_verdict_after']:,} requests after the shift" if first else "never")
             + f" | {'; '.join(first['reasons'])[:300] if first else '-'} |",
             f"| control (no shift) | {len(result['control'])} | {result['false_on_control']} | - | - |", "",
             f"Bad-values window ({result['window']:,} requests): GX success **{bad['gx_success']}**, "
             f"{len(bad['failed'])} expectations failed:", ""]
    lines += [f"- `{f}`" for f in bad["failed"]]
    lines += ["", END]
    return "\n".join(lines)


def main(argv=None) -> None:
    from benchmarks import e2e

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--shift-at", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=e2e.ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    result = run_quality(args.requests, args.shift_at, args.window)
    text = render(result, "python -m benchmarks.quality " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(text)
    e2e.write(args.out, text, START, END)


if __name__ == "__main__":
    main()
