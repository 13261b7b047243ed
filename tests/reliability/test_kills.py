"""Faults under a steady load on Apache Kafka, checked the way Kafka's own system tests check
them: every request id gets exactly one Result (a timeout counts), none lost, none twice.

SIGKILL — no clean shutdown, no final flush, no offset commit — of a model-group worker and of
the core (decoy + rendezvous + feedback), one after the other, each restarted at once. The
figures (requests, kills, how long until the restarted role answered again) are printed.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from tables.archive import read_archive

from tests.integration.conftest import all_answered, make_stack, ready_client, rows

pytestmark = pytest.mark.integration

RATE, SECONDS = 50, 40
SCHEDULE = ["group:boosted", "core", "group:linear", "core"]  # one SIGKILL every 8 s or so


async def _sent_at_least(client, n: int, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while len(client.sent_at) < n:  # the load generator's own progress: kill at a point in the stream
        if time.monotonic() > end:
            raise TimeoutError(f"only {len(client.sent_at)} of {n} requests sent")
        await asyncio.sleep(0.05)


def test_kills__sigkill_model_workers_and_core_under_load_one_result_each(kafka_broker, trained, tmp_path, run):
    stack = make_stack(kafka_broker, trained, tmp_path, deadline_ms=1000)
    total = RATE * SECONDS

    async def scenario():
        client = await ready_client(stack)
        try:
            base = len(client.sent_at)
            load = asyncio.create_task(client.run_load(rows(total, seed=21), rate_per_s=RATE))
            recoveries = []
            for i, role in enumerate(SCHEDULE):
                await _sent_at_least(client, base + (i + 1) * total // (len(SCHEDULE) + 1), SECONDS * 2)
                killed_at = time.perf_counter()
                stack.stop_worker(role, signal.SIGKILL)
                stack.start_worker(role)
                recoveries.append((role, killed_at))
            ids = await load
            missing = await all_answered(client, ids, timeout_s=120)
            # recovery: from the kill to the first Result published for a request sent after it
            figures = []
            for role, killed_at in recoveries:
                after = [client.received.result_at[i] for i in ids
                         if client.sent_at[i] > killed_at and i in client.received.result_at]
                figures.append((role, min(after) - killed_at if after else float("nan")))
            return ids, missing, client.received, figures
        finally:
            await client.__aexit__(None, None, None)

    with stack:
        ids, missing, received, figures = run(scenario())
        stack.check_alive()
    statuses = [received.results[i]["status"] for i in ids if i in received.results]
    print(f"\n{len(ids)} requests at {RATE}/s, {len(SCHEDULE)} SIGKILLs; results: "
          f"{ {s: statuses.count(s) for s in set(statuses)} }; lost {len(missing)}; duplicates {received.duplicates}")
    for role, seconds in figures:
        print(f"  SIGKILL {role}: first Result for a later request after {seconds:.2f} s")
    assert not missing, f"{len(missing)} of {len(ids)} requests never got a Result"
    assert received.duplicates == 0, f"{received.duplicates} requests got a second Result"
    assert len(statuses) == len(ids)
    # the decoy's archive holds every request (read de-duplicated: a redelivered one is archived twice)
    archive = read_archive(stack.settings.data_dir / stack.spec.name / "archive", features=False)
    lost_from_archive = set(ids) - set(archive["request_id"])
    assert not lost_from_archive, f"{len(lost_from_archive)} requests missing from the archive"
