"""`up`'s supervisor with real processes, and the health verdicts (no broker needed)."""

import subprocess
import sys

import pytest

from pipelines.rendezvous import Rendezvous
from pipelines.mailbox import DictStore
from pipelines.spec import load_spec
from streams.health import Probes, read_supervision
from streams.kafka.settings import Settings
from streams.stack import GaveUp, Stack


def _stack(tmp_path, demo_spec, limit=2):
    stack = Stack(load_spec(demo_spec), Settings(broker="kafka://127.0.0.1:1", data_dir=tmp_path,
                                                 restart_limit=limit, restart_window_s=60))
    stack.log_dir.mkdir(parents=True)
    started = []

    def start_worker(role):  # a worker that fails at once, as a broken one would
        (stack.log_dir / f"{role.replace(':', '-')}.log").write_text(f"line 1\nTraceback: {role} is broken\n")
        stack.workers[role] = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
        stack.workers[role].wait()
        started.append(role)
        stack.supervision.setdefault(role, {"restarts": 0})["pid"] = stack.workers[role].pid
        return stack.workers[role]

    stack.start_worker = start_worker
    return stack, started


@pytest.fixture
def demo_spec(tmp_path_factory):
    from pipelines.jobs.train import train_demo_models

    return train_demo_models(tmp_path_factory.mktemp("demo"), n_train=500)


def test_supervisor__restarts_with_backoff_says_why_and_gives_up_loudly(tmp_path, demo_spec):
    stack, started = _stack(tmp_path, demo_spec, limit=2)
    said = []
    stack.start_worker("group:boosted")
    stack.supervise(said.append, now=100.0)  # crash 1: restart in 1 s
    assert "exited (exit code 3); restarting it in 1 s" in said[0] and "is broken" in said[0]
    stack.supervise(said.append, now=100.5)
    assert started == ["group:boosted"]  # not yet: the backoff
    stack.supervise(said.append, now=101.0)
    assert started == ["group:boosted"] * 2 and said[-1] == "worker group:boosted restarted (restart 1)"
    stack.supervise(said.append, now=101.5)  # crash 2: 2 s
    assert "restarting it in 2 s" in said[-1]
    stack.supervise(said.append, now=103.5)
    status = read_supervision(stack.log_dir)["group:boosted"]
    assert status["restarts"] == 2 and status["cause"] == "exit code 3"
    with pytest.raises(GaveUp, match=r"group:boosted crashed 3 times within 60 s \(last: exit code 3\)"):
        stack.supervise(said.append, now=104.0)  # crash 3 within the window: limit 2
    assert read_supervision(stack.log_dir)["gave_up"] == "group:boosted"


def test_supervisor__a_worker_stopped_on_purpose_is_not_restarted(tmp_path, demo_spec):
    stack, started = _stack(tmp_path, demo_spec)
    stack.start_worker("core")
    stack.stop_worker("core")
    stack.supervise(lambda line: None, now=1.0)
    assert started == ["core"] and not stack._due


def test_health__degraded_and_not_ready_with_reasons():
    probes = Probes("core", not_ready=[lambda: []], degraded=[lambda: ["model x has not scored for 12 s"]],
                    details=lambda: {"pipeline": "p"})
    assert probes.live()[0] == 200
    assert probes.ready() == (200, {"status": "ready", "role": "core"})
    assert probes.health() == (200, {"status": "degraded", "role": "core", "pipeline": "p",
                                     "reasons": ["model x has not scored for 12 s"]})
    waiting = Probes("group:a", not_ready=[lambda: ["has not joined its consumer group yet"]])
    assert waiting.ready() == (503, {"status": "not ready", "role": "group:a",
                                     "reasons": ["has not joined its consumer group yet"]})
    assert waiting.health()[1]["status"] == "not ready"


def test_health__a_model_is_silent_only_while_requests_keep_coming(demo_spec):
    clock = [0.0]
    server = Rendezvous(load_spec(demo_spec), DictStore(), clock=lambda: clock[0])
    assert server.silent(10) == {}  # no traffic: no verdict
    for i in range(30):  # a request a second; only lr and the canary answer after the 5th
        clock[0] = i * 1000.0
        server.on_request({"request_id": f"r{i}", "features": {}, "deadline_ms": None, "tenant": None,
                           "reply_to": None, "sent_at": None}, 0)
        for model in (["xgb"] if i < 5 else []) + ["lr", "canary"]:
            server.on_score({"request_id": f"r{i}", "model_id": model, "model_version": "1", "role": "x",
                             "prediction": 1, "probabilities": None, "status": "ok", "latency_ms": 1.0}, 0)
    assert server.silent(10) == {"xgb": 25.0}
    assert server.silent(30) == {}
