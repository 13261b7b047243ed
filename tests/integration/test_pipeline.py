"""The Rendezvous core end to end on the real broker: requests -> model groups -> one Result each."""

from __future__ import annotations

import signal
import time
from collections import Counter

import httpx
import pytest

from tables.archive import read_archive
from streams.testing import all_answered, diagnose_lost, make_stack, ready_client, rows
from tests.integration.test_lifecycle import _wait

pytestmark = pytest.mark.integration


def test_pipeline__every_request_gets_exactly_one_result(broker, trained, tmp_path, run):
    # A generous deadline: this test is about correctness, not speed (that is benchmarks/).
    stack = make_stack(broker, trained, tmp_path, deadline_ms=5000)

    async def scenario():
        client = await ready_client(stack, watch_scores=True)
        try:
            ids = await client.run_load(rows(1000), rate_per_s=400)
            missing = await all_answered(client, ids)
            # An early answer does not wait for the slower models: their scores may still be on
            # the way when the last Result is in, so wait for them (every model of both groups
            # scores every request, the canary too).
            models = {"xgb", "lr", "canary"}
            all_scored = await client.wait_for(lambda r: all(set(r.scores.get(i, {})) == models for i in ids), 60)
            return ids, missing, all_scored, client.received
        finally:
            await client.__aexit__(None, None, None)

    with stack:
        ids, missing, all_scored, received = run(scenario())
    assert not missing, f"{len(missing)} requests got no result"
    assert received.duplicates == 0
    statuses = [received.results[i]["status"] for i in ids]
    assert set(statuses) == {"ok"}
    assert all_scored, Counter(frozenset(received.scores.get(i, {})) for i in ids)
    answered_by = {received.results[i]["model_id"] for i in ids if received.results[i]["status"] == "ok"}
    assert answered_by <= {"xgb", "lr"}  # the canary is scored but never returned
    chosen = received.results[ids[0]]
    assert {s["model_id"] for s in chosen["scores"]} >= {chosen["model_id"]}
    # the decoy archived every request exactly once (after the stop flushed its last Parquet file)
    archive = read_archive(stack.settings.data_dir / stack.spec.name / "archive")
    assert set(ids) <= set(archive["request_id"]) and archive["request_id"].is_unique
    assert archive.set_index("request_id").loc[ids[5], "f_age"] == rows(1000)[5]["age"]


def test_pipeline__stopped_model_group_leaves_answers_to_the_others(broker, trained, tmp_path, run):
    # A generous deadline so a slow moment of the machine cannot turn answers into timeouts:
    # what is tested is the logic (fallback, then not waiting for a model known to be down).
    stack = make_stack(broker, trained, tmp_path, deadline_ms=1000)

    async def scenario():
        client = await ready_client(stack)
        try:
            before = await client.run_load(rows(200), rate_per_s=200)
            stack.stop_worker("group:boosted")  # xgb, the top preference, goes away mid-stream
            after = await client.run_load(rows(400, seed=5), rate_per_s=100)
            missing = await client.wait_results(before + after, timeout_s=60)
            return before, after, missing, client.received
        finally:
            await client.__aexit__(None, None, None)

    with stack:
        before, after, missing, received = run(scenario())
    assert not missing and received.duplicates == 0
    answers = [received.results[i] for i in after]
    assert all(r["status"] == "ok" and r["model_id"] == "lr" for r in answers), Counter(
        (r["status"], r["model_id"], r["reason"][:50]) for r in answers)
    # xgb is only known to be down after RDV_MISS_LIMIT requests waited for it until their
    # deadline (when exactly depends on how long the group takes to shut down); after that
    # lr answers without waiting.
    waited = [i for i in before + after if "xgb had not answered" in received.results[i]["reason"]]
    assert len(waited) >= stack.settings.miss_limit
    assert all("set aside: xgb (missed" in r["reason"] for r in answers[-100:]), Counter(r["reason"][-60:] for r in answers[-100:])
    assert all(r["latency_ms"] < stack.spec.deadline_ms for r in answers[-100:])


def test_pipeline__rest_predict_round_trip(broker, trained, tmp_path, run):
    stack = make_stack(broker, trained, tmp_path)
    base = f"http://127.0.0.1:{stack.settings.web_port}"
    with stack:
        run(_ready_then_close(stack))
        with httpx.Client(base_url=base, timeout=10) as http:
            features = rows(1)[0]
            answer = http.post(f"/v1/{stack.spec.name}/predict", json={"features": features, "deadline_ms": 500})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["status"] == "ok" and body["model_id"] == "xgb" and body["prediction"] in (0, 1)
            assert body["policy"] == "preference" and body["request_id"]
            invalid = http.post(f"/v1/{stack.spec.name}/predict", json={"features": {"age": "old"}, "deadline_ms": -1})
            assert invalid.status_code == 400 and "deadline_ms" in invalid.json()["error"]
            missing = http.post(f"/v1/{stack.spec.name}/predict", json={"deadline_ms": 50})
            assert missing.status_code == 400 and "features" in missing.json()["error"]
            assert http.post("/v1/nope/predict", json={"features": features}).status_code == 404
            huge = http.post(f"/v1/{stack.spec.name}/predict", json={"features": features, "tenant": "x" * 300_000})
            assert huge.status_code == 413 and "262,144" in huge.json()["error"]
            health = http.get("/v1/health").json()
            assert health["status"] == "ok" and health["ranking"] == ["xgb", "lr"], health["reasons"]
            # Faust's own views (table contents, topology) are off unless RDV_FAUST_VIEWS=1
            for path in ("/table/", f"/table/{stack.spec.name}-mailboxes/", "/router/", "/graph/"):
                assert http.get(path).status_code == 404, path
            # no model left: the deadline passes, the caller gets 504 with the timeout Result
            stack.stop_worker("group:boosted")
            stack.stop_worker("group:linear")
            late = http.post(f"/v1/{stack.spec.name}/predict", json={"features": features, "deadline_ms": 300})
            assert late.status_code == 504, late.text
            assert late.json()["status"] == "timeout" and "deadline passed" in late.json()["reason"]
            # /metrics in Prometheus format; consumer lag is measured every few seconds, so wait for it
            lagged = run(_wait(lambda: _metrics(http).get(("rendezvous_consumer_lag", f"rdv-{stack.spec.name}-core",
                                                           f"{stack.spec.name}.requests")) is not None, 30))
            metrics = _metrics(http)
            # no model group has members now: /v1/health says degraded and names them
            empty = [f"consumer group rdv-{stack.spec.name}-group-{g} has no members" for g in ("boosted", "linear")]
            degraded = run(_wait(lambda: set(empty) <= set(http.get("/v1/health").json()["reasons"]), 30))
            health = http.get("/v1/health").json()
            ready = http.get("/v1/health/ready")
    assert degraded and health["status"] == "degraded", (health["consumer_groups"], health["reasons"])
    assert ready.status_code == 200  # the core itself is ready: it answers (with timeouts) and says why
    assert lagged, sorted(k for k in metrics if k[0] == "rendezvous_consumer_lag")
    assert metrics[("rendezvous_results_total", "ok")] >= 1 and metrics[("rendezvous_results_total", "timeout")] == 1
    assert metrics[("rendezvous_score_latency_seconds_count", "xgb")] >= 1
    assert metrics[("rendezvous_answers_total", "xgb")] >= 1
    assert metrics[("rendezvous_deadline_misses_total", "xgb")] == 1


def _metrics(http) -> dict[tuple, float]:
    """``(name, model or group or status) -> value`` summed over the other labels; lag by (group, topic)."""
    from prometheus_client.parser import text_string_to_metric_families

    response = http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = sample.labels
            key = labels.get("model") or labels.get("group") or labels.get("status")
            if sample.name == "rendezvous_consumer_lag":
                out[(sample.name, labels["group"], labels["topic"])] = sample.value
            elif sample.name.endswith("_bucket"):
                continue
            else:
                out[(sample.name, key)] = out.get((sample.name, key), 0) + sample.value
    return out


async def _ready_then_close(stack):
    client = await ready_client(stack)
    await client.__aexit__(None, None, None)


def test_pipeline__restarted_rendezvous_keeps_one_result_per_request(broker, trained, tmp_path, run):
    stack = make_stack(broker, trained, tmp_path)

    async def scenario():
        client = await ready_client(stack)
        try:
            first = await client.run_load(rows(300), rate_per_s=300)
            code = stack.stop_worker("core", signal.SIGTERM)
            stack.start_worker("core")
            second = await client.run_load(rows(300, seed=8), rate_per_s=300)
            missing = await all_answered(client, first + second, timeout_s=90)
            return first + second, missing, client.received, code
        finally:
            await client.__aexit__(None, None, None)

    with stack:
        ids, missing, received, code = run(scenario())
    assert code == 0, f"the core did not stop cleanly on SIGTERM (exit {code})"
    if missing:
        archived = set(read_archive(stack.settings.data_dir / stack.spec.name / "archive")["request_id"])
        lost = sorted(missing)
        raise AssertionError(f"{len(missing)} requests got no result across the restart: "
                             f"{[(i, 'first' if i in ids[:300] else 'second', i in archived) for i in lost[:5]]}\n"
                             f"{run(diagnose_lost(stack, lost))}\ncore log (rendezvous lines):\n"
                             + "\n".join(line for line in stack.log_tail("core", 10**7).splitlines()
                                         if "rendezvous" in line or "Signal" in line or "Ready" in line))
    assert received.duplicates == 0


def test_pipeline__open_mailboxes_survive_a_restart_of_the_rendezvous(broker, trained, tmp_path, run):
    """Requests whose mailboxes are open when the core stops (no model answered yet, deadline
    not passed) and whose offsets were committed: only the mailbox table remembers them."""
    stack = make_stack(broker, trained, tmp_path, archive_flush_s=0.5)

    async def scenario():
        client = await ready_client(stack)
        try:
            for role in [r for r in stack.roles if r.startswith("group:")]:
                stack.stop_worker(role)  # nobody scores: every mailbox stays open until its deadline
            ids = [await client.send(r, deadline_ms=10_000) for r in rows(40, seed=4)]
            archive = stack.settings.data_dir / stack.spec.name / "archive"
            # every request reached the core (the decoy archived it) before it stops
            assert await _wait(lambda: set(ids) <= set(read_archive(archive, features=False)["request_id"]), 60)
            stack.stop_worker("core", signal.SIGTERM)
            stopped_at = time.perf_counter()
            stack.start_worker("core")
            missing = await client.wait_results(ids, timeout_s=90)
            return ids, missing, client.received, stopped_at
        finally:
            await client.__aexit__(None, None, None)

    with stack:
        ids, missing, received, stopped_at = run(scenario())
    log = "\n".join(line for line in stack.log_tail("core", 10**7).splitlines() if "rendezvous:" in line)
    assert not missing, f"{len(missing)} of {len(ids)} open mailboxes were forgotten across the restart ({sorted(missing)[:3]}):\n{log}"
    # decided by the restarted core, from its recovered mailboxes — not before the stop
    early = [i for i in ids if received.result_at[i] < stopped_at]
    assert not early, f"{len(early)} requests were answered before the core stopped: the deadline was too short to test this"
    assert all(received.results[i]["status"] == "timeout" for i in ids)


def test_pipeline__metrics_on_their_own_port(broker, trained, tmp_path, run):
    from streams.kafka.broker import free_port

    port = free_port()
    stack = make_stack(broker, trained, tmp_path, metrics_port=port)
    with stack:
        run(_ready_then_close(stack))
        with httpx.Client(timeout=10) as http:
            own = http.get(f"http://127.0.0.1:{port}/metrics")
            main = http.get(f"http://127.0.0.1:{stack.settings.web_port}/metrics")
    assert own.status_code == 200 and "rendezvous_requests_total" in own.text
    assert main.status_code == 404  # not on the public port
