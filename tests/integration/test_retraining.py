"""Retraining after a drift, on the real broker: the core's detectors, not the quality worker, retrain
every decayed model on the requests after the change — and `rendezvous retrain --since change`
does the same by hand."""

from __future__ import annotations

import time

import pytest

from pipelines.jobs.train import agrawal_rows
from tables.registry import read_registry
from streams.testing import make_stack, ready_client
from tests.integration.test_feedback import _until
from tests.integration.test_lifecycle import cli

pytestmark = pytest.mark.integration


def test_retraining__decayed_models_learn_from_the_requests_after_the_change(broker, trained, tmp_path, run):
    # no quality worker (enabled: false): the retrain comes from the core's own detectors
    stack = make_stack(broker, trained, tmp_path, deadline_ms=1000, archive_flush_s=0.5,
                       spec={"quality": {"auto_retrain": True, "retrain_min_rows": 150, "enabled": False}})
    name = stack.spec.name
    assert "quality" not in stack.roles

    async def labelled(client, pairs, flip: bool) -> list[str]:
        ids = [await client.send(x) for x, _ in pairs]
        assert not await client.wait_results(ids, timeout_s=60)
        for rid, (_, label) in zip(ids, pairs):
            await client.send_feedback(rid, 1 - label if flip else label)
        return ids

    async def scenario():
        client = await ready_client(stack, watch_alerts=True)
        try:
            await labelled(client, list(agrawal_rows(300, seed=41)), flip=False)  # the concept the models learnt
            changed_at_ms = time.time() * 1000
            # the concept turns over: every label is now the other class (the hardest drift there is)
            after = await labelled(client, list(agrawal_rows(500, seed=42)), flip=True)

            # xgb's errors jump from ~0 to ~1: it decays for sure. lr is near chance on both concepts (its
            # errors move from ~46 % to ~54 %): so faint a rise is flagged in some runs and not in others
            # (CI saw both). Every model that was flagged as decayed is retrained; the new version is
            # registered if it beats the old one on the held-out requests, and recorded as rejected if not.
            def outcomes(kinds=("retrained", "retrain-rejected")):
                return {a["model_id"]: a for a in client.received.alerts if a["kind"] in kinds}

            async def retrained():
                registry = await read_registry(stack.settings, f"{name}.control")
                decayed = set(outcomes(("decay",))) & {"xgb", "lr"}
                return (registry, decayed) if "xgb-r1" in registry and decayed <= set(outcomes()) else None

            found = await _until(retrained, 120, interval_s=1.0)
            assert found, (f"the decayed models were not retrained; alerts: {client.received.alerts}\n"
                           f"core log:\n{stack.log_tail('core')}")
            registry, decayed = found
            assert all(a["direction"] == "up" for a in client.received.alerts if a["kind"] == "decay" and a["model_id"])
            # xgb's change is placed exactly, and it learns from the requests after it only; lr's faint
            # change is an estimate, and a few requests before it may be in (CI once saw 4 of 504): at
            # most 5 % of its rows here.
            for model, extra in (("xgb-r1", 0), ("lr-r1", len(after) // 20)):
                if model.split("-")[0] not in decayed:  # flagged later, if at all: never retrained before it
                    assert model not in registry
                    continue
                if model not in registry:  # lr: near chance either way, its retrain did not beat it
                    rejected = (stack.settings.data_dir / name / "retrain" / "rejected.jsonl").read_text()
                    assert "does not beat" in rejected and model in rejected, rejected
                    continue
                new = registry[model]
                figures = new["metrics"]
                assert new["role"] == "shadow" and figures["auto_promote_confidence"] == 0.95, new
                assert figures["since_ms"] >= changed_at_ms - 1000, (figures["since_ms"], changed_at_ms)
                assert 150 <= figures["rows_train"] + figures["rows_holdout"] <= len(after) + extra, (model, figures)
            # xgb-r1 learnt the new concept, on which xgb is now nearly always wrong
            figures = registry["xgb-r1"]["metrics"]
            assert figures["holdout"] >= 0.8 and figures["current_holdout"] <= 0.2, figures
            assert "canary-r1" not in registry  # the stable baseline is never retrained
            assert outcomes()["xgb"]["kind"] == "retrained", client.received.alerts

            # by hand, the same cut: `--since change` places it from the recorded Scores and the labels
            code, out = await cli(stack, "retrain", "--model", "xgb", "--as", "xgb-manual", "--since", "change",
                                  "--min-rows", "150")
            assert code == 0, out
            manual = (await read_registry(stack.settings, f"{name}.control"))["xgb-manual"]["metrics"]
            assert manual["since_ms"] >= changed_at_ms - 1000 and manual["holdout"] >= 0.8, manual
            # while xgb-r1 is a shadow under evaluation, an automatic retrain of xgb waits
            code, out = await cli(stack, "retrain", "--model", "xgb", "--since", "change", "--one-candidate")
            assert code != 0 and "still a shadow under evaluation" in out, out

            # more labelled requests of the new concept: the McNemar gate promotes xgb-r1, and the rows
            # since the change have doubled since its retrain: xgb-r1 is retrained again on them all
            # (refinement 1), into xgb-r2 if that beats it on the newest of them, else recorded as rejected
            await labelled(client, list(agrawal_rows(200, seed=43)), flip=True)

            def refined():
                return next((a for a in client.received.alerts if a["model_id"] == "xgb-r1"
                             and a["kind"] in ("retrained", "retrain-rejected")), None)

            alert = await _until(refined, 120, interval_s=1.0)
            assert alert, f"no refinement of xgb-r1; alerts: {client.received.alerts}\ncore log:\n{stack.log_tail('core')}"
            registry = await read_registry(stack.settings, f"{name}.control")
            assert registry["xgb-r1"]["role"] == "champion", registry["xgb-r1"]  # promoted by the gate
            assert alert["figures"]["refinement"] == 1 and "refinement 1" in alert["reason"], alert
            first = registry["xgb-r1"]["metrics"]
            assert abs(alert["figures"]["since_ms"] - first["since_ms"]) < 1, (alert, first)  # the same change (ms)
            assert alert["figures"]["rows"] >= 2 * outcomes()["xgb"]["figures"]["rows"], alert  # they doubled
            if alert["kind"] == "retrained":
                refined_metrics = registry["xgb-r2"]["metrics"]
                assert abs(refined_metrics["since_ms"] - first["since_ms"]) < 1, (refined_metrics, first)
                assert refined_metrics["rows_train"] > first["rows_train"], (refined_metrics, first)
        finally:
            await client.__aexit__(None, None, None)

    with stack:
        run(scenario())
