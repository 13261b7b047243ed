"""Models in other languages: the Java (kafka-clients) and Node.js (kafkajs) workers of examples/
score real requests, take part in the rendezvous, and answer when they are the champion."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from tables.archive import read_scores
from tests.conftest import require
from streams.testing import make_stack, ready_client, rows
from tests.integration.test_lifecycle import _wait, cli

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
JAVA, NODE = ROOT / "examples" / "java-worker", ROOT / "examples" / "node-worker"


def _require(*tools: str) -> None:
    for tool in tools:
        require(tool, "the external-worker tests build and run the example workers")


@pytest.fixture(scope="session")
def java_worker():
    _require("java", "mvn")
    subprocess.run(["mvn", "-q", "-f", str(JAVA / "pom.xml"), "package"], check=True, timeout=600)
    classpath = f"{JAVA / 'target' / 'java-worker-1.jar'}{os.pathsep}{JAVA / 'target' / 'lib' / '*'}"
    return ["java", "-cp", classpath, "dev.rendezvous.examples.ModelWorker"]


@pytest.fixture(scope="session")
def node_worker():
    _require("node", "npm")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE, check=True, timeout=600)
    return ["node", str(NODE / "worker.js")]


async def _start(command: list[str], stack, model_id: str, model: Path):
    process = await asyncio.create_subprocess_exec(
        *command, "--bootstrap", stack.settings.bootstrap, "--pipeline", stack.spec.name, "--model-id", model_id,
        "--model", str(model), "--schemas", str(ROOT / "schemas" / "avro"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    seen = []
    try:
        while True:
            line = (await asyncio.wait_for(process.stdout.readline(), 120)).decode()
            seen.append(line)
            if not line or line.startswith("ready:"):
                break
    except asyncio.TimeoutError:
        pass
    if not seen or not seen[-1].startswith("ready:"):
        process.kill()
        raise AssertionError(f"{command[0]} worker never became ready:\n{''.join(seen)}")
    return process


def test_external_workers__java_and_node_score_beside_python_and_each_answers_as_champion(
        java_worker, node_worker, broker, trained, tmp_path, run):
    """One pipeline, models in three languages at once: each worker scores every request, its
    Scores take part in the rendezvous, and each answers once it is promoted."""
    directory, _ = trained
    stack = make_stack(broker, trained, tmp_path, deadline_ms=2000, archive_flush_s=0.5)
    workers = {"java-lr": java_worker, "node-lr": node_worker}

    async def scenario():
        client = await ready_client(stack, watch_scores=True)
        started = await asyncio.gather(*(_start(command, stack, model_id, directory / "models" / "lr.json")
                                         for model_id, command in workers.items()), return_exceptions=True)
        processes = [p for p in started if not isinstance(p, BaseException)]
        try:
            for failure in [p for p in started if isinstance(p, BaseException)]:
                raise failure
            for model_id in workers:
                code, out = await cli(stack, "models", "register", model_id, "--flavour", "external", "--role", "challenger")
                assert code == 0, out
            first = [await client.send(r) for r in rows(150, seed=31)]
            scored = await client.wait_for(lambda r: all(set(workers) <= set(r.scores.get(i, {})) for i in first), 60)
            answered = await client.wait_results(first, 30)
            # The checks compare its recorded answers with the champion's: this lr agrees with xgb too
            # rarely (it is a weaker model), so the promotion is blocked ...
            base = stack.settings.data_dir / stack.spec.name / "scores"
            assert await _wait(lambda: (read_scores(base)["model_id"] == "java-lr").sum() >= 150, 60)
            blocked = await cli(stack, "models", "promote", "java-lr")
            # ... unless forced (and the event records that); then each language in turn is the champion
            after = {}
            for model_id in workers:
                forced = await cli(stack, "models", "promote", model_id, "--force")
                assert forced[0] == 0, forced[1]
                after[model_id] = [await client.send(r) for r in rows(60, seed=32)]
                assert not await client.wait_results(after[model_id], 60)
            return first, after, scored, answered, blocked, client.received
        finally:
            for process in processes:
                process.terminate()
                await asyncio.wait_for(process.wait(), 30)
            await client.__aexit__(None, None, None)

    with stack:
        first, after, scored, answered, blocked, received = run(scenario())
    assert scored, f"not every request was scored by {sorted(workers)}"
    assert not answered
    for model_id in workers:  # it computes what the Python lr computes, from the exported coefficients
        same = sum(received.scores[i][model_id]["prediction"] == received.scores[i]["lr"]["prediction"] for i in first)
        assert same >= 0.99 * len(first), f"{model_id} agrees with lr on only {same}/{len(first)}"
    assert all(received.results[i]["model_id"] == "xgb" for i in first)  # challengers: xgb answers first
    assert blocked[0] != 0 and "agreement" in blocked[1] and "blocked" in blocked[1], blocked[1]
    # promoted, it is the champion: its answers are returned (the first few requests may still
    # meet the old ranking: the core applies the change within a fetch of its publication)
    for model_id, ids in after.items():
        tail = [received.results[i] for i in ids[10:]]
        assert all(r["model_id"] == model_id and r["status"] == "ok" for r in tail), (model_id, [r["model_id"] for r in tail])
