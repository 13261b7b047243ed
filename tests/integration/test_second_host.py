"""A second data directory against a broker that already has the pipeline (another host, or a
second `demo`): the same artifacts are taken in; different ones are refused at start with what
to do — never a worker that dies on a missing blob."""

from __future__ import annotations

import asyncio
import json

import httpx
import yaml
import pytest
from click.testing import CliRunner

from pipelines.jobs.lifecycle import LifecycleError, live_pipeline
from pipelines.spec import load_spec
from streams.cli import main
from streams.kafka.topics import ensure_topics
from streams.testing import make_stack

pytestmark = pytest.mark.integration


def test_second_host__same_artifacts_are_taken_in_others_are_refused_with_what_to_do(broker, trained, tmp_path, run):
    stack = make_stack(broker, trained, tmp_path)  # not started: only its spec and settings
    spec, settings = stack.spec, stack.settings
    run(ensure_topics(settings, spec.name, spec.partitions))  # what `up` does first
    first = run(live_pipeline(spec, settings, tmp_path / "host-a"))  # registers the models, blobs in host-a
    assert all(m.artifact.is_relative_to(tmp_path / "host-a") and m.artifact.exists() for m in first.models)

    # host b has the same model files (the same spec): their bytes are what the registry names
    second = run(live_pipeline(spec, settings, tmp_path / "host-b"))
    assert [m.sha256 for m in second.models] == [m.sha256 for m in first.models]
    assert all(m.artifact.is_relative_to(tmp_path / "host-b") and m.artifact.exists() for m in second.models)

    # host c was given another xgb under the same pipeline name: refused, and told what to do
    data = yaml.safe_load(spec.source.read_text())
    xgb = next(m for m in data["models"] if m["id"] == "xgb")
    xgb["artifact"], xgb["sha256"] = xgb["artifact"].replace("xgb.ubj", "xgb2.ubj"), None
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(data))
    with pytest.raises(LifecycleError) as refused:
        run(live_pipeline(load_spec(other), settings, tmp_path / "host-c"))
    message = str(refused.value)
    assert f"pipeline {spec.name} already exists" in message and "xgb v1" in message
    assert "--data-dir" in message and "new pipeline name" in message
    # a worker started there says the same and exits, instead of dying on the blob
    result = CliRunner().invoke(main, ["worker", str(other), "--role", "group:boosted", "--broker", settings.broker,
                                       "--data-dir", str(tmp_path / "host-c")])
    assert result.exit_code != 0 and "already exists" in result.output, result.output


def test_second_host__hosts_that_share_only_kafka_and_the_store(broker, trained, tmp_path, run, s3):
    """Two core workers, two replicas of one model group, the other group and the quality worker,
    each with its own data directory: they share only Kafka and a real S3 server. A host that
    archived nothing replays, retrains and reports; a promotion made there reaches every host."""
    import dataclasses

    from pipelines.jobs.lifecycle import Lifecycle
    from pipelines.jobs.report import write_report
    from pipelines.jobs.train import agrawal_rows
    from pipelines.registry import ArtifactStore, event
    from streams.kafka.store import Store
    from streams.testing import all_answered, ready_client
    from tables.archive import read_archive, read_scores

    url = s3.bucket("hosts") + "/rdv"
    stack = make_stack(broker, trained, tmp_path, deadline_ms=5000, store=url,
                       spec={"quality": {"window_rows": 300, "min_rows": 100, "window_s": 5}})
    hosts = tmp_path / "hosts"
    stack.hosts = {role: hosts / role.replace(":", "-").replace("#", "-") for role in
                   ["core", "core#2", "group:boosted", "group:boosted#2", "group:linear", "quality"]}
    labelled = list(agrawal_rows(900, seed=5))
    ops = dataclasses.replace(stack.settings, data_dir=hosts / "ops")  # archived nothing, serves nothing
    name = stack.spec.name

    async def scenario():
        client = await ready_client(stack)
        try:
            for extra in ("core#2", "group:boosted#2"):
                stack.start_worker(extra)
            ids = await client.run_load([x for x, _ in labelled[:600]], rate_per_s=150)
            missing = await all_answered(client, ids)
            for rid, (_, label) in zip(ids, labelled):
                await client.send_feedback(rid, label)
            archived = Store(url, hosts / "ops")
            # the core workers publish their files within a flush (5 s): requests and Scores are two
            # datasets flushed on timers of their own; wait for every request and xgb's Score of each
            for _ in range(120):
                frame = read_archive(archived.pull(f"{name}/archive", ".parquet"))
                scores = read_scores(archived.pull(f"{name}/scores", ".parquet"))
                if set(ids) <= set(frame["request_id"]) <= set(scores.loc[scores["model_id"] == "xgb", "request_id"]):
                    break
                await asyncio.sleep(0.5)
            lifecycle = Lifecycle(name, ops)
            report, _, saved = await lifecycle.replay("lr")
            retrained = await lifecycle.retrain("xgb", min_rows=200)
            promoted = await lifecycle.promote(retrained.record["model_id"], force=True)
            # each core worker applies the promotion when its registry consumer reads it: wait until both
            # say so (their /models), then every answer must be the new version's
            champion = retrained.record["model_id"]
            roles: dict[str, str | None] = {}
            async with httpx.AsyncClient(timeout=5) as http:
                for _ in range(150):
                    for role in ("core", "core#2"):
                        page = f"http://127.0.0.1:{stack.supervision[role]['port']}/v1/{name}/models"
                        try:
                            roles[role] = {m["id"]: m["role"] for m in (await http.get(page)).json()["models"]}.get(champion)
                        except httpx.TransportError as exc:
                            roles[role] = f"{page}: {exc!r}"
                    if set(roles.values()) == {"champion"}:
                        break
                    await asyncio.sleep(0.2)
            assert set(roles.values()) == {"champion"}, roles
            after = await client.run_load([x for x, _ in labelled[600:750]], rate_per_s=150)
            missing |= await all_answered(client, after)
            index = await write_report(name, ops, hosts / "ops" / "report")

            # a version 2 whose blob is damaged in the store: both replicas refuse it, version 1 serves on
            new, blobs = retrained.record, ArtifactStore.of(ops)
            sha = blobs.put(trained[0] / "models" / "xgb2.ubj")
            stored = s3.directory / "objects" / "hosts" / "rdv" / "registry" / "blobs" / sha[:2] / sha
            stored.write_bytes(stored.read_bytes()[:-10] + b"0123456789")
            await lifecycle.publish([event(name, new["model_id"], "2", "register", "champion", "xgboost",
                                           sha256=sha, group=new["group"], features=new["features"])])
            logs = [stack.log_dir / f"{role}.log" for role in ("group-boosted", "group-boosted#2")]
            for _ in range(300):
                if all("corrupt or replaced" in log.read_text() for log in logs):
                    break
                await asyncio.sleep(0.2)
            damaged = await client.run_load([x for x, _ in labelled[750:]], rate_per_s=150)
            missing |= await all_answered(client, damaged)
            return (ids, after + damaged, missing, frame, report, saved, retrained, promoted, index, client.received,
                    [log.read_text() for log in logs])
        finally:
            await client.__aexit__(None, None, None)

    with stack:
        ids, after, missing, frame, report, saved, retrained, promoted, index, received, logs = run(scenario())
        stack.check_alive()
    assert not missing and received.duplicates == 0
    # the two core workers archived their partitions into one dataset, read from a host that wrote none of it
    assert set(ids) <= set(frame["request_id"]) and frame["request_id"].is_unique
    assert not (hosts / "ops" / name / "archive" / "spool").exists()
    assert report.rows >= len(ids) and report.labelled >= len(ids)
    # the Scores both core workers recorded, compared with the replay made here
    assert report.compared["xgb"] >= len(ids) and report.accuracy["xgb"] > 0.8, report
    assert Store(url, tmp_path / "elsewhere").read_text(f"{name}/replays/{saved.name}") is not None
    new = retrained.record["model_id"]
    assert retrained.record["role"] == "shadow" and promoted.events
    # the promotion reached both core workers (every partition): once both said so, every answer is
    # the new version's (how long the switch takes on one worker: test_lifecycle measures it)
    answered = [(received.results[i]["model_id"], received.results[i]["model_version"]) for i in after]
    assert answered and set(answered) == {(new, "1")}, [a for a in answered if a != (new, "1")]
    sha = retrained.record["artifact_sha256"]
    for host in ("group-boosted", "group-boosted-2"):
        assert (hosts / host / "registry" / "blobs" / sha[:2] / sha).exists(), host
    # the quality worker, on a host of its own, checked windows of the archive and published them
    windows = Store(url, tmp_path / "elsewhere").read_text(f"{name}/quality/windows.jsonl")
    assert windows and sum(json.loads(line)["rows"] for line in windows.splitlines()) >= 300
    assert "Latency" in index.read_text()
    for log in logs:  # the damaged version 2 was refused with the reason, on each replica
        assert "corrupt or replaced" in log and "version 1 keeps serving" in log, log[-3000:]
