"""The command line as people use it: real processes, real signals, a real broker."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml

from pipelines.jobs.train import agrawal_rows
from streams.kafka.broker import free_port, wait_for_broker

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "streams.cli"]


def _spawn(*args, env=None):
    return subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True)


def _read_until(process, words: str, timeout_s: float = 120.0) -> str:
    """Lines of the process's output up to (and with) the first one containing ``words``."""
    seen = []
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if words in line:
            return "".join(seen)
    raise AssertionError(f"never printed {words!r}; output so far:\n{''.join(seen)}")


def test_cli__broker_runs_in_the_foreground_stops_on_sigterm_and_keeps_its_log(tmp_path, run):
    """`rendezvous broker` twice on one data directory: what the first held, the second still has."""
    port, home = free_port(), tmp_path / "data"
    for turn in ("write", "read"):
        process = _spawn("broker", "--port", str(port), "--data-dir", str(home))
        try:
            assert f"RDV_BROKER=kafka://127.0.0.1:{port}" in _read_until(process, "embedded broker ready")
            wait_for_broker(f"127.0.0.1:{port}", timeout_s=10)
            if turn == "write":
                run(_produce(f"127.0.0.1:{port}", "kept", [b"one", b"two"]))
            else:
                assert [v for _, v in run(_read_topic(f"127.0.0.1:{port}", "kept"))] == [b"one", b"two"]
            process.send_signal(signal.SIGTERM)
            assert process.wait(60) == 0
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    assert (home / "broker" / "data" / "meta.properties").exists()


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


async def _read_topic(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from tables.results import records_until

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [0])]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        return [(m.key, m.value) async for m in records_until(consumer, await consumer.end_offsets(tps))]
    finally:
        await consumer.stop()


def test_cli__commands_without_a_broker_say_how_to_get_one(trained):
    result = subprocess.run([*CLI, "worker", str(trained[1])], capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if k != "RDV_BROKER"})
    assert result.returncode != 0
    assert "rendezvous broker" in result.stderr and "--broker" in result.stderr


def _spec(trained, tmp_path) -> tuple[Path, str]:
    directory, template = trained
    spec = yaml.safe_load(template.read_text())
    spec["pipeline"] = f"cli{free_port()}"
    for model in spec["models"]:
        model["artifact"] = str(directory / model["artifact"])
        model["training_data"] = str(directory / model["training_data"])
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, spec["pipeline"]


def _up(path: Path, web: int, data: Path) -> tuple[subprocess.Popen, str]:
    """`rendezvous up SPEC` on the embedded broker; returns once it printed that it is up, with the broker."""
    process = _spawn("up", str(path), "--port", str(web), env={"RDV_DATA_DIR": str(data), "RDV_ARCHIVE_FLUSH_S": "0.5"})
    try:
        out = _read_until(process, "Ctrl-C stops all of it", timeout_s=180)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert f"{yaml.safe_load(path.read_text())['pipeline']}.requests" in out
    assert f"http://127.0.0.1:{web}/v1/" in out and "(the embedded broker)" in out
    return process, re.search(r"RDV_BROKER=kafka://(\S+)", out).group(1)


def _stop(process: subprocess.Popen, path: Path) -> None:
    """Ctrl-C: `up` exits 0 and leaves no worker and no broker behind."""
    process.send_signal(signal.SIGINT)
    assert process.wait(90) == 0
    left = subprocess.run(["pgrep", "-f", f"streams.cli worker {path}"], capture_output=True, text=True).stdout
    assert left.strip() == "", "workers outlived `up`"
    broker = subprocess.run(["pgrep", "-f", str(path.parent / "data" / "broker")], capture_output=True, text=True).stdout
    assert broker.strip() == "", "the embedded broker outlived `up`"


def test_cli__up_on_the_embedded_broker_resumes_after_ctrl_c(trained, tmp_path, run):
    """`rendezvous up` without --broker, stopped with Ctrl-C and started again on the same data
    directory, resumes where it was: requests answered before the stop are not answered again,
    requests still open at the stop (their mailboxes waiting for the champion) are answered once,
    and the registry and the score state are as they were."""
    path, name = _spec(trained, tmp_path)
    web, data = free_port(), tmp_path / "data"
    process, bootstrap = _up(path, web, data)
    try:
        features = next(agrawal_rows(1))[0]
        answer = httpx.post(f"http://127.0.0.1:{web}/v1/{name}/predict", json={"features": features, "deadline_ms": 2000},
                            timeout=10)
        assert answer.status_code == 200 and answer.json()["status"] == "ok"  # `up` printed only once ready
        answered, still_open = run(_before_the_stop(bootstrap, name, path, web, data))
        _stop(process, path)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)

    process, bootstrap = _up(path, web, data)
    try:
        results, state, registry = run(_after_the_restart(bootstrap, name, web, data, answered + still_open))
        _stop(process, path)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    counts = Counter(r["request_id"] for r in results)
    assert all(counts[i] == 1 for i in answered), {i: counts[i] for i in answered if counts[i] != 1}
    assert all(counts[i] == 1 for i in still_open), {i: counts[i] for i in still_open if counts[i] != 1}
    by_id = {r["request_id"]: r for r in results}
    assert {by_id[i]["model_id"] for i in still_open} == {"xgb"}, "open mailboxes are decided by the champion's score"
    assert state["xgb"]["labelled"] == 50, "the score state came back from its changelog"
    assert registry["lr"]["role"] == "shadow", "the registry kept the demotion (a re-seed from the spec would say challenger)"


async def _before_the_stop(bootstrap: str, name: str, path: Path, web: int, data: Path) -> tuple[list[str], list[str]]:
    from streams.client import PipelineClient
    from tables.archive import read_archive

    labelled = list(agrawal_rows(100, seed=3))
    async with PipelineClient(bootstrap, name) as client:
        answered = [await client.send(x, deadline_ms=5000) for x, _ in labelled]
        assert not await client.wait_results(answered, 60)
        for rid, (_, label) in zip(answered[:50], labelled):
            await client.send_feedback(rid, label)
        assert await _until(lambda: _model_state(web, name).get("xgb", {}).get("labelled") == 50, 60)
        code, out = await _cli(bootstrap, data, name, "models", "demote", "lr")
        assert code == 0, out
        # the champion's group stops answering: new mailboxes stay open (30 s deadline) while lr scores them
        boosted = subprocess.run(["pgrep", "-f", f"streams.cli worker {path} --role group:boosted"],
                                 capture_output=True, text=True).stdout.split()
        assert len(boosted) == 1
        os.kill(int(boosted[0]), signal.SIGSTOP)
        still_open = [await client.send(x, deadline_ms=30_000) for x, _ in agrawal_rows(40, seed=4)]
        archive = data / name / "archive"
        assert await _until(lambda: set(still_open) <= set(read_archive(archive, features=False)["request_id"]), 60)
        assert not set(still_open) & set(client.received.results), "answered before the stop: nothing left open"
        os.kill(int(boosted[0]), signal.SIGKILL)  # (a stopped process would hold Ctrl-C up for 30 s)
    return answered, still_open


async def _after_the_restart(bootstrap: str, name: str, web: int, data: Path, ids: list[str]):
    from tables.results import read_records

    async def results():
        return [r for _, r in await read_records(bootstrap, f"{name}.results", "Result")]

    assert await _until_async(lambda found: set(ids) <= {r["request_id"] for r in found}, results, 90)
    code, out = await _cli(bootstrap, data, name, "models", "list", "--json")
    assert code == 0, out
    registry = {m["model_id"]: m for m in json.loads(out)}
    return await results(), _model_state(web, name), registry


def _model_state(web: int, name: str) -> dict:
    response = httpx.get(f"http://127.0.0.1:{web}/v1/{name}/models", timeout=10)
    return {m["id"]: m for m in response.json()["models"]}


async def _until(condition, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.2)
    return True


async def _until_async(condition, fetch, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while not condition(await fetch()):
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.5)
    return True


async def _cli(bootstrap: str, data: Path, name: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "RDV_BROKER": f"kafka://{bootstrap}", "RDV_DATA_DIR": str(data), "RDV_PIPELINE": name}
    process = await asyncio.create_subprocess_exec(*CLI, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    return process.returncode, out.decode()


def test_cli__up_restarts_a_killed_model_group_and_health_says_so(broker, trained, tmp_path, run):
    """SIGKILL a model group under `up`: every request still gets one Result, `up` says why it
    restarted it, and the probes and /v1/health show the restart."""
    path, name = _spec(trained, tmp_path)
    web, data = free_port(), tmp_path / "data"
    process = _spawn("up", str(path), "--port", str(web), "--broker", broker.url, env={"RDV_DATA_DIR": str(data)})
    base = f"http://127.0.0.1:{web}"
    try:
        _read_until(process, "Ctrl-C stops all of it", timeout_s=180)
        assert httpx.get(f"{base}/v1/health/live", timeout=10).json()["status"] == "alive"
        assert run(_until(lambda: httpx.get(f"{base}/v1/health/ready", timeout=10).status_code == 200, 30))
        before = json.loads((data / name / "logs" / "supervisor.json").read_text())["group:boosted"]
        probe = f"http://127.0.0.1:{before['port']}/v1/health"
        assert run(_until(lambda: httpx.get(f"{probe}/ready", timeout=10).status_code == 200, 30))
        assert {m["id"] for m in httpx.get(probe, timeout=10).json()["models"]} == {"xgb"}

        ids, missing, duplicates = run(_load_killing(broker.url, name, before["pid"]))
        said = _read_until(process, "worker group:boosted restarted", timeout_s=60)
        after = json.loads((data / name / "logs" / "supervisor.json").read_text())["group:boosted"]
        assert run(_until(lambda: _ready(f"http://127.0.0.1:{after['port']}/v1/health/ready"), 60))
        health = httpx.get(f"{base}/v1/health", timeout=10).json()
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        _stop(process, path)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert not missing and duplicates == 0, (len(missing), duplicates)
    assert "worker group:boosted exited (exit code -9 (SIGKILL)); restarting it in 1 s" in said
    assert after["restarts"] == 1 and after["pid"] != before["pid"] and after["cause"] == "exit code -9 (SIGKILL)"
    assert health["status"] == "degraded", health
    assert any(r.startswith("worker group:boosted restarted 1 times (last: exit code -9 (SIGKILL)")
               for r in health["reasons"]), health["reasons"]
    assert health["workers"]["group:boosted"]["restarts"] == 1
    assert re.search(r'rendezvous_worker_restarts\{pipeline="%s",role="group:boosted"\} 1\.0' % name, metrics), metrics[-3000:]


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:  # the restarted worker's port is not open yet
        return False


async def _load_killing(url: str, name: str, pid: int) -> tuple[list[str], set[str], int]:
    """600 requests at 100/s; the model group's process is SIGKILLed after the first 150."""
    from streams.client import PipelineClient

    async with PipelineClient(url, name) as client:
        ids = []
        for i, (x, _) in enumerate(agrawal_rows(600, seed=8)):
            if i == 150:
                os.kill(pid, signal.SIGKILL)
            ids.append(await client.send(x, deadline_ms=1000))
            await asyncio.sleep(0.01)
        missing = await client.wait_results(ids, 60)
        sentinel = await client.send(next(agrawal_rows(1, seed=9))[0], deadline_ms=1000)
        await client.wait_results([sentinel], 30)  # duplicates of the earlier ones would be in by now
        return ids, missing, client.received.duplicates


def test_cli__init_prepares_the_pipeline_once_and_again_changes_nothing(broker, trained, tmp_path, run):
    from tables.registry import read_registry

    path, name = _spec(trained, tmp_path)
    spec = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**spec, "quality": {"window_rows": 500}}))  # asks for quality checks: a profile
    env = {**os.environ, "RDV_DATA_DIR": str(tmp_path / "data")}
    first = subprocess.run([*CLI, "init", str(path), "--broker", broker.url], capture_output=True, text=True, env=env,
                           timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"pipeline {name} is ready" in first.stdout and "xgb v1 (champion)" in first.stdout
    assert "reference profile in the store" in first.stdout
    state = run(read_registry(broker.url, f"{name}.control"))
    again = subprocess.run([*CLI, "init", str(path), "--broker", broker.url], capture_output=True, text=True, env=env,
                           timeout=120)
    assert again.returncode == 0 and run(read_registry(broker.url, f"{name}.control")) == state
    assert set(state) == {"xgb", "lr", "canary"}
    assert (tmp_path / "data" / name / "profiles" / "current").exists()  # the spec names training_data
    refused = subprocess.run([*CLI, "init", str(path)], capture_output=True, text=True,
                             env={k: v for k, v in env.items() if k != "RDV_BROKER"}, timeout=60)
    assert refused.returncode != 0 and "needs a Kafka broker" in refused.stderr
