"""``rendezvous models …`` and ``rendezvous replay``: the model lifecycle from the command line.

Every command reads the registry from ``PIPELINE.control`` (the broker: --broker / RDV_BROKER)
and artifacts from DATA_DIR/registry (--data-dir / RDV_DATA_DIR); changes are ModelEvents
written there, which every worker applies within a fetch, without a restart.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import click

from pipelines.registry import ArtifactStore, RegistryError, live_models, whoami
from streams.settings import NoBrokerError, Settings

__all__ = ["models", "replay_command"]

_PIPELINE = click.option("--pipeline", "-p", envvar="RDV_PIPELINE", required=True, show_envvar=True,
                         help="The pipeline (its topics are PIPELINE.*).")
_BROKER = click.option("--broker", envvar="RDV_BROKER", default=None, show_envvar=True,
                       help="Kafka broker URL, kafka://HOST:PORT (the one `rendezvous up` printed).")
_DATA = click.option("--data-dir", envvar="RDV_DATA_DIR", default=None, show_envvar=True,
                     type=click.Path(path_type=Path), help="The data directory the workers use (default ./data).")


class Context:
    def __init__(self, pipeline: str, broker: str | None, data_dir: Path | None, command: str) -> None:
        self.settings = Settings.from_env(broker=broker, data_dir=data_dir)
        if not self.settings.broker:
            raise click.ClickException(str(NoBrokerError(command)))
        self.pipeline = pipeline
        self.topic = f"{pipeline}.control"
        self.store = ArtifactStore(self.settings.data_dir / "registry")

    def state(self) -> dict[str, dict]:
        from tables.registry import read_registry

        try:
            return asyncio.run(read_registry(self.settings.bootstrap, self.topic))
        except RuntimeError as exc:
            raise click.ClickException(f"{exc} (is the broker {self.settings.broker} the pipeline's?)") from None

    def publish(self, events: list[dict]) -> None:
        from tables.registry import publish_events

        asyncio.run(publish_events(self.settings.bootstrap, self.topic, events, self.settings.encoding))

    def change(self, transition, *args, **kwargs) -> list[dict]:
        """Apply a registry transition (``pipelines.registry``) to the current state; publish its events."""
        try:
            events = transition(self.state(), *args, by=whoami(), **kwargs)
        except RegistryError as exc:
            raise click.ClickException(str(exc)) from None
        self.publish(events)
        return events

    def spec(self):
        """The deployment spec as the workers run it (written by them at start)."""
        from pipelines.spec import load_spec

        path = self.settings.data_dir / self.pipeline / "pipeline.yaml"
        if not path.exists():
            raise click.ClickException(f"{path} does not exist: start the pipeline's workers with this data directory "
                                       "(`rendezvous up SPEC`) first")
        return load_spec(path)


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
    ctx = Context(pipeline, broker, data_dir, "models list")
    state = ctx.state()
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
    ctx = Context(pipeline, broker, data_dir, "models show")
    state = ctx.state()
    if model_id not in state:
        raise click.ClickException(f"model {model_id!r} is not registered in {pipeline} ({', '.join(sorted(state)) or 'none'})")
    click.echo(json.dumps({"current": state[model_id], "versions": ctx.store.versions(pipeline, model_id)}, indent=2))


@models.command()
@click.argument("model_id")
@click.argument("artifact", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_PIPELINE
@_BROKER
@_DATA
@click.option("--flavour", type=click.Choice(["sklearn", "xgboost", "river", "external"]), required=True)
@click.option("--version", "version", default=None, help="Default: one more than the last registered version.")
@click.option("--role", type=click.Choice(["shadow", "canary", "challenger", "champion"]), default="shadow",
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
    from pipelines.flavours.base import sha256_of
    from pipelines.registry import event, git_commit

    ctx = Context(pipeline, broker, data_dir, "models register")
    state = ctx.state()
    if (flavour == "external") != (artifact is None):
        raise click.ClickException("an external model has no ARTIFACT; every other flavour needs one")
    current = state.get(model_id)
    if current and current["role"] in ("champion", "challenger") and not force:
        raise click.ClickException(
            f"{model_id} is a live {current['role']}: register the new version under another id as a shadow and "
            f"`promote` it (checks run), or pass --force to swap its bytes in place")
    champion = next((e for e in live_models(state) if e["role"] == "champion"), None)
    try:
        parsed = {k: float(v) for k, v in (m.split("=", 1) for m in metrics)}
    except ValueError:
        raise click.ClickException("--metric takes NAME=NUMBER, e.g. --metric accuracy=0.93") from None
    sha = ctx.store.put(artifact) if artifact else None
    record = event(
        pipeline, model_id, version or _next_version([*ctx.store.versions(pipeline, model_id), *filter(None, [current])]),
        "register", role,
        flavour, sha256=sha, by=whoami(),
        preference=preference if preference is not None else 1 + max((e["preference"] for e in state.values()), default=0),
        group=group or (current or champion or {}).get("group") or model_id,
        features=features.split(",") if features else (current or champion or {}).get("features", ()),
        metrics=parsed, training_data_sha256=sha256_of(training_data) if training_data else None,
        git_commit=git_commit(code), artifact_name=artifact.name if artifact else None, forced=force,
    )
    try:
        _load(ctx, record)
    except Exception as exc:
        raise click.ClickException(f"refused: {exc}") from None
    ctx.store.record(record)
    ctx.publish([record])
    click.echo(f"registered {model_id} version {record['model_version']} as {role} in group {record['group']}"
               f"{f' (sha256 {sha[:12]})' if sha else ''}")


def _next_version(versions: list[dict]) -> str:
    numbers = [int(v["model_version"]) for v in versions if str(v["model_version"]).isdigit()]
    return str(max(numbers, default=0) + 1)


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
    from pipelines.checks import summary
    from pipelines.registry import promote as promote_events

    ctx = Context(pipeline, broker, data_dir, "models promote")
    state = ctx.state()
    if model_id not in state:
        raise click.ClickException(f"model {model_id!r} is not registered in {pipeline}; `rendezvous models register` it")
    checks = _run_checks(ctx, state, model_id, since)
    _print_checks(checks)
    failed = [c for c in checks if not c.ok]
    if failed and not force:
        raise click.ClickException(f"promotion of {model_id} blocked by {', '.join(c.name for c in failed)}; "
                                   "fix that, or pass --force (it is recorded)")
    ctx.change(promote_events, model_id, to=to, forced=bool(failed), checks=summary(checks))
    click.echo(f"{model_id} is now {to}" + (" (checks overridden with --force)" if failed else ""))


def _run_checks(ctx: Context, state: dict, model_id: str, since: str | None):
    from pipelines.checks import promotion_checks

    spec = ctx.spec()
    record = state[model_id]
    champion = next((e["model_id"] for e in live_models(state) if e["role"] == "champion" and e["model_id"] != model_id), None)
    archive, scores, feedback = _traffic(ctx, since)
    known = {c[2:] for c in archive.columns if c.startswith("f_")}
    known |= {f for e in live_models(state) if e["model_id"] != model_id for f in e.get("features") or ()}
    load_error, report = None, None
    try:
        model = _load(ctx, record)
    except Exception as exc:
        load_error = str(exc)
    else:
        report, _ = _report(record, model, archive, scores, feedback, since)
    return promotion_checks(model_id, record.get("features") or (), spec, known, load_error, report, champion)


def _load(ctx: Context, record: dict):
    """The registered model, verified and loaded; ``None`` for an external one (nothing to load here)."""
    from pipelines.flavours import load_model
    from pipelines.registry import to_model_spec

    return None if record["flavour"] == "external" else load_model(to_model_spec(record, ctx.store))


def _report(record: dict, model, archive, scores, feedback, since: str | None, **kwargs):
    """Replay for a loaded model; for an external one, the comparison of its recorded Scores."""
    from pipelines.replay import recorded_report, replay

    if model is None:
        return recorded_report(record["model_id"], record["model_version"], scores, feedback, since)
    return replay(model, archive, scores, feedback, since=since, **kwargs)


def _traffic(ctx: Context, since: str | None):
    import pandas as pd

    from tables.archive import read_archive, read_scores
    from tables.feedback import read_feedback

    base = ctx.settings.data_dir / ctx.pipeline
    archive, scores = read_archive(base / "archive"), read_scores(base / "scores")
    if since:
        try:
            cut = pd.Timestamp(since, tz="UTC") if pd.Timestamp(since).tzinfo is None else pd.Timestamp(since)
        except ValueError:
            raise click.ClickException(f"--since {since!r} is not a time; use ISO 8601, e.g. 2026-11-27T10:00") from None
        if not archive.empty:
            archive = archive[archive["received_at"] >= cut]
        scores = scores[scores["request_id"].isin(set(archive["request_id"]))]
    feedback = asyncio.run(read_feedback(ctx.settings.bootstrap, f"{ctx.pipeline}.feedback"))
    return archive, scores, feedback


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
    from pipelines.registry import demote as demote_events

    events = Context(pipeline, broker, data_dir, "models demote").change(demote_events, model_id)
    click.echo(f"{model_id} is now {events[-1]['role']}")


@models.command()
@click.argument("model_id")
@_PIPELINE
@_BROKER
@_DATA
@click.option("--force", is_flag=True, help="Retire even the last model that may answer.")
def retire(model_id, pipeline, broker, data_dir, force) -> None:
    """Take MODEL_ID out: unloaded by its group, forgotten by the policy; `list --all` still shows it."""
    from pipelines.registry import retire as retire_events

    Context(pipeline, broker, data_dir, "models retire").change(retire_events, model_id, force=force)
    click.echo(f"{model_id} is retired")


@models.command()
@click.argument("model_id")
@click.argument("preference", type=int)
@_PIPELINE
@_BROKER
@_DATA
def rank(model_id, preference, pipeline, broker, data_dir) -> None:
    """Set MODEL_ID's PREFERENCE: among challengers, lower answers first (the champion always leads)."""
    from pipelines.registry import rank as rank_events

    Context(pipeline, broker, data_dir, "models rank").change(rank_events, model_id, preference)
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

    from pipelines.replay import save_report

    ctx = Context(pipeline, broker, data_dir, "replay")
    state = ctx.state()
    if model_id not in state:
        raise click.ClickException(f"model {model_id!r} is not registered in {pipeline} ({', '.join(sorted(state)) or 'none'})")
    record = state[model_id]
    archive, scores, feedback = _traffic(ctx, since)
    if archive.empty:
        raise click.ClickException(f"no archived requests in {ctx.settings.data_dir / pipeline / 'archive'}"
                                   f"{' since ' + since if since else ''}; let the pipeline serve traffic first")
    try:
        model = _load(ctx, record)
    except Exception as exc:
        raise click.ClickException(f"cannot load {model_id}: {exc}") from None
    with Progress(transient=True) as progress:
        task = progress.add_task(f"replaying {len(archive)} requests through {model_id}", total=len(archive))
        report, candidate = _report(record, model, archive, scores, feedback, since, batch=batch,
                                    progress=lambda n: progress.advance(task, n))
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
    path = save_report(report, candidate, ctx.settings.data_dir / pipeline / "replays")
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
def retrain_command(pipeline, model_id, broker, data_dir, new_id, holdout, min_rows, confidence) -> None:
    """Train a new version of MODEL from the archive joined with feedback; register it as a shadow.

    The oldest labelled requests train it with MODEL's hyperparameters, the newest --holdout
    judge it against MODEL and the champion (table printed, figures recorded as the version's
    metrics). As a shadow it scores live traffic without answering; promote it with
    `rendezvous models promote`, or let --auto-promote do it when live feedback proves it better.
    """
    import hashlib

    from rich.console import Console
    from rich.table import Table

    from pipelines.registry import event, git_commit
    from pipelines.retrain import labelled_rows, retrain
    from tables.archive import read_archive
    from tables.feedback import read_feedback

    ctx = Context(pipeline, broker, data_dir, "retrain")
    state = ctx.state()
    if model_id not in state:
        raise click.ClickException(f"model {model_id!r} is not registered in {pipeline} (registered: {', '.join(sorted(state))})")
    record = state[model_id]
    champion = next((e for e in live_models(state) if e["role"] == "champion"), None)
    archive = read_archive(ctx.settings.data_dir / pipeline / "archive")
    feedback = asyncio.run(read_feedback(ctx.settings.bootstrap, f"{pipeline}.feedback"))
    current = _load(ctx, record)
    if current is None:
        raise click.ClickException(f"{model_id} is an external model: retrain it where it is served")
    try:
        rows = labelled_rows(archive, feedback, list(current.features))
        if len(rows) < min_rows:
            raise ValueError(f"only {len(rows)} archived requests have feedback (of {len(archive)} archived, {len(feedback)} "
                             f"labels); retraining needs --min-rows {min_rows}: send more feedback or lower --min-rows")
        result = retrain(current, rows, holdout, ctx.spec().task,
                         _load(ctx, champion) if champion and champion["model_id"] != model_id else None)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    new_id = new_id or next(f"{model_id}-r{n}" for n in range(1, 10_000) if f"{model_id}-r{n}" not in state)
    folder = ctx.settings.data_dir / pipeline / "retrain"
    folder.mkdir(parents=True, exist_ok=True)
    data_path = folder / f"{new_id}.csv"
    data_path.write_bytes(result.training_data)
    sha = ctx.store.put_bytes(result.artifact, new_id)
    metrics = dict(result.metrics, **({"auto_promote_confidence": confidence} if confidence else {}))
    new = event(pipeline, new_id, "1", "register", "shadow", record["flavour"], sha256=sha, by=whoami(),
                preference=1 + max((e["preference"] for e in state.values()), default=0), group=record.get("group"),
                features=list(current.features), metrics=metrics,
                training_data_sha256=hashlib.sha256(result.training_data).hexdigest(), git_commit=git_commit(Path(".")),
                artifact_name=f"{new_id}.{'skops' if record['flavour'] == 'sklearn' else 'ubj'}")
    ctx.store.record(new)
    ctx.publish([new])
    table = Table(title=f"{new_id}: retrained from {model_id} on {int(metrics['rows_train'])} labelled requests, "
                        f"judged on the newest {int(metrics['rows_holdout'])}")
    for column in ("model", "held-out " + ("accuracy" if ctx.spec().task == "classification" else "MAE")):
        table.add_column(column)
    table.add_row(f"{new_id} (new)", f"{metrics['holdout']:.4f}")
    table.add_row(f"{model_id} (current)", f"{metrics['current_holdout']:.4f}" if "current_holdout" in metrics else "-")
    if "champion_holdout" in metrics:
        table.add_row(f"{champion['model_id']} (champion)", f"{metrics['champion_holdout']:.4f}")
    Console(width=120).print(table)
    click.echo(f"registered {new_id} as a shadow in group {new['group']} (sha256 {sha[:12]}, training data {data_path})"
               + (f"; it is promoted automatically once it beats the champion with confidence {confidence}" if confidence else ""))
