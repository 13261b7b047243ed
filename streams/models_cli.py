"""``rendezvous models …``, ``rendezvous replay`` and ``rendezvous retrain``: the model lifecycle
from the command line. Each command parses, calls ``pipelines/jobs/lifecycle.py`` and prints.

Every command reads the registry from ``PIPELINE.control`` (the broker: --broker / RDV_BROKER)
and artifacts from DATA_DIR/registry (--data-dir / RDV_DATA_DIR); changes are ModelEvents
written there, which every worker applies within a fetch, without a restart.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from typing import Awaitable, TypeVar

import click

from pipelines.plugins import FLAVOURS
from pipelines.registry import live_models
from pipelines.spec import ROLES
from streams.kafka.settings import NoBrokerError, Settings

T = TypeVar("T")

__all__ = ["models", "replay_command", "retrain_command"]

_PIPELINE = click.option("--pipeline", "-p", envvar="RDV_PIPELINE", required=True, show_envvar=True,
                         help="The pipeline (its topics are PIPELINE.*).")
_BROKER = click.option("--broker", envvar="RDV_BROKER", default=None, show_envvar=True,
                       help="Kafka broker URL, kafka://HOST:PORT (the one `rendezvous up` printed).")
_DATA = click.option("--data-dir", envvar="RDV_DATA_DIR", default=None, show_envvar=True,
                     type=click.Path(path_type=Path), help="The data directory the workers use (default ./data).")


class RegisteredChoice(click.Choice):
    """A choice among what a registry (``pipelines/plugins.py``) holds when the command runs, not
    when it was declared: a flavour registered later is offered too."""

    def __init__(self, registry) -> None:
        self.registry = registry
        super().__init__(tuple(registry))

    @property
    def choices(self) -> tuple:
        return tuple(self.registry)

    @choices.setter
    def choices(self, value) -> None:  # click's constructor assigns a snapshot: the registry stays the truth
        pass


def iso_time(ms: float) -> str:
    """Epoch milliseconds as an ISO 8601 time (UTC, to the second)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000.0))


def _lifecycle(pipeline: str, broker: str | None, data_dir: Path | None, command: str):
    from pipelines.jobs.lifecycle import Lifecycle  # pandas, pyarrow: only for a command that runs

    settings = Settings.from_env(broker=broker, data_dir=data_dir)
    if not settings.broker:
        raise click.ClickException(str(NoBrokerError(command)))
    return Lifecycle(pipeline, settings)


def _run(operation: Awaitable[T]) -> T:
    """Run a lifecycle operation; its refusal is the command's error message."""
    from pipelines.jobs.lifecycle import LifecycleError

    try:
        return asyncio.run(operation)
    except LifecycleError as exc:
        error = click.ClickException(str(exc))
        error.exit_code = getattr(exc, "exit_code", error.exit_code)  # 3: a retrain that did not beat its model
        raise error from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def models() -> None:
    """Register, list, promote, demote, rank and retire a pipeline's models (no restart needed).

    \b
    Roles: champion (answers first), challenger (answers when the champion cannot),
    shadow (scored and compared, never returned), canary (a stable baseline, never returned),
    retired (unloaded everywhere). A new model is registered as a shadow unless told otherwise:
    staged in production without touching the answers. `promote` runs checks first.
    """


@models.command("list")
@_PIPELINE
@_BROKER
@_DATA
@click.option("--all", "show_all", is_flag=True, help="Include retired models.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_models(pipeline, broker, data_dir, show_all, as_json) -> None:
    """The pipeline's models: role, version, flavour, group, artifact, who registered them when."""
    state = _run(_lifecycle(pipeline, broker, data_dir, "models list").state())
    rows = live_models(state) + ([e for e in state.values() if e["role"] == "retired"] if show_all else [])
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"models of {pipeline}")
    for column in ("model", "version", "role", "flavour", "group", "pref", "sha256", "last change"):
        table.add_column(column)
    for e in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at"] / 1000))
        table.add_row(e["model_id"], e["model_version"], e["role"], e["flavour"], e.get("group") or "-",
                      str(e["preference"]), (e.get("artifact_sha256") or "-")[:12],
                      f"{e['action']} by {e.get('by') or '?'} at {when}{' (forced)' if e.get('forced') else ''}")
    Console().print(table)
    if not rows:
        click.echo("no models registered yet: `rendezvous up SPEC` registers the spec's models")


@models.command()
@click.argument("model_id")
@_PIPELINE
@_BROKER
@_DATA
def show(model_id, pipeline, broker, data_dir) -> None:
    """Everything recorded about MODEL_ID: its current state and every version registered."""
    lifecycle = _lifecycle(pipeline, broker, data_dir, "models show")
    _, current = _run(lifecycle.model(model_id))
    click.echo(json.dumps({"current": current, "versions": lifecycle.store.versions(pipeline, model_id)}, indent=2))


@models.command()
@click.argument("model_id")
@click.argument("artifact", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_PIPELINE
@_BROKER
@_DATA
@click.option("--flavour", type=RegisteredChoice(FLAVOURS), required=True,
              help="How the artifact is loaded (pipelines/plugins.py); external: served outside this runtime.")
@click.option("--version", "version", default=None, help="Default: one more than the last registered version.")
@click.option("--role", type=click.Choice(ROLES), default="shadow",
              show_default=True, help="Shadow stages it without touching answers; `promote` later runs checks.")
@click.option("--group", default=None, help="The model group (worker) to host it; default: the champion's.")
@click.option("--features", default=None, help="Comma-separated feature names in the model's order; "
                                                "default: the champion's.")
@click.option("--preference", type=int, default=None, help="Rank among challengers, lower first (default: last).")
@click.option("--metric", "metrics", multiple=True, help="NAME=VALUE, e.g. accuracy=0.93 (repeatable).")
@click.option("--training-data", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The training data file: its SHA-256 is recorded as the fingerprint.")
@click.option("--code", type=click.Path(exists=True, path_type=Path), default=Path("."),
              help="The training code: the git commit there is recorded (default: the current directory).")
@click.option("--force", is_flag=True, help="Replace a live champion/challenger's bytes in place without checks.")
def register(model_id, artifact, pipeline, broker, data_dir, flavour, version, role, group, features, preference,
             metrics, training_data, code, force) -> None:
    """Register ARTIFACT as MODEL_ID (a new model, or a new version of one).

    The file is copied into the content-addressed store (DATA_DIR/registry/blobs, by SHA-256),
    loaded once to prove it is safe and works, then announced on PIPELINE.control.
    External models (served by a worker outside this codebase) have no ARTIFACT.
    """
    try:
        parsed = {k: float(v) for k, v in (m.split("=", 1) for m in metrics)}
    except ValueError:
        raise click.ClickException("--metric takes NAME=NUMBER, e.g. --metric accuracy=0.93") from None
    lifecycle = _lifecycle(pipeline, broker, data_dir, "models register")
    record = _run(lifecycle.register(
        model_id, artifact, flavour, version=version, role=role, group=group,
        features=features.split(",") if features else None, preference=preference, metrics=parsed,
        training_data=training_data, code=code, force=force))
    sha = record.get("artifact_sha256")
    click.echo(f"registered {model_id} version {record['model_version']} as {role} in group {record['group']}"
               f"{f' (sha256 {sha[:12]})' if sha else ''}")


@models.command()
@click.argument("model_id")
@_PIPELINE
@_BROKER
@_DATA
@click.option("--to", "to", type=click.Choice(["champion", "challenger"]), default="champion", show_default=True)
@click.option("--since", default=None, help="Replay only requests archived since this time (ISO 8601).")
@click.option("--force", is_flag=True, help="Promote even if a check failed (recorded in the event).")
def promote(model_id, pipeline, broker, data_dir, to, since, force) -> None:
    """Make MODEL_ID the champion (the old one becomes a challenger) or a challenger — after checks.

    Checks: it loads, it reads only features the pipeline has, its p99 batch latency on replayed
    traffic is within the budget, it agrees enough with the current champion (and is accurate
    enough on feedback if the spec's `checks:` asks). A failed check stops here and says why.
    """
    lifecycle = _lifecycle(pipeline, broker, data_dir, "models promote")
    done = _run(lifecycle.promote(model_id, to=to, since=since, force=force))
    _print_checks(done.checks)
    if not done.events:
        failed = [c.name for c in done.checks if not c.ok]
        raise click.ClickException(f"promotion of {model_id} blocked by {', '.join(failed)}; "
                                   "fix that, or pass --force (it is recorded)")
    click.echo(f"{model_id} is now {to}" + (" (checks overridden with --force)" if done.forced else ""))


def _print_checks(checks) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="promotion checks")
    for column in ("check", "result", "detail"):
        table.add_column(column)
    for c in checks:
        table.add_row(c.name, "[green]ok[/green]" if c.ok else "[red]FAILED[/red]", c.detail)
    Console().print(table)


@models.command()
@click.argument("model_id")
@_PIPELINE
@_BROKER
@_DATA
def demote(model_id, pipeline, broker, data_dir) -> None:
    """champion -> challenger, challenger -> shadow (still scored and compared, never returned)."""
    events = _run(_lifecycle(pipeline, broker, data_dir, "models demote").demote(model_id))
    click.echo(f"{model_id} is now {events[-1]['role']}")


@models.command()
@click.argument("model_id")
@_PIPELINE
@_BROKER
@_DATA
@click.option("--force", is_flag=True, help="Retire even the last model that may answer.")
def retire(model_id, pipeline, broker, data_dir, force) -> None:
    """Take MODEL_ID out: unloaded by its group, forgotten by the policy; `list --all` still shows it."""
    _run(_lifecycle(pipeline, broker, data_dir, "models retire").retire(model_id, force=force))
    click.echo(f"{model_id} is retired")


@models.command()
@click.argument("model_id")
@click.argument("preference", type=int)
@_PIPELINE
@_BROKER
@_DATA
def rank(model_id, preference, pipeline, broker, data_dir) -> None:
    """Set MODEL_ID's PREFERENCE: among challengers, lower answers first (the champion always leads)."""
    _run(_lifecycle(pipeline, broker, data_dir, "models rank").rank(model_id, preference))
    click.echo(f"{model_id} now has preference {preference}")


@click.command("replay")
@_PIPELINE
@click.option("--model", "-m", "model_id", required=True, help="A registered model (any role) to replay.")
@_BROKER
@_DATA
@click.option("--since", default=None, help="Only requests archived since this time (ISO 8601).")
@click.option("--batch", type=int, default=64, show_default=True, help="Micro-batch size, as the model groups use.")
def replay_command(pipeline, model_id, broker, data_dir, since, batch) -> None:
    """Feed archived requests to a model offline and compare it with the live models' recorded answers.

    Prints agreement with every live model, accuracy where feedback exists, prediction
    distributions and batch latency; saves DATA_DIR/PIPELINE/replays/MODEL-TIME.json (the
    comparison) and .csv (its answer per request). This is how to decide to stage a model.
    """
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    lifecycle = _lifecycle(pipeline, broker, data_dir, "replay")
    with Progress(transient=True) as progress:
        task = progress.add_task(f"replaying archived requests through {model_id}", total=None)

        def advance(n: int, total: int) -> None:
            progress.update(task, total=total, advance=n)

        report, _, path = _run(lifecycle.replay(model_id, since, batch, progress=advance))
    table = Table(title=f"replay of {model_id} v{report.model_version}: {report.rows} requests, "
                        f"{report.errors} errors, p99 {report.latency_ms['p99']:.2f} ms per batch of {report.batch}")
    for column in ("compared with", "requests", "agreement", "accuracy", "mean p(1)", "predictions"):
        table.add_column(column)
    for other in sorted(set(report.predictions) - {model_id}):
        table.add_row(other, str(report.compared.get(other, 0)),
                      f"{report.agreement[other]:.1%}" if other in report.agreement else "-",
                      f"{report.accuracy[other]:.1%}" if other in report.accuracy else "-",
                      f"{report.positive_rate[other]:.3f}" if other in report.positive_rate else "-",
                      json.dumps(report.predictions[other]))
    table.add_row(f"[bold]{model_id} (candidate)[/bold]", str(report.rows), "",
                  f"{report.accuracy[model_id]:.1%}" if model_id in report.accuracy else "-",
                  f"{report.positive_rate[model_id]:.3f}" if model_id in report.positive_rate else "-",
                  json.dumps(report.predictions.get(model_id, {})))
    Console().print(table)
    click.echo(f"saved {path} and {path.with_suffix('.csv')}")


@click.command("retrain")
@_PIPELINE
@click.option("--model", "model_id", required=True, help="The scikit-learn or XGBoost model to train a new version of.")
@_BROKER
@_DATA
@click.option("--as", "new_id", default=None, help="Id of the new model (default: MODEL-rN, the next free N).")
@click.option("--holdout", type=click.FloatRange(0.05, 0.5), default=0.2, show_default=True,
              help="Share of the most recent labelled requests held out to judge it against the champion.")
@click.option("--min-rows", type=int, default=200, show_default=True, help="Labelled requests needed to train at all.")
@click.option("--auto-promote", "confidence", type=click.FloatRange(0.5, 0.9999), default=None,
              help="Promote it automatically once it beats the champion on live feedback with this confidence "
                   "(McNemar's exact test), e.g. 0.95.")
@click.option("--since", default=None, metavar="TIME|change",
              help="Learn only from the requests received since TIME (ISO 8601, or epoch milliseconds), or since "
                   "`change`: where MODEL's error rate changed, placed from its recorded Scores and the labels. "
                   "Default: every labelled request.")
@click.option("--one-candidate", is_flag=True,
              help="Refuse while an earlier retrained version of MODEL is still a shadow (what automatic retrains do).")
@click.option("--must-beat", is_flag=True,
              help="Register it only if it beats MODEL on the held-out requests; otherwise record it in "
                   "DATA_DIR/<pipeline>/retrain/rejected.jsonl and exit with status 3 (what automatic retrains do).")
def retrain_command(pipeline, model_id, broker, data_dir, new_id, holdout, min_rows, confidence, since,
                    one_candidate, must_beat) -> None:
    """Train a new version of MODEL from the archive joined with feedback; register it as a shadow.

    After a change in the data, `--since change` trains it on the requests after the change only
    (the ones before teach the old concept). The oldest labelled requests train it with MODEL's
    hyperparameters, the newest --holdout judge it against MODEL and the champion (table printed,
    figures recorded as the version's metrics). As a shadow it scores live traffic without answering; promote it with
    `rendezvous models promote`, or let --auto-promote do it when live feedback proves it better.
    """
    from rich.console import Console
    from rich.table import Table

    lifecycle = _lifecycle(pipeline, broker, data_dir, "retrain")
    done = _run(lifecycle.retrain(model_id, new_id, holdout, min_rows, confidence, since, one_candidate, must_beat))
    new, metrics, new_id = done.record, done.metrics, done.record["model_id"]
    after = (f" since {iso_time(metrics['since_ms'])}" if "since_ms" in metrics else "")
    table = Table(title=f"{new_id}: retrained from {model_id} on {int(metrics['rows_train'])} labelled requests{after}, "
                        f"judged on the newest {int(metrics['rows_holdout'])}")
    for column in ("model", "held-out " + ("accuracy" if lifecycle.spec().task == "classification" else "MAE")):
        table.add_column(column)
    table.add_row(f"{new_id} (new)", f"{metrics['holdout']:.4f}")
    table.add_row(f"{model_id} (current)", f"{metrics['current_holdout']:.4f}" if "current_holdout" in metrics else "-")
    if "champion_holdout" in metrics:
        table.add_row(f"{done.champion} (champion)", f"{metrics['champion_holdout']:.4f}")
    Console(width=120).print(table)
    click.echo(f"registered {new_id} as a shadow in group {new['group']} (sha256 {new['artifact_sha256'][:12]}, "
               f"training data {done.data_path})"
               + (f"; it is promoted automatically once it beats the champion with confidence {confidence}" if confidence else ""))
