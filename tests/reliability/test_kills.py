"""Faults under a steady load on Apache Kafka, checked the way Kafka's own system tests check
them: every request id gets exactly one Result (a timeout counts), none lost, none twice, and
the decoy's archive holds every request.

* SIGKILL — no clean shutdown, no final flush, no offset commit — of a model-group worker and of
  the core (decoy + rendezvous + feedback), one after the other, each restarted at once;
* a second core worker joins under load and leaves again (two rebalances; the mailboxes of the
  partitions that move are recovered from their changelog by the worker that takes them);
* the broker itself is SIGKILLed and restarted on the same data directory.

The figures (requests, faults, how long until the pipeline answered again) are printed, and
``benchmarks/faults.py`` writes a longer run of the same scenarios to BENCHMARKS.md.
"""

from __future__ import annotations

import pytest

from benchmarks.faults import Fault, run_faults
from streams.kafka.broker import KafkaBroker
from streams.testing import make_stack

pytestmark = pytest.mark.integration

RATE, SECONDS = 100, 32  # 50/s never showed the commit-past-a-gap loss that 100/s did (BENCHMARKS.md)


def _check(report) -> None:
    print(f"\n{report.summary()}")
    assert not report.lost, f"{len(report.lost)} of {report.requests} requests never got a Result"
    assert report.duplicates == 0, f"{report.duplicates} requests got a second Result"
    assert not report.missing_from_archive, f"{len(report.missing_from_archive)} requests missing from the archive"
    assert all(f.recovered_s is not None for f in report.faults), "no Result after a fault for a request sent after it"


def test_kills__sigkill_model_workers_and_core_under_load_one_result_each(broker, trained, tmp_path, run):
    stack = make_stack(broker, trained, tmp_path, deadline_ms=1000)
    faults = [Fault.sigkill("group:boosted"), Fault.sigkill("core"), Fault.sigkill("group:linear"), Fault.sigkill("core")]
    with stack:
        report = run(run_faults(stack, faults, rate=RATE, seconds=SECONDS))
        stack.check_alive()
    _check(report.check_archive(stack))


def test_kills__a_second_core_worker_joins_the_broker_is_sigkilled_the_worker_leaves_one_result_each(
        trained, tmp_path, run):
    # its own broker: the session's is shared with the other tests
    with KafkaBroker(data_dir=tmp_path / "kafka", log_path=tmp_path / "kafka.log") as broker:
        stack = make_stack(broker, trained, tmp_path, deadline_ms=1000)
        faults = [Fault.start("core#2"), Fault.broker(broker), Fault.stop("core#2")]
        with stack:
            report = run(run_faults(stack, faults, rate=RATE, seconds=SECONDS))
            stack.check_alive()
        _check(report.check_archive(stack))
