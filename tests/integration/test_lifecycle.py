"""The model lifecycle on the real broker: register, stage, promote with checks, retire — under load."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter

import pytest

from pipelines.flavours.base import sha256_of
from pipelines.jobs.train import agrawal_rows
from pipelines.registry import ArtifactStore, event
from tables.archive import read_archive, read_scores
from tables.registry import publish_events, read_registry
from streams.testing import all_answered, make_stack, ready_client, rows

pytestmark = pytest.mark.integration


async def cli(stack, *args: str) -> tuple[int, str]:
    """``rendezvous ARGS`` as a user runs it (its own process), against ``stack``."""
    env = {**os.environ, "RDV_BROKER": stack.settings.broker, "RDV_DATA_DIR": str(stack.settings.data_dir),
           "RDV_PIPELINE": stack.spec.name, "COLUMNS": "200"}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "streams.cli", *args, env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    return process.returncode, out.decode()


class Load:
    """Requests at a steady rate in the background until stopped (open loop)."""

    def __init__(self, client, rate_per_s: float) -> None:
        self.client, self.rate, self.ids, self._stop = client, rate_per_s, [], asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        # rows drawn one at a time (~70 µs each): generating them all first blocked this loop for
        # seconds, and the open loop then sent the backlog as one burst of ~700 requests
        feed = (x for x, _ in agrawal_rows(10**9, seed=21))
        start, i = time.perf_counter(), 0
        while not self._stop.is_set():
            delay = start + i / self.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self.ids.append(await self.client.send(next(feed)))
            i += 1

    async def stop(self) -> list[str]:
        self._stop.set()
        await self.task
        return self.ids


def test_lifecycle__stage_promote_and_retire_under_load_loses_nothing(broker, trained, tmp_path, run):
    directory, _ = trained
    stack = make_stack(broker, trained, tmp_path, deadline_ms=1000, archive_flush_s=0.5)
    marks = {}

    async def scenario():
        client = await ready_client(stack, watch_scores=True)
        load = Load(client, rate_per_s=100)
        try:
            # 1. stage xgb2 as a shadow next to xgb: scored and compared, never returned
            code, out = await cli(stack, "models", "register", "xgb2", str(directory / "models" / "xgb2.ubj"),
                                  "--flavour", "xgboost", "--group", "boosted", "--metric", "accuracy=0.99")
            assert code == 0, out
            assert await client.wait_for(lambda r: any("xgb2" in s for s in r.scores.values()), 60), \
                "the boosted group never scored the staged xgb2"
            # 2. enough archived traffic (requests and the Scores of xgb2 and xgb) for the promotion checks
            base = stack.settings.data_dir / stack.spec.name
            assert await _wait(lambda: (read_scores(base / "scores")["model_id"] == "xgb2").sum() >= 250
                               and len(read_archive(base / "archive", features=False)) >= 250, 90)
            # 3. promote: checks run, then xgb2 answers; xgb becomes a challenger
            marks["promote"] = len(load.ids)
            code, out = await cli(stack, "models", "promote", "xgb2")
            assert code == 0, out
            marks["promoted"] = len(load.ids)
            assert await client.wait_for(lambda r: any(r.results.get(i, {}).get("model_id") == "xgb2"
                                                       for i in load.ids[marks["promoted"]:]), 30)
            marks["switched"] = next(i for i, rid in enumerate(load.ids)
                                     if client.received.results.get(rid, {}).get("model_id") == "xgb2")
            # 4. retire the old champion: its group unloads it, the policy forgets it
            code, out = await cli(stack, "models", "retire", "xgb")
            assert code == 0, out
            marks["retired"] = len(load.ids)
            assert await client.wait_for(lambda r: len(load.ids) >= marks["retired"] + 300, 60)
            ids = await load.stop()
            missing = await all_answered(client, ids)
            code, out = await cli(stack, "models", "rank", "lr", "7")
            assert code == 0, out
            listing = json.loads((await cli(stack, "models", "list", "--all", "--json"))[1])
            replay = await cli(stack, "replay", "--model", "lr")
            return ids, missing, client.received, listing, replay
        finally:
            if not load.task.done():
                await load.stop()
            await client.__aexit__(None, None, None)

    with stack:
        ids, missing, received, listing, (replay_code, replay_out) = run(scenario())
    assert not missing, f"{len(missing)} requests got no result during the swap"
    assert received.duplicates == 0
    results = [received.results[i] for i in ids]
    bad = [i for i, r in enumerate(results) if r["status"] != "ok"]
    assert not bad, (f"{len(bad)} not ok, requests {bad[:3]}..{bad[-3:]} (marks {marks}): "
                     f"{Counter((r['status'], r['reason'][:60]) for r in results)}")
    assert not received.dlq
    # the shadow never answered before its promotion; after it, the champion answers
    assert all(r["model_id"] == "xgb" for r in results[:marks["promote"]])
    after = results[marks["retired"] + 5:]
    assert after and all(r["model_id"] == "xgb2" for r in after), \
        [(r["model_id"], r["reason"]) for r in after if r["model_id"] != "xgb2"]
    late_xgb = [i for i in ids[marks["retired"] + 200:] if "xgb" in received.scores.get(i, {})]
    assert not late_xgb, f"xgb still scored {len(late_xgb)} requests well after its retirement"
    roles = {m["model_id"]: m["role"] for m in listing}
    assert roles == {"xgb2": "champion", "xgb": "retired", "lr": "challenger", "canary": "canary"}
    assert next(m for m in listing if m["model_id"] == "lr")["preference"] == 7
    promoted = next(m for m in listing if m["model_id"] == "xgb2")
    assert promoted["action"] == "promote" and not promoted["forced"] and "agreement: ok" in promoted["checks"]
    print(f"\nswitch: requests {marks['promoted']}..{marks['switched']} after `promote` returned were still "
          f"answered by xgb ({(marks['switched'] - marks['promoted']) / 100:.2f} s at 100 req/s)")
    assert replay_code == 0, replay_out
    saved = sorted((stack.settings.data_dir / stack.spec.name / "replays").glob("lr-*.json"))
    report = json.loads(saved[-1].read_text())
    assert report["rows"] >= 250 and 0 < report["agreement"]["xgb"] <= 1 and report["errors"] == 0


def test_lifecycle__tampered_or_unsafe_artifacts_are_refused_and_the_old_version_keeps_serving(
        broker, trained, tmp_path, run):
    directory, _ = trained
    stack = make_stack(broker, trained, tmp_path, deadline_ms=1000)

    async def scenario():
        client = await ready_client(stack, watch_scores=True)
        try:
            store = ArtifactStore(stack.settings.data_dir / "registry")
            good = directory / "models" / "xgb2.ubj"
            sha = sha256_of(good)
            blob = store.path(sha)
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(good.read_bytes()[:-10] + b"0123456789")  # bytes changed after registration
            state = await read_registry(stack.settings, f"{stack.spec.name}.control")
            current = state["xgb"]
            await publish_events(stack.settings, f"{stack.spec.name}.control", [
                event(stack.spec.name, "xgb", "2", "register", "champion", "xgboost", sha256=sha, group="boosted",
                      features=current["features"], by="attacker")])
            log = stack.log_dir / "group-boosted.log"
            refused = await _wait(lambda: "xgb version 2 refused" in log.read_text(), 60)
            after = [await client.send(r) for r in rows(50, seed=3)]
            missing = await client.wait_results(after, 30)
            # an unsafe skops file (a type outside the allow-list) is refused at registration
            unsafe = tmp_path / "unsafe.skops"
            _write_unsafe_skops(unsafe)
            code, out = await cli(stack, "models", "register", "evil", str(unsafe), "--flavour", "sklearn")
            demoted = await cli(stack, "models", "demote", "lr")        # challenger -> shadow
            not_demoted = await cli(stack, "models", "demote", "canary")  # a canary has no lower role
            state_after = await read_registry(stack.settings, f"{stack.spec.name}.control")
            return (refused, log.read_text(), after, missing, client.received, code, out, state_after,
                    demoted, not_demoted)
        finally:
            await client.__aexit__(None, None, None)

    with stack:
        refused, log, after, missing, received, code, out, state, demoted, not_demoted = run(scenario())
    assert refused, log[-2000:]
    assert "refusing to load it" in log and "version 1 keeps serving" in log
    assert not missing
    assert all(received.results[i]["model_id"] == "xgb" and received.results[i]["status"] == "ok" for i in after)
    assert {received.scores[i]["xgb"]["model_version"] for i in after} == {"1"}
    assert code != 0 and "untrusted types" in out and "evil" not in state
    assert demoted[0] == 0 and state["lr"]["role"] == "shadow" and state["lr"]["action"] == "demote", demoted[1]
    assert not_demoted[0] != 0 and "only a champion or challenger" in not_demoted[1]


async def _wait(condition, timeout_s: float) -> bool:
    """Poll ``condition`` (files written by other processes: there is no event to wait on)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if condition():
            return True
        await asyncio.sleep(0.2)
    return condition()


def _write_unsafe_skops(path) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    sio.dump(FunctionTransformer(func=os.getcwd), path)  # os.getcwd is outside the trusted prefixes
