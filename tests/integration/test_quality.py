"""The quality worker on the real broker: windows validated against the training profile, bad values
and unlike requests alerted, and the HTML report rendered in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from features.reference import profile_training_data
from pipelines.jobs.train import AGRAWAL_FEATURES, agrawal_rows
from tables.quality import read_quality
from tables.registry import read_registry
from tables.results import read_records
from tests.conftest import require
from streams.testing import make_stack, ready_client, rows
from tests.integration.test_feedback import _until
from tests.integration.test_lifecycle import cli

pytestmark = pytest.mark.integration


def chromium() -> str:
    return shutil.which("chromium-browser") or require("chromium", "renders the HTML report; apt-get install chromium")


def test_quality__windows_are_validated_bad_values_alerted_and_the_report_renders(broker, trained, tmp_path, run):
    directory, _ = trained
    browser = chromium()
    stack = make_stack(broker, trained, tmp_path, deadline_ms=1000, archive_flush_s=0.5,
                       spec={"quality": {"window_rows": 300, "window_s": 2, "min_rows": 50, "auto_retrain": True,
                                         "retrain_min_rows": 100}})
    name, data_dir = stack.spec.name, stack.settings.data_dir
    profile_training_data(name, directory / "models" / "training.csv", AGRAWAL_FEATURES, data_dir)
    assert "quality" in stack.roles

    async def quality_records(n: int):
        records = [r for _, r in await read_records(stack.settings, f"{name}.quality", "Quality")]
        return records if len(records) >= n else None

    async def scenario():
        client = await ready_client(stack, watch_alerts=True)
        try:
            labelled = list(agrawal_rows(300, seed=31))
            good = [await client.send(x) for x, _ in labelled]
            assert not await client.wait_results(good, timeout_s=60)
            for rid, (_, label) in zip(good, labelled):  # for the report's accuracy plot
                await client.send_feedback(rid, label)
            await client.producer.send_and_wait(f"{name}.requests", b"not a request", key=b"junk")  # a dead letter
            first = await _until(lambda: quality_records(1), 60)
            assert first, "the quality worker never published a window"
            # a clean window of the training population (plus the readiness probes: all-zero rows)
            clean = first[-1]
            assert clean["rows"] >= 50 and clean["profile"] and clean["drift_methods"]["salary"] in ("ks", "psi")

            bad = rows(300, seed=32)
            for i, x in enumerate(bad):
                if i % 10 == 0:
                    x["age"] = 200.0            # out of range
                if i % 10 == 1:
                    x["car"] = 99.0             # an unknown code
                if i % 10 == 2:
                    x["salary"] = x["salary"] * 10
            ids = [await client.send(x) for x in bad]
            assert not await client.wait_results(ids, timeout_s=60)
            # labelled as answered: the models' errors do not change (the core retrains nothing); the
            # retrain below is the quality worker's, on the requests since the window that decayed
            for rid in ids:
                await client.send_feedback(rid, client.received.results[rid]["prediction"])
            records = await _until(lambda: _failing(quality_records), 60)
            assert records, "no window failed its expectations"
            failed = " ".join(records[-1]["failed"])
            assert "between on age" in failed and "in_set on car" in failed, failed
            assert records[-1]["unlike_share"] >= 0.1 and records[-1]["decay"]
            assert await client.wait_for(lambda r: {"quality", "decay"} <= {a["kind"] for a in r.alerts}, 30), \
                client.received.alerts
            assert len(read_quality(data_dir / name / "quality")) >= 2  # the quality table

            async def retrained():  # decay ran `rendezvous retrain` for the champion (auto_retrain)
                registry = await read_registry(stack.settings, f"{name}.control")
                return registry.get("xgb-r1")

            new = await _until(retrained, 90, interval_s=1.0)
            assert new, f"decay did not retrain the champion; quality log:\n{stack.log_tail('quality')}"
            assert new["role"] == "shadow" and new["metrics"]["auto_promote_confidence"] == 0.95
            assert new["by"] == "quality", new
            # the requests since the start of the window that decayed, not the clean ones before it
            decayed = min(r["window_start"] for r in await quality_records(2) if r["decay"])
            figures = new["metrics"]
            assert figures["since_ms"] == decayed and figures["rows_train"] + figures["rows_holdout"] < 600, figures
        finally:
            await client.__aexit__(None, None, None)

    with stack:
        run(scenario())
        code, out = run(cli(stack, "report", "--pipeline", name))
    assert code == 0, out
    index = data_dir / name / "report" / "index.html"
    page = index.read_text()
    for title in ("Latency per model", "Answers per model", "Agreement with the canary", "Drift per feature",
                  "Quality windows", "Great Expectations Data Docs"):
        assert title in page
    assert (data_dir / name / "report" / "data_docs" / "index.html").exists()
    if browser:
        dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                              "--dump-dom", index.as_uri()], capture_output=True, text=True, timeout=120)
        loaded = re.search(r'data-images="(\d+) of (\d+)"', dom.stdout)
        assert loaded, f"the page did not finish loading in Chromium: {dom.stderr[-2000:]}"
        assert loaded.group(1) == loaded.group(2), loaded.group(0)
    plots = set(re.findall(r'<img src="plots/(\w+)\.png"', page))
    assert plots == {"latency", "accuracy", "answers", "agreement", "drift", "dead_letters"}, plots


async def _failing(quality_records):
    records = await quality_records(2)
    return [r for r in records if not r["gx_success"]] if records else None
