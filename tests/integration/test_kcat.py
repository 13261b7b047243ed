"""librdkafka clients take part on the default broker: kcat produces JSON requests to a pipeline on
`rendezvous broker`, confluent-kafka (librdkafka too) reads their JSON Results.

librdkafka is what confluent-kafka (Python), confluent-kafka-go, .NET, Ruby, PHP and R clients
use. Its default partitioner is not Java's murmur2, so this also proves that scores and Results
follow the request's own partition instead of re-hashing its key.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from confluent_kafka import Consumer, TopicPartition

from pipelines.jobs.train import agrawal_rows
from streams.kafka.broker import free_port, wait_for_broker
from tests.conftest import require
from tests.integration.test_cli import _read_until
from streams.testing import make_stack, ready_client

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cli_broker(tmp_path_factory):
    """`rendezvous broker` as a user runs it, in the foreground on its own port."""
    port, home = free_port(), tmp_path_factory.mktemp("cli-broker")
    process = subprocess.Popen([sys.executable, "-m", "streams.cli", "broker", "--port", str(port), "--data-dir", str(home)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _read_until(process, f"RDV_BROKER=kafka://127.0.0.1:{port}")
        wait_for_broker(f"127.0.0.1:{port}", timeout_s=10)
        yield SimpleNamespace(url=f"kafka://127.0.0.1:{port}")  # all make_stack needs of a broker
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def _json_results(bootstrap: str, topic: str, partitions: int, want: set[str], timeout_s: float = 60) -> dict[str, list]:
    """Every JSON Result on ``topic`` until ``want`` are all there, read with confluent-kafka."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"librdkafka-{time.monotonic_ns()}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])  # from the beginning
    found: dict[str, list] = {}
    end = time.monotonic() + timeout_s
    try:
        while time.monotonic() < end and not want <= set(found):
            message = consumer.poll(0.5)
            if message is None or message.error() or not message.value().startswith(b"{"):
                continue  # (Avro Results are not for this client)
            record = json.loads(message.value())
            found.setdefault(record["request_id"], []).append(record)
        # anything more already written (a duplicate) arrives within a few more polls
        for _ in range(4):
            message = consumer.poll(0.5)
            if message is not None and not message.error() and message.value().startswith(b"{"):
                record = json.loads(message.value())
                found.setdefault(record["request_id"], []).append(record)
    finally:
        consumer.close()
    return found


def test_kcat__json_requests_in_json_results_out_on_the_embedded_broker(cli_broker, trained, tmp_path, run):
    kcat = require("kcat", "a librdkafka client producing requests; apt-get install kcat")
    stack = make_stack(cli_broker, trained, tmp_path, deadline_ms=2000)
    ids = [f"kc-{i}" for i in range(20)]
    lines = "".join(f"{rid}:{json.dumps({'request_id': rid, 'features': x})}\n"
                    for rid, (x, _) in zip(ids, agrawal_rows(20, seed=21)))
    with stack:
        run(_ready_then_close(stack))
        subprocess.run([kcat, "-P", "-b", stack.settings.bootstrap, "-t", f"{stack.spec.name}.requests", "-K:"],
                       input=lines.encode(), check=True, timeout=60)
        found = _json_results(stack.settings.bootstrap, f"{stack.spec.name}.results", stack.spec.partitions, set(ids))
    assert set(ids) <= set(found), f"no JSON Result for {sorted(set(ids) - set(found))}"
    assert all(len(found[rid]) == 1 for rid in ids), {rid: len(found[rid]) for rid in ids if len(found[rid]) != 1}
    assert all(found[rid][0]["status"] == "ok" and found[rid][0]["prediction"] in (0, 1) for rid in ids)


async def _ready_then_close(stack):
    client = await ready_client(stack)
    await client.__aexit__(None, None, None)


def test_kcat__the_native_load_generator_gets_one_result_per_request_and_labels_meet_them(broker, trained, tmp_path,
                                                                                          run):
    """The benchmarks' librdkafka load generator: every request answered once, and its feedback
    (murmur2-partitioned like the requests) joins them — none refused as unknown."""
    from benchmarks.loadgen import NativeClient
    from tests.integration.test_feedback import _until

    stack = make_stack(broker, trained, tmp_path, deadline_ms=500)

    async def scenario():
        ready = await ready_client(stack)
        try:
            pairs = list(agrawal_rows(200, seed=51))
            async with NativeClient(stack.settings.bootstrap, stack.spec.name) as client:
                ids = await client.run_load([x for x, _ in pairs], 200.0)
                assert not await client.wait_results(ids, timeout_s=60)
                assert client.received.duplicates == 0 and set(client.received.results) == set(ids)
                assert all(client.received.results[i]["request_id"] == i for i in ids)
                assert len(client.latencies_ms(ids)) == 200 and min(client.latencies_ms(ids)) > 0
                for rid, (_, label) in zip(ids, pairs):
                    await client.send_feedback(rid, label)
            state = await _until(lambda: _labelled(stack, 200), 30)
            assert state, "the labels did not all join their requests"
            assert not [d for d in ready.received.dlq if "unknown request" in d.get("reason", "")], ready.received.dlq
        finally:
            await ready.__aexit__(None, None, None)

    with stack:
        run(scenario())


async def _labelled(stack, n: int):
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.settings.web_port}", timeout=10) as http:
        models = (await http.get(f"/v1/{stack.spec.name}/models")).json()["models"]
    return models if max((m.get("labelled") or 0 for m in models), default=0) >= n else None
