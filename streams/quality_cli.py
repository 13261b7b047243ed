"""``rendezvous profile`` and ``rendezvous report``: the reference profile and the HTML report."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from streams.models_cli import _BROKER, _DATA, _PIPELINE
from streams.kafka.settings import Settings

__all__ = ["profile_command", "report_command"]


@click.command("profile")
@_PIPELINE
@click.option("--data", "data", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The training data (.csv or .parquet) the pipeline's models learned from.")
@click.option("--features", default=None, help="Comma-separated features to profile (default: every feature the "
                                                "pipeline's models use, from DATA_DIR/PIPELINE/pipeline.yaml).")
@_DATA
def profile_command(pipeline, data, features, data_dir) -> None:
    """Build the reference profile and the Great Expectations suite from the training data.

    Per feature: kind (numeric, or categorical for text and small sets of whole-number codes),
    null fraction, 0.1–99.9% range, decile bins, a sample (numbers) or the category shares. The
    GX suite expects every column, its type, values in range, nulls no more frequent, known
    categories. Stored in DATA_DIR/PIPELINE/profiles/<SHA-256 of DATA>/ — the SHA-256 the
    registry records for models trained on that file — and made current: the quality worker
    picks it up at its next window.
    """
    from rich.console import Console
    from rich.table import Table

    from features.reference import profile_training_data

    settings = Settings.from_env(data_dir=data_dir)
    if features:
        names = [f.strip() for f in features.split(",") if f.strip()]
    else:
        spec_path = settings.data_dir / pipeline / "pipeline.yaml"
        if settings.open_store().read_text(f"{pipeline}/pipeline.yaml") is None:
            raise click.ClickException(f"{spec_path} does not exist: pass --features, or start the pipeline first")
        from pipelines.spec import load_spec

        names = list(dict.fromkeys(f for m in load_spec(spec_path).models for f in m.features))
    try:
        folder, profile = profile_training_data(pipeline, data, names, settings.data_dir, settings.open_store())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    table = Table(title=f"reference profile of {pipeline} from {data} ({profile['rows']:,} rows)")
    for column in ("feature", "kind", "nulls", "range / categories"):
        table.add_column(column)
    for name, entry in profile["features"].items():
        shape = (f"{entry['min']:.4g} … {entry['max']:.4g}" if entry["kind"] == "numeric"
                 else f"{len(entry['categories'])}: {', '.join(list(entry['categories'])[:8])}")
        table.add_row(name, entry["kind"], f"{entry['null_fraction']:.1%}", shape)
    Console(width=120).print(table)
    click.echo(f"saved {folder} (profile.json, suite.json); it is the current profile of {pipeline}")


@click.command("report")
@_PIPELINE
@_BROKER
@_DATA
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default DATA_DIR/PIPELINE/report).")
def report_command(pipeline, broker, data_dir, out) -> None:
    """Write a static HTML report: latency, accuracy, answers, agreement, drift, DLQ, GX Data Docs."""
    from pipelines.jobs.report import write_report

    settings = Settings.from_env(broker=broker, data_dir=data_dir)
    out = out or settings.data_dir / pipeline / "report"
    try:
        index = asyncio.run(write_report(pipeline, settings, out))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {index}")
