"""False alarms on stationary controls, next to the detection delay on real drift.

    python -m benchmarks.alarms                     # in-process, writes BENCHMARKS.md
    python -m benchmarks.alarms --hours 1 --rate 200 --functions 0,2,4,8 --seeds 1

**Controls** (nothing changes): for each Agrawal function and seed, an XGBoost model, a logistic
regression and a depth-3 tree (the canary) trained on 10,000 rows of that function, and a River
Hoeffding adaptive tree warmed on 3,000 rows and learning online from every label (the learner
whose improvement was once taken for decay), then ``--hours`` of traffic at ``--rate`` requests/s
from the same function, every request labelled. Plus a regression control: River's Friedman
stream, an XGBoost regressor and a depth-3 tree, the absolute error as the error stream.
The core's detectors (``features.decay.ErrorDrift``) see every model's errors; the quality
worker's feature-drift watch (``features.quality.DriftWatch``, the spec's defaults) sees tumbling
windows of ``--window-rows`` requests against the training profile.

Counted per hour: decay alerts (every one is false here), improvement alerts, feature-drift flags
(a feature newly flagged) and decay verdicts from feature drift (``min_drifted`` features flagged
in one window).

**Drift** (is anything still caught?): the learning benchmark's Agrawal pairs, ``--drift-seeds``;
the XGBoost model of the old concept sees 5,000 labelled requests of it, then the new concept;
labels after the change until its first decay alert.

**On Kafka** (``--kafka-seconds``, 0 to skip): the issue's control through a real pipeline —
Apache Kafka, the demo's XGBoost champion, logistic regression, canary and a River learner trained
on one Agrawal concept, ``quality: {auto_retrain: true, window_rows: 1000, window_s: 10}`` — then
``--kafka-seconds`` of that concept at ``--rate``, every request labelled within a second of its
answer. Counted: the Alerts by kind, the quality windows and their flagged features, and the
timeouts.

Each detector setting in ``--deltas`` (ADWIN's delta; the first is the default) runs both; the
ones after the first (for comparison) run ``--compare-hours`` of traffic per control.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

START, END = "<!-- alarms:start -->", "<!-- alarms:end -->"
DRIFT_PAIRS = ((2, 0), (0, 2), (8, 9), (4, 1))


@dataclass
class Control:
    name: str
    requests: int
    hours: float
    decay: dict[str, int] = field(default_factory=dict)         # model -> false decay alerts
    improvement: dict[str, int] = field(default_factory=dict)   # model -> improvement alerts
    reasons: list[str] = field(default_factory=list)
    windows: int = 0
    flags: int = 0            # features newly flagged (window after window)
    window_flags: int = 0     # single windows in which a feature's test fired (before persistence)
    verdicts: int = 0         # windows with >= min_drifted features flagged


def _frame(rows, features) -> np.ndarray:
    return np.array([[float(x[k]) for k in features] for x in rows])


def _agrawal(function: int, seed: int, n: int):
    from river.datasets import synth

    return [(x, int(y)) for x, y in itertools.islice(synth.Agrawal(classification_function=function, seed=seed), n)]


def _friedman(seed: int, n: int):
    from river.datasets import synth

    return [(x, float(y)) for x, y in itertools.islice(synth.Friedman(seed=seed), n)]


def _watch_windows(control: Control, watch, frame: pd.DataFrame, window_rows: int, rate: float, min_drifted: int) -> None:
    flagged: set[str] = set()
    for start in range(0, len(frame) - window_rows + 1, window_rows):
        drift = watch.check(frame.iloc[start:start + window_rows], window_rows / rate)
        now = {name for name, d in drift.items() if d["drifted"]}
        control.windows += 1
        control.flags += len(now - flagged)
        control.window_flags += sum(d["window_drifted"] for d in drift.values())
        control.verdicts += len(now) >= min_drifted
        flagged = now


def _observe(control: Control, chunks, features: list[str], reference: np.ndarray, window_rows: int, rate: float,
             delta: float, progress=None) -> Control:
    """Every model's errors, request by request, into the core's detectors (``chunks``: (rows, errors
    by model) a few thousand requests at a time), and the requests, in windows, into the feature-drift
    watch against the ``reference`` rows; the alerts and flags counted in ``control``."""
    from features.decay import ErrorDrift
    from features.profile import build_profile
    from features.quality import DriftWatch

    watch = ErrorDrift(delta=delta)
    frames = []
    for M, errors in chunks:
        for i in range(len(M)):
            for model, e in errors.items():
                for alert in watch.update(model, float(e[i])):
                    kind = control.decay if alert["kind"] == "decay" else control.improvement
                    kind[model] = kind.get(model, 0) + 1
                    if alert["kind"] == "decay":
                        control.reasons.append(alert["reason"])
        frames.append(pd.DataFrame(M, columns=features))
        if progress:
            progress(len(M))
    drift_watch = DriftWatch(build_profile(pd.DataFrame(reference, columns=features), features))
    _watch_windows(control, drift_watch, pd.concat(frames, ignore_index=True), window_rows, rate, 2)
    return control


def classification_control(function: int, seed: int, hours: float, rate: float, window_rows: int, delta: float,
                           progress=None) -> Control:
    import xgboost as xgb
    from river import tree
    from river.datasets import synth
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    from pipelines.jobs.train import AGRAWAL_FEATURES

    features = list(AGRAWAL_FEATURES)
    train = _agrawal(function, seed, 10_000)
    X, y = _frame([x for x, _ in train], features), np.array([label for _, label in train])
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 5, "eta": 0.3, "nthread": 1},
                        xgb.DMatrix(X, label=y), num_boost_round=60)
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    canary = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    learner = tree.HoeffdingAdaptiveTreeClassifier(seed=seed)
    for x, label in train[:3000]:
        learner.learn_one({k: float(x[k]) for k in features}, bool(label))

    n = int(hours * 3600 * rate)
    stream = itertools.islice(synth.Agrawal(classification_function=function, seed=seed + 1000), n)

    def chunks():
        for chunk in iter(lambda: list(itertools.islice(stream, 5000)), []):
            rows = [{k: float(x[k]) for k in features} for x, _ in chunk]
            labels = np.array([int(label) for _, label in chunk])
            M = _frame(rows, features)
            errors = {"xgb": (booster.inplace_predict(M) >= 0.5).astype(int) != labels,
                      "lr": lr.predict(M) != labels, "canary": canary.predict(M) != labels}
            learned = np.empty(len(rows), dtype=bool)
            for i, (x, label) in enumerate(zip(rows, labels)):  # progressive validation: predict, then learn
                learned[i] = learner.predict_one(x) != bool(label)
                learner.learn_one(x, bool(label))
            yield M, {**errors, "learner": learned}

    return _observe(Control(f"agrawal f{function} seed {seed}", n, hours), chunks(), features, X, window_rows, rate,
                    delta, progress)


def regression_control(seed: int, hours: float, rate: float, window_rows: int, delta: float, progress=None) -> Control:
    import xgboost as xgb
    from river.datasets import synth
    from sklearn.tree import DecisionTreeRegressor

    train = _friedman(seed, 10_000)
    features = sorted(train[0][0])
    X, y = _frame([x for x, _ in train], features), np.array([t for _, t in train])
    booster = xgb.train({"objective": "reg:squarederror", "max_depth": 5, "eta": 0.3, "nthread": 1},
                        xgb.DMatrix(X, label=y), num_boost_round=100)
    canary = DecisionTreeRegressor(max_depth=3, random_state=0).fit(X, y)
    n = int(hours * 3600 * rate)
    stream = itertools.islice(synth.Friedman(seed=seed + 1000), n)

    def chunks():
        for chunk in iter(lambda: list(itertools.islice(stream, 5000)), []):
            M = _frame([x for x, _ in chunk], features)
            target = np.array([t for _, t in chunk])
            yield M, {"xgb": np.abs(booster.inplace_predict(M) - target), "canary": np.abs(canary.predict(M) - target)}

    return _observe(Control(f"friedman (regression) seed {seed}", n, hours), chunks(), features, X, window_rows, rate,
                    delta, progress)


def detection_delay(pair: tuple[int, int], seed: int, delta: float, before: int = 5000, after: int = 5000) -> int | None:
    """Labels after an abrupt change of concept until the old concept's XGBoost model's first decay alert."""
    import xgboost as xgb

    from features.decay import ErrorDrift
    from pipelines.jobs.train import AGRAWAL_FEATURES

    features = list(AGRAWAL_FEATURES)
    train = _agrawal(pair[0], seed, 10_000)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 5, "eta": 0.3, "nthread": 1},
                        xgb.DMatrix(_frame([x for x, _ in train], features), label=[label for _, label in train]),
                        num_boost_round=60)
    stream = _agrawal(pair[0], seed + 1, before) + _agrawal(pair[1], seed + 2, after)
    M = _frame([x for x, _ in stream], features)
    errors = (booster.inplace_predict(M) >= 0.5).astype(int) != np.array([label for _, label in stream])
    watch = ErrorDrift(delta=delta)
    for i, e in enumerate(errors):
        if any(a["kind"] == "decay" for a in watch.update("xgb", float(e))) and i >= before:
            return i - before + 1
    return None


@dataclass
class KafkaControl:
    seconds: float
    rate: float
    requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)   # kind -> how many
    decay_reasons: list[str] = field(default_factory=list)
    windows: int = 0
    flagged: int = 0                                       # windows with a feature flagged
    verdicts: int = 0                                      # windows with a decay verdict


def kafka_control(seconds: float, rate: float, chunk_s: float = 5.0, spec: dict | None = None) -> KafkaControl:
    """The stationary control on Apache Kafka (see the module's docstring)."""
    import asyncio
    import json
    import tempfile

    from pipelines.jobs.train import agrawal_rows, train_demo_models
    from streams.kafka.broker import KafkaBroker
    from streams.testing import make_stack, ready_client

    out = KafkaControl(seconds, rate)
    with tempfile.TemporaryDirectory(prefix="rdv-alarms-") as tmp:
        tmp = Path(tmp)
        template = train_demo_models(tmp / "trained", pipeline="template", n_train=5000, river=True)
        with KafkaBroker(data_dir=tmp / "kafka", log_path=tmp / "kafka.log") as broker:
            (tmp / "run").mkdir()
            stack = make_stack(broker, (tmp / "trained", template), tmp / "run", deadline_ms=250,
                               spec=spec or {"quality": {"auto_retrain": True, "window_rows": 1000, "window_s": 10}})

            async def traffic() -> None:
                client = await ready_client(stack, watch_alerts=True)
                try:
                    rows = list(agrawal_rows(int(seconds * rate), seed=1234))  # the training concept, other rows
                    step = max(1, int(rate * chunk_s))
                    for start in range(0, len(rows), step):
                        part = rows[start:start + step]
                        ids = await client.run_load([x for x, _ in part], rate_per_s=rate)
                        await client.wait_results(ids, timeout_s=30)
                        for rid, (_, label) in zip(ids, part):
                            await client.send_feedback(rid, label)
                        out.requests += len(ids)
                        for rid in ids:
                            status = client.received.results.get(rid, {}).get("status", "missing")
                            out.statuses[status] = out.statuses.get(status, 0) + 1
                    await asyncio.sleep(2 * stack.settings.archive_flush_s + 10)  # the last windows and labels
                    for alert in client.received.alerts:
                        out.alerts[alert["kind"]] = out.alerts.get(alert["kind"], 0) + 1
                        if alert["kind"] == "decay":
                            out.decay_reasons.append(alert["reason"])
                finally:
                    await client.__aexit__(None, None, None)

            with stack:
                asyncio.run(traffic())
                stack.check_alive()
                windows = stack.settings.data_dir / stack.spec.name / "quality" / "windows.jsonl"
                for line in (windows.read_text().splitlines() if windows.exists() else []):
                    window = json.loads(line)
                    out.windows += 1
                    out.flagged += bool(window.get("drifted"))
                    out.verdicts += bool(window.get("decay"))
    return out


def render(results: dict[float, tuple[list[Control], list[tuple]]], args, command: str, elapsed_s: float,
           kafka: KafkaControl | None = None) -> str:
    from benchmarks.e2e import _commit, _machine

    lines = [START, f"### False alarms on stationary controls — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             "", f"- machine: {_machine()}", f"- git commit: `{_commit()}`", f"- command: `{command}` ({elapsed_s / 60:.0f} min)",
             f"- in-process: {args.hours:g} h of traffic per control at {args.rate:g} requests/s ({args.compare_hours:g} h "
             "for the deltas compared with the default), every request "
             f"labelled; feature drift on windows of {args.window_rows:,} requests ({args.window_rows / args.rate:g} s), "
             "the spec's defaults (0.1 false flags a day allowed, 2 windows in a row)", ""]
    for delta, (controls, delays) in results.items():
        hours = sum(c.hours for c in controls)
        decay = sum(sum(c.decay.values()) for c in controls)
        lines += [f"**ADWIN delta {delta:g}{' (the default)' if delta == args.deltas[0] else ''}:** "
                  f"{decay} false decay alerts in {hours:g} control-hours ({decay / hours:.2f} an hour); "
                  f"detection after a real change: "
                  + ", ".join(f"f{a}→f{b} seed {s}: {d if d is not None else 'never'}" for (a, b), s, d in delays)
                  + " labels", "",
                  "| control | requests | false decay alerts (by model) | improvements | windows | feature flags / window tests fired | feature-drift decay verdicts |",
                  "|---|---:|---|---:|---:|---:|---:|"]
        for c in controls:
            lines.append(f"| {c.name} | {c.requests:,} | {sum(c.decay.values())} {c.decay or ''} | "
                         f"{sum(c.improvement.values())} | {c.windows:,} | {c.flags} / {c.window_flags} | {c.verdicts} |")
        reasons = [r for c in controls for r in c.reasons][:3]
        if reasons:
            lines += ["", "First false alerts: " + "; ".join(reasons)]
        lines.append("")
    if kafka is not None:
        lines += [f"**On Apache Kafka 4.1.1** (`rendezvous up`'s workers: xgb champion, lr, canary, a River learner; "
                  "quality worker with auto-retrain, windows of 1,000 requests or 10 s; every request labelled): "
                  f"{kafka.requests:,} requests at {kafka.rate:g}/s over {kafka.seconds:g} s, results {kafka.statuses}; "
                  f"alerts by kind {kafka.alerts or '{}'}; {kafka.windows} quality windows, {kafka.flagged} with a "
                  f"feature flagged, {kafka.verdicts} decay verdicts"
                  + (f"; false decay alerts: {'; '.join(kafka.decay_reasons[:3])}" if kafka.decay_reasons else ""), ""]
    lines += [END]
    return "\n".join(lines)


def main(argv=None) -> None:
    from benchmarks import e2e

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=1.0, help="simulated traffic per control")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s (every one labelled)")
    parser.add_argument("--functions", default="0,2,4,8", help="Agrawal classification functions of the controls")
    parser.add_argument("--seeds", default="1", help="seeds of the controls")
    parser.add_argument("--drift-seeds", default="7,11,13", help="seeds of the drift scenarios")
    parser.add_argument("--window-rows", type=int, default=1000, help="feature-drift windows (requests)")
    parser.add_argument("--deltas", default="1e-5,0.002", help="ADWIN deltas to compare (the first: the default)")
    parser.add_argument("--compare-hours", type=float, default=0.25, help="traffic per control for the deltas after the first")
    parser.add_argument("--kafka-seconds", type=float, default=120.0,
                        help="seconds of the control on Apache Kafka at --rate (0: skip)")
    parser.add_argument("--out", type=Path, default=e2e.ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    args.deltas = [float(d) for d in args.deltas.split(",")]
    from tqdm import tqdm

    started = time.time()
    seeds = [int(s) for s in args.seeds.split(",")]
    functions = [int(f) for f in args.functions.split(",")]
    results = {}
    for delta in args.deltas:
        hours = args.hours if delta == args.deltas[0] else args.compare_hours
        per = int(hours * 3600 * args.rate)
        with tqdm(total=per * (len(functions) * len(seeds) + 1), unit="req", desc=f"controls, delta {delta:g}") as bar:
            controls = [classification_control(f, s, hours, args.rate, args.window_rows, delta, bar.update)
                        for f in functions for s in seeds]
            controls.append(regression_control(seeds[0], hours, args.rate, args.window_rows, delta, bar.update))
        delays = [(pair, s, detection_delay(pair, s, delta)) for pair in DRIFT_PAIRS
                  for s in (int(x) for x in args.drift_seeds.split(","))]
        results[delta] = (controls, delays)
        for c in controls:
            print(f"delta {delta:g} {c.name}: decay {c.decay} improvement {c.improvement} flags {c.flags} "
                  f"verdicts {c.verdicts}")
        print("delays:", delays)
    kafka = kafka_control(args.kafka_seconds, args.rate) if args.kafka_seconds > 0 else None
    if kafka is not None:
        print(f"kafka: {kafka}")
    command = "python -m benchmarks.alarms " + " ".join(argv if argv is not None else sys.argv[1:])
    e2e.write(args.out, render(results, args, command.strip(), time.time() - started, kafka), START, END)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
