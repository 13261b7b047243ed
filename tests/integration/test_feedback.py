"""Feedback on the real broker: the join, the score state, the bandit, fallback alerts, River learning and its checkpoints."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter

import httpx
import pytest

from pipelines.flavours.base import sha256_of
from pipelines.jobs.train import AGRAWAL_FEATURES, agrawal_rows
from tables.registry import read_registry
from tables.results import records_until
from tables.archive import read_archive
from streams.testing import make_stack, ready_client, rows
from tests.integration.test_lifecycle import cli

pytestmark = pytest.mark.integration


def river_model(directory) -> dict:
    return {"id": "river", "version": "1", "flavour": "river", "artifact": "models/river.pkl",
            "sha256": sha256_of(directory / "models" / "river.pkl"), "role": "challenger", "group": "linear",
            "preference": 2, "features": list(AGRAWAL_FEATURES)}


async def _until(condition, timeout_s: float, interval_s: float = 0.2):
    """Call ``condition()`` (plain or async) until it returns something truthy, or the timeout."""
    end = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = condition()
        value = await value if asyncio.iscoroutine(value) else value
        if value or asyncio.get_running_loop().time() > end:
            return value
        await asyncio.sleep(interval_s)


async def _topic(bootstrap: str, topic: str) -> list:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        return [m async for m in records_until(consumer, await consumer.end_offsets(tps))]
    finally:
        await consumer.stop()


def test_feedback__labels_reach_the_score_state_the_bandit_the_fallback_and_the_online_learner(broker, trained,
                                                                                              tmp_path, run):
    directory, _ = trained
    stack = make_stack(broker, trained, tmp_path, deadline_ms=1000, extra_models=[river_model(directory)],
                       archive_flush_s=0.5,
                       spec={"policy": {"name": "bandit", "algorithm": "ucb", "seed": 1}, "checkpoint_s": 2,
                             "fallback": {"min_labels": 30, "accuracy_margin": 0.02, "window": 200}})

    async def scenario():
        client = await ready_client(stack, watch_scores=True, watch_alerts=True)
        name, bootstrap = stack.spec.name, stack.settings.bootstrap
        try:
            # paced, not one burst: what is tested is the join and the learning (a burst of 300 right
            # after start-up outran the 1 s deadline in some runs on two busy cores)
            ids = await client.run_load(rows(300, seed=5), rate_per_s=200)
            assert not await client.wait_results(ids, timeout_s=60)
            assert await client.wait_for(lambda r: all(len(r.scores.get(i, {})) == 4 for i in ids), 60)
            # the truth is whatever the canary said: the canary is then the best model, and any model
            # that disagrees with it often enough must be set aside with an alert
            truth = {i: client.received.scores[i]["canary"]["prediction"] for i in ids}
            for i in ids:
                await client.send_feedback(i, truth[i])
            await client.send_feedback("never-sent", 1)
            await client.producer.send(f"{name}.feedback", b"\x00 not feedback", key=b"junk")
            await client.producer.flush()

            assert await client.wait_for(lambda r: len(r.dlq) >= 2, 60), client.received.dlq
            reasons = sorted(d["reason"] for d in client.received.dlq)
            assert any("unknown request 'never-sent'" in r for r in reasons) and len(reasons) == 2, reasons

            async def models_state():
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.settings.web_port}") as http:
                    state = (await http.get(f"/v1/{name}/models")).json()
                by_id = {m["id"]: m for m in state["models"]}
                return by_id if all(by_id[m].get("labelled", 0) >= 300 for m in ("xgb", "lr", "canary", "river")) else None

            state = await _until(models_state, 60)
            assert state, "the score state never counted every label"
            assert state["canary"]["accuracy"] == 1.0
            for model in ("xgb", "lr", "river"):
                expected = sum(str(client.received.scores[i][model]["prediction"]) == str(truth[i]) for i in ids) / 300
                # ~75 labels per partition: within the window of 200, so the figures are exact
                assert state[model]["accuracy"] == pytest.approx(expected), (model, state[model])
                assert state[model]["agreement_canary"] == pytest.approx(expected)
            # the bandit learns from each answered request's pick
            answers = Counter((r["status"], r["model_id"]) for i, r in client.received.results.items() if i in truth)
            assert sum(state[m]["bandit_pulls"] or 0 for m in ("xgb", "lr", "river")) >= 280, \
                ({m: state[m]["bandit_pulls"] for m in state}, answers)
            worse = [m for m in ("xgb", "lr", "river") if state[m]["accuracy"] < 0.98]
            assert worse, "every model agreed with the canary: the fallback was not exercised"
            assert await client.wait_for(lambda r: {a["model_id"] for a in r.alerts if a["kind"] == "fallback"} >= set(worse), 30), \
                client.received.alerts
            assert all(state[m]["set_aside"] for m in worse)

            examples = await _topic(bootstrap, f"{name}.examples")
            assert len(examples) == 300  # one labelled example per accepted label, none for the refused

            async def checkpointed():
                river = (await read_registry(bootstrap, f"{name}.control"))["river"]
                return river if river["action"] == "checkpoint" and river["metrics"].get("examples_learned", 0) > 0 else None

            river = await _until(checkpointed, 30, interval_s=0.5)
            assert river, "the River model was never checkpointed to the registry"
            learned = 0
            while river and learned < 300:  # checkpoints every 2 s: they may split the 300 examples
                versions = stack_versions(stack, name)
                learned = sum(v["metrics"].get("examples_learned", 0) for v in versions if v["action"] == "checkpoint")
                if learned < 300:
                    await asyncio.sleep(0.5)
                    river = await checkpointed()
            assert learned == 300

            # a restarted group resumes from the last checkpoint: its Scores carry that version
            last = (await read_registry(bootstrap, f"{name}.control"))["river"]["model_version"]
            stack.stop_worker("group:linear")
            stack.start_worker("group:linear")
            probe = [await client.send(x) for x in rows(5, seed=6)]
            assert await client.wait_for(lambda r: all(r.scores.get(i, {}).get("river", {}).get("model_version") == last
                                                       for i in probe), 90), "the restarted group did not load the checkpoint"

            # retrain xgb on the archive joined with the feedback, with an auto-promotion rule
            archive = stack.settings.data_dir / name / "archive"
            assert await _until(lambda: len(read_archive(archive, features=False)) >= 300, 30)
            code, out = await cli(stack, "retrain", "--model", "xgb", "--min-rows", "200", "--auto-promote", "0.95")
            assert code == 0, out
            new = (await read_registry(bootstrap, f"{name}.control"))["xgb-r1"]
            assert new["role"] == "shadow" and new["group"] == "boosted" and new["training_data_sha256"]
            assert new["metrics"]["rows_train"] + new["metrics"]["rows_holdout"] >= 300
            assert 0 <= new["metrics"]["holdout"] <= 1 and new["metrics"]["auto_promote_confidence"] == 0.95
            # it learned the canary's answers (the truth here); live feedback must prove it beats xgb, then promote it
            promoted = False
            for round_ in range(8):
                more = [await client.send(x) for x in rows(150, seed=100 + round_)]
                assert not await client.wait_results(more, timeout_s=60)
                assert await client.wait_for(lambda r: all({"canary", "xgb-r1"} <= set(r.scores.get(i, {})) for i in more), 60)
                for i in more:
                    await client.send_feedback(i, client.received.scores[i]["canary"]["prediction"])
                promoted = await client.wait_for(lambda r: any(a["kind"] == "promoted" for a in r.alerts), 5)
                if promoted:
                    break
            assert promoted, f"xgb-r1 was never promoted; alerts: {client.received.alerts}"
            [alert] = [a for a in client.received.alerts if a["kind"] == "promoted"]
            assert alert["model_id"] == "xgb-r1" and alert["figures"]["p_value"] <= 0.05
            assert alert["figures"]["candidate_only"] > alert["figures"]["champion_only"]
            registry = await read_registry(bootstrap, f"{name}.control")
            assert registry["xgb-r1"]["role"] == "champion" and registry["xgb-r1"]["by"] == "auto-promote"
            assert registry["xgb"]["role"] == "challenger"

            scorestate = await _topic(bootstrap, f"rdv-{name}-core-{name}-scorestate-changelog")
            keys = {m.key.decode().strip('"') for m in scorestate}
            assert {f"xgb@{p}" for p in range(stack.spec.partitions)} <= keys
            row = json.loads([m for m in scorestate if m.key.decode().strip('"').startswith("xgb@")][-1].value)
            assert row["labelled"] > 0 and len(row["pairs"]) == min(row["labelled"], 200)
        finally:
            await client.__aexit__(None, None, None)

    with stack:
        run(scenario())


def stack_versions(stack, name: str) -> list[dict]:
    from pipelines.registry import ArtifactStore

    return ArtifactStore(stack.settings.data_dir / "registry").versions(name, "river")


def test_feedback__sigkill_of_the_core__score_state_and_mailboxes_recover_each_label_counted_once(
        broker, trained, tmp_path, run):
    """The core is SIGKILLed once it committed 200 labels: the score-state table and the mailboxes
    come back from their changelogs alone — every label counted exactly once, the accuracy as it
    was, the bandit started from the restored rewards. Afterwards a label sent again is refused
    (the recovered mailbox says it was received) and labels for requests answered before the kill
    still join — and a second SIGKILL while those labels are in flight, before their commit, still
counts each exactly once (the replay orders themselves are unit-tested in tests/agents)."""
    stack = make_stack(broker, trained, tmp_path, deadline_ms=1000,
                       spec={"policy": {"name": "bandit", "algorithm": "epsilon_greedy", "seed": 1}})
    models = ("xgb", "lr", "canary")
    feedback_topic, group = f"{stack.spec.name}.feedback", f"rdv-{stack.spec.name}-core"

    async def models_state():
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.settings.web_port}") as http:
            try:
                return {m["id"]: m for m in (await http.get(f"/v1/{stack.spec.name}/models")).json()["models"]}
            except (httpx.HTTPError, ValueError):
                return None  # the core is restarting

    async def labelled_at_least(n: int):
        state = await models_state()
        return state if state and all(state[m].get("labelled", 0) >= n for m in models) else None

    async def settled(n: int, why: str) -> dict:
        """Every label processed and committed: the model state, which must then count ``n``."""
        assert await _until(lambda: labelled_at_least(n), 60), f"{why}: {_labelled(await models_state())}"
        assert await _until(lambda: committed_to_end(stack.settings.bootstrap, group, feedback_topic, stack.spec.partitions), 30), \
            f"{why}: the core never committed all the feedback"
        state = await models_state()
        assert {m: state[m]["labelled"] for m in models} == {m: n for m in models}, \
            f"{why}: each label must count once per model: {_labelled(state)}"
        return state

    async def kill_and_restart(client):
        stack.stop_worker("core", signal.SIGKILL)  # no final flush
        stack.start_worker("core")
        await stack.wait_ready(client)

    async def scenario():
        client = await ready_client(stack)
        try:
            data = list(agrawal_rows(300, seed=8))
            ids = [await client.send(x) for x, _ in data]
            assert not await client.wait_results(ids, timeout_s=60)

            async def every_score_filed():  # also the ones after the answer: each label then counts for all
                state = await models_state()
                return state and all(state[m]["scores"] >= len(client.sent_at) for m in models)

            assert await _until(every_score_filed, 60), f"scores missing: {await models_state()}"
            for rid, (_, label) in zip(ids[:200], data[:200]):
                await client.send_feedback(rid, label)
            before = await settled(200, "before the kill")
            await kill_and_restart(client)
            restored = await settled(200, "after a SIGKILL once committed")
            for model in models:
                assert restored[model]["accuracy"] == before[model]["accuracy"]
            # the bandit started from the restored rewards of both arms (200 labels each), not from nothing
            assert restored["xgb"]["bandit_pulls"] + restored["lr"]["bandit_pulls"] == 400, \
                {m: restored[m]["bandit_pulls"] for m in ("xgb", "lr")}
            # the other 100 requests' labels join (their mailboxes came back), ten old ones are refused
            for rid, (_, label) in zip(ids[200:], data[200:]):
                await client.send_feedback(rid, label)
            again = ids[:10]
            for rid, (_, label) in zip(again, data[:10]):
                await client.send_feedback(rid, label)
            await kill_and_restart(client)  # while these labels are in flight: the uncommitted ones come again
            refused = lambda r: {(d["key"] or b"").decode() for d in r.dlq if "already received" in d["reason"]} >= set(again)
            assert await client.wait_for(refused, 60), f"labels sent twice were not refused: {client.received.dlq[-3:]}"
            await settled(300, "after the restarts")
        finally:
            await client.__aexit__(None, None, None)

    with stack:
        run(scenario())


def _labelled(state: dict | None) -> dict | None:
    return state and {m: row.get("labelled") for m, row in state.items()}


async def committed_to_end(bootstrap: str, group: str, topic: str, partitions: int) -> bool:
    """Has ``group`` committed every record of ``topic``? (Everything sent was processed.)"""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        return all(tp in committed and committed[tp].offset >= end for tp, end in ends.items())
    finally:
        await admin.close()
        await consumer.stop()
