"""``rendezvous report``: one static HTML page about a pipeline, with plots and GX Data Docs.

Reads what the pipeline leaves behind — the Scores the rendezvous archived
(``DATA_DIR/<p>/scores``), the quality table (``DATA_DIR/<p>/quality``), and from the broker the
Results, the feedback and the dead letters — and writes ``index.html`` with PNG plots beside it
(``plots/``, time series bucketed to about 60 points over the run) and the GX Data Docs of the validated windows (``data_docs/``): per-model latency
over time, accuracy on feedback over time, answers per model, agreement with the canary, drift
per feature, dead letters. A plot without data says so instead of being drawn empty.
"""

from __future__ import annotations

import asyncio
import html
import shutil
import time
from pathlib import Path

import pandas as pd

__all__ = ["write_report"]

_POINTS = 60  # about this many buckets over a plot's time span, each at least a second


def _bucket(times) -> str:
    """A bucket width that gives a time series about ``_POINTS`` points, whatever the run's length."""
    times = pd.Series(times)
    if times.empty:
        return "1s"
    span_s = (times.max() - times.min()).total_seconds()
    return f"{max(1, int(span_s / _POINTS))}s"


async def write_report(pipeline: str, settings, out: Path) -> Path:
    from tables.archive import read_scores
    from tables.quality import read_quality
    from tables.results import read_records

    folder = settings.data_dir / pipeline
    store = settings.open_store()
    if store.remote:  # what the core and the quality worker published, wherever they ran
        await asyncio.to_thread(store.pull, f"{pipeline}/scores", ".parquet")
        await asyncio.to_thread(store.pull, f"{pipeline}/quality", refresh=True)
        await asyncio.to_thread(store.pull, f"{pipeline}/gx", refresh=True)
    if not folder.exists():
        raise ValueError(f"{folder} does not exist: is the pipeline's data directory {settings.data_dir} "
                         f"(or its store {store.url})?")
    scores = read_scores(folder / "scores")
    quality = read_quality(folder / "quality")
    results, feedback, dead = [], {}, []
    if settings.broker:
        results = await read_records(settings, f"{pipeline}.results", "Result")
        feedback = {r["request_id"]: r["label"] for _, r in await read_records(settings, f"{pipeline}.feedback", "Feedback")}
        dead = await read_records(settings, f"{pipeline}.dlq", "DeadLetter")
    out = Path(out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    sections = [
        _latency(scores, out),
        _accuracy(scores, feedback, out),
        _answers(results, out),
        _agreement(scores, out),
        _drift(quality, out),
        _dead_letters(dead, out),
        _quality_table(quality),
        _data_docs(folder / "gx", out),
    ]
    index = out / "index.html"
    index.write_text(_page(pipeline, sections, settings.broker is not None))
    for path in (p for p in out.rglob("*") if p.is_file()):  # for every host: <pipeline>/report/ in the store
        store.upload(path, f"{pipeline}/report/{path.relative_to(out).as_posix()}")
    return index


def _plot(name: str, out: Path, draw) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import matplotlib.dates as mdates

    figure, axes = plt.subplots(figsize=(9, 3.6), dpi=100)
    draw(axes)
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz="UTC"))
    axes.set_xlabel("time (UTC)")
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(out / "plots" / f"{name}.png")
    plt.close(figure)
    return f'<img src="plots/{name}.png" alt="{html.escape(name)}">'


def _timed(rows: list[dict]) -> pd.DataFrame:
    """Records with their Kafka timestamps (ms) as UTC times; records without one are left out."""
    frame = pd.DataFrame(rows)
    frame = frame[frame["at"] > 0]
    frame["at"] = pd.to_datetime(frame["at"], unit="ms", utc=True)
    return frame


def _per_bucket(frame: pd.DataFrame, by: str, bucket: str) -> pd.DataFrame:
    """Counts per time bucket (rows) and value of ``by`` (columns)."""
    return frame.assign(bucket=frame["at"].dt.floor(bucket)).pivot_table(
        index="bucket", columns=by, values="at", aggfunc="count", fill_value=0)


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _empty(what: str) -> str:
    return f'<p class="empty">No {html.escape(what)} yet.</p>'


def _latency(scores: pd.DataFrame, out: Path) -> str:
    if scores.empty:
        return _section("Latency per model", _empty("archived scores"))
    frame = scores[scores["status"] == "ok"].set_index("received_at")
    bucket = _bucket(frame.index)

    def draw(ax):
        for model, rows in frame.groupby("model_id"):
            series = rows["latency_ms"].resample(bucket).quantile(0.99).dropna()
            ax.plot(series.index, series.values, marker=".", label=model)
        ax.set_ylabel("p99 scoring latency per micro-batch (ms)")
        ax.legend()

    return _section(f"Latency per model (p99 per {bucket})", _plot("latency", out, draw))


def _accuracy(scores: pd.DataFrame, feedback: dict, out: Path) -> str:
    labelled = scores[scores["request_id"].isin(feedback.keys()) & (scores["status"] == "ok")].copy()
    if labelled.empty:
        return _section("Accuracy on feedback", _empty("feedback for archived scores"))
    labelled["right"] = [str(p) == str(int(feedback[r]) if isinstance(feedback[r], bool) else feedback[r])
                         for p, r in zip(labelled["prediction"], labelled["request_id"])]

    bucket = _bucket(labelled["received_at"])

    def draw(ax):
        for model, rows in labelled.set_index("received_at").groupby("model_id"):
            series = rows["right"].astype(float).resample(bucket).mean().dropna()
            ax.plot(series.index, series.values, marker=".", label=model)
        ax.set_ylabel(f"accuracy per {bucket}")
        ax.set_ylim(0, 1.02)
        ax.legend()

    return _section(f"Accuracy on feedback ({len(feedback):,} labels)", _plot("accuracy", out, draw))


def _answers(results: list, out: Path) -> str:
    if not results:
        return _section("Answers per model", _empty("results (or no broker given)"))
    frame = _timed([{"at": ts, "model": r["model_id"] or f"({r['status']})"} for ts, r in results])

    bucket = _bucket(frame["at"])

    def draw(ax):
        counts = _per_bucket(frame, "model", bucket)
        ax.stackplot(counts.index, *[counts[c].to_numpy() for c in counts.columns], labels=list(counts.columns))
        ax.set_ylabel(f"answers per {bucket}")
        ax.legend()

    table = frame["model"].value_counts().rename("answers").to_frame().to_html()
    return _section(f"Answers per model ({len(frame):,} results)", _plot("answers", out, draw) + table)


def _agreement(scores: pd.DataFrame, out: Path) -> str:
    canary = scores[(scores["role"] == "canary") & (scores["status"] == "ok")][["request_id", "prediction"]]
    if canary.empty:
        return _section("Agreement with the canary", _empty("canary scores"))
    joined = scores[(scores["role"] != "canary") & (scores["status"] == "ok")].merge(
        canary, on="request_id", suffixes=("", "_canary"))
    joined["agrees"] = (joined["prediction"] == joined["prediction_canary"]).astype(float)

    bucket = _bucket(joined["received_at"])

    def draw(ax):
        for model, rows in joined.set_index("received_at").groupby("model_id"):
            series = rows["agrees"].resample(bucket).mean().dropna()
            ax.plot(series.index, series.values, marker=".", label=model)
        ax.set_ylabel("share agreeing with the canary")
        ax.set_ylim(0, 1.02)
        ax.legend()

    return _section("Agreement with the canary", _plot("agreement", out, draw))


def _drift(quality: pd.DataFrame, out: Path) -> str:
    if quality.empty or "drift" not in quality:
        return _section("Drift per feature", _empty("validated windows (run `rendezvous profile`)"))
    rows = []
    for at, drift in zip(quality["window_end"], quality["drift"]):
        for feature, d in drift.items():
            value = d.get("psi", d.get("jensen_shannon"))
            if value is not None:
                rows.append({"at": at, "feature": feature, "value": value})
    frame = pd.DataFrame(rows)

    def draw(ax):
        for feature, part in frame.groupby("feature"):
            ax.plot(part["at"], part["value"], marker="o", label=feature)
        ax.axhline(0.2, color="grey", linestyle="--", linewidth=1)
        ax.set_ylabel("PSI (numbers) / Jensen–Shannon (codes)")
        ax.legend(ncol=3, fontsize="small")

    return _section("Drift per feature, per window", _plot("drift", out, draw))


def _dead_letters(dead: list, out: Path) -> str:
    if not dead:
        return _section("Dead letters", "<p>None.</p>")
    frame = _timed([{"at": ts, "stage": r["stage"], "topic": r["source_topic"], "reason": r["reason"][:90]}
                    for ts, r in dead])

    bucket = _bucket(frame["at"])

    def draw(ax):
        counts = _per_bucket(frame, "stage", bucket)
        bottom = None
        for stage in counts.columns:
            ax.bar(counts.index, counts[stage].to_numpy(), width=pd.Timedelta(bucket) * 0.8, bottom=bottom, label=stage)
            bottom = counts[stage].to_numpy() if bottom is None else bottom + counts[stage].to_numpy()
        ax.set_ylabel(f"dead letters per {bucket}")
        ax.legend()

    table = frame.groupby(["topic", "stage", "reason"]).size().rename("count").sort_values(ascending=False).head(20)
    return _section(f"Dead letters ({len(frame):,})", _plot("dead_letters", out, draw) + table.to_frame().to_html())


def _quality_table(quality: pd.DataFrame) -> str:
    if quality.empty:
        return _section("Quality windows", _empty("validated windows"))
    view = quality[["window_start", "window_end", "rows", "gx_success", "unlike_share", "decay", "reasons"]].copy()
    view["reasons"] = view["reasons"].map(lambda r: "; ".join(r)[:300])
    return _section(f"Quality windows ({len(view)})", view.tail(50).to_html(index=False))


def _data_docs(gx_root: Path, out: Path) -> str:
    site = gx_root / "gx" / "uncommitted" / "data_docs" / "local_site"
    if not gx_root.exists():
        return _section("Great Expectations Data Docs", _empty("validations"))
    import os

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    gx.get_context(mode="file", project_root_dir=str(gx_root)).build_data_docs()
    if (out / "data_docs").exists():
        shutil.rmtree(out / "data_docs")
    shutil.copytree(site, out / "data_docs")
    return _section("Great Expectations Data Docs", '<p><a href="data_docs/index.html">Validation results of the '
                                                    "recent windows, and the suite</a></p>")


def _page(pipeline: str, sections: list[str], with_broker: bool) -> str:
    note = "" if with_broker else "<p><em>No broker given: results, feedback and dead letters are not shown.</em></p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Rendezvous report — {html.escape(pipeline)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1000px; color: #222; }}
img {{ max-width: 100%; }} table {{ border-collapse: collapse; font-size: 0.85rem; }}
td, th {{ border: 1px solid #ccc; padding: 0.2rem 0.5rem; }} .empty {{ color: #888; }}
</style></head>
<body>
<h1>Pipeline {html.escape(pipeline)}</h1>
<p>Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by <code>rendezvous report</code>.</p>
{note}
{''.join(sections)}
<script>
// records on the page whether every plot loaded (checked by the test suite in headless Chromium)
window.addEventListener("load", () => {{
  const images = Array.from(document.images);
  const loaded = images.filter((i) => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.images = `${{loaded}} of ${{images.length}}`;
}});
</script>
</body></html>
"""
