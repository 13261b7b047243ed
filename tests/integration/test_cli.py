"""The command line as people use it: real processes, real signals, real brokers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from pipelines.train import agrawal_rows
from streams.brokers import free_port, wait_for_broker

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


def test_cli__broker_runs_in_the_foreground_and_stops_on_sigterm():
    port = free_port()
    process = _spawn("broker", "--port", str(port))
    try:
        assert f"RDV_BROKER=kafka://127.0.0.1:{port}" in _read_until(process, "embedded broker ready")
        wait_for_broker(f"127.0.0.1:{port}", timeout_s=10)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        process.kill()


def test_cli__commands_without_a_broker_say_how_to_get_one(trained):
    result = subprocess.run([*CLI, "worker", str(trained[1])], capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items() if k != "RDV_BROKER"})
    assert result.returncode != 0
    assert "rendezvous broker" in result.stderr and "--broker" in result.stderr


def test_cli__up_prints_topics_and_rest_answers_then_ctrl_c_stops_everything(broker, trained, tmp_path):
    directory, template = trained
    spec = yaml.safe_load(template.read_text())
    spec["pipeline"] = f"cli{free_port()}"
    for model in spec["models"]:
        model["artifact"] = str(directory / model["artifact"])
        model["training_data"] = str(directory / model["training_data"])
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    port = free_port()
    process = _spawn("up", str(path), "--broker", broker.url, "--port", str(port),
                     env={"RDV_DATA_DIR": str(tmp_path / "data"), "RDV_BROKER_KIND": broker.kind})
    try:
        out = _read_until(process, "Ctrl-C stops all of it")
        assert f"{spec['pipeline']}.requests" in out and f"http://127.0.0.1:{port}/v1/{spec['pipeline']}/predict" in out
        features = next(agrawal_rows(1))[0]
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/{spec['pipeline']}/predict",
                            json={"features": features, "deadline_ms": 2000}, timeout=10)
        assert answer.status_code == 200 and answer.json()["status"] == "ok"  # `up` printed only once ready
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
        workers = subprocess.run(["pgrep", "-f", f"streams.cli worker {path}"], capture_output=True, text=True)
        assert workers.stdout.strip() == "", "workers outlived `up`"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
