"""/metrics: what the rendezvous counts, in Prometheus text format, and the Grafana dashboard over it."""

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from pipelines.rendezvous import Rendezvous
from pipelines.spec import PipelineSpec
from streams.metrics import LagMonitor, PipelineMetrics, state_gauges
from pipelines.mailbox import DictStore

ROOT = Path(__file__).parents[2]
SPEC = PipelineSpec.from_dict({"pipeline": "p", "deadline_ms": 100, "models": [
    {"id": "a", "flavour": "external", "role": "champion", "group": "a"},
    {"id": "b", "flavour": "external", "role": "challenger", "group": "b"},
    {"id": "c", "flavour": "external", "role": "canary", "group": "c"},
]})


class Clock:
    now = 1_000.0

    def __call__(self):
        return self.now


def score(rid, model, prediction=1, latency_ms=2.0, status="ok"):
    return {"request_id": rid, "model_id": model, "model_version": "1", "role": "champion", "prediction": prediction,
            "probabilities": None, "latency_ms": latency_ms, "status": status, "error": None}


def samples(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def busy_server(tmp_path):
    clock = Clock()
    server = Rendezvous(SPEC, DictStore(), clock=clock, miss_limit=5, metrics=PipelineMetrics(SPEC.name))
    server.on_request({"request_id": "r1", "features": {"x": 1.0}}, 0)
    clock.now += 4
    server.on_scores([score("r1", "a", latency_ms=3.0), score("r1", "c", latency_ms=0.2)], 0)  # a answers at once
    server.on_scores([score("r1", "b", latency_ms=40.0)], 0)  # late
    server.on_request({"request_id": "r2", "features": {"x": 1.0}}, 1)
    server.on_scores([score("r2", "b", prediction=0)], 1)
    clock.now += 100
    server.due()  # r2: b answers at the deadline; a and c missed it
    server.on_request({"request_id": "r1", "features": {"x": 1.0}}, 0)  # redelivered
    server.on_feedback({"request_id": "r1", "label": 1}, 0, {"x": 1.0})
    server.on_feedback({"request_id": "nope", "label": 1}, 0, None)
    server.metrics.dead_letter("decode")
    server.metrics.alert({"kind": "fallback", "model_id": "b"})
    lag = LagMonitor("unused:9092", {})
    lag.lag = {("rdv-p-core", "p.requests"): 7}
    (tmp_path / "windows.jsonl").write_text(json.dumps({
        "window_start": 1, "window_end": 2000, "rows": 150, "failed": ["x out of range"], "drifted": ["x"],
        "drift_scores": {"x": 0.3, "y": 0.01}, "drift_methods": {"x": "psi", "y": "psi"}, "unlike_share": 0.25,
        "decay": True}) + "\n")
    server.metrics.state = lambda: state_gauges(server, lag, tmp_path)
    return server


def test_metrics__count_what_happened(tmp_path):
    server = busy_server(tmp_path)
    got = samples(server.metrics.render().decode())
    p = ("pipeline", "p")
    assert got[("rendezvous_requests_total", (p,))] == 2
    assert got[("rendezvous_duplicate_requests_total", (p,))] == 1
    assert got[("rendezvous_results_total", (p, ("status", "ok")))] == 2
    assert got[("rendezvous_answers_total", (("model", "a"), p, ("role", "champion"), ("version", "1")))] == 1
    assert got[("rendezvous_answers_total", (("model", "b"), p, ("role", "champion"), ("version", "1")))] == 1
    # result latency: 4 ms and 100 ms
    assert got[("rendezvous_result_latency_seconds_count", (p, ("status", "ok")))] == 2
    assert got[("rendezvous_result_latency_seconds_bucket", (("le", "0.005"), p, ("status", "ok")))] == 1
    assert abs(got[("rendezvous_result_latency_seconds_sum", (p, ("status", "ok")))] - 0.104) < 1e-9
    # score latency in seconds, per model; b's late score counted as late and still timed
    assert got[("rendezvous_score_latency_seconds_bucket", (("le", "0.0025"), ("model", "c"), p, ("status", "ok"), ("version", "1")))] == 1
    assert got[("rendezvous_score_latency_seconds_count", (("model", "b"), p, ("status", "ok"), ("version", "1")))] == 2
    assert got[("rendezvous_late_scores_total", (("model", "b"), p))] == 1
    assert got[("rendezvous_deadline_misses_total", (("model", "a"), p))] == 1
    # r2 was decided by its deadline, exactly at it (the injected clock): one overshoot of 0 s
    assert got[("rendezvous_deadline_overshoot_seconds_count", (p,))] == 1
    assert got[("rendezvous_deadline_overshoot_seconds_bucket", (("le", "0.0005"), p))] == 1
    assert got[("rendezvous_feedback_total", (("outcome", "joined"), p))] == 1
    assert got[("rendezvous_feedback_total", (("outcome", "unknown"), p))] == 1
    assert got[("rendezvous_dlq_records_total", (p, ("stage", "decode")))] == 1
    assert got[("rendezvous_fallbacks_total", (("kind", "fallback"), ("model", "b"), p))] == 1
    # state at scrape time
    assert got[("rendezvous_model_accuracy", (("model", "a"), p))] == 1.0
    assert got[("rendezvous_model_accuracy", (("model", "c"), p))] == 1.0
    assert got[("rendezvous_canary_agreement", (("model", "a"), p))] == 1.0
    assert got[("rendezvous_model_set_aside", (("model", "b"), p))] == 0
    assert got[("rendezvous_mailboxes", (p,))] == 2
    assert got[("rendezvous_model_info", (("model", "c"), p, ("role", "canary"), ("version", "1")))] == 1
    assert got[("rendezvous_consumer_lag", (("group", "rdv-p-core"), p, ("topic", "p.requests")))] == 7
    assert got[("rendezvous_quality_unlike_share", (p,))] == 0.25
    assert got[("rendezvous_quality_expectations_failed", (p,))] == 1
    assert got[("rendezvous_feature_drifted", (("feature", "x"), p))] == 1
    assert got[("rendezvous_feature_drifted", (("feature", "y"), p))] == 0


def test_metrics__no_request_id_in_any_label(tmp_path):
    text = busy_server(tmp_path).metrics.render().decode()
    assert "r1" not in text and "r2" not in text and "nope" not in text


def test_grafana_dashboard__queries_only_metrics_we_export(tmp_path):
    exported = {name for name, _ in samples(busy_server(tmp_path).metrics.render().decode())}
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/rendezvous.json").read_text())
    assert dashboard["panels"], "an empty dashboard"
    used = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used |= set(re.findall(r"\brendezvous_[a-z_]+", target["expr"]))
    assert used and used <= exported, sorted(used - exported)
    covered = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in used}
    for wanted in ("rendezvous_requests", "rendezvous_results", "rendezvous_score_latency_seconds",
                   "rendezvous_result_latency_seconds", "rendezvous_late_scores", "rendezvous_answers",
                   "rendezvous_canary_agreement", "rendezvous_fallbacks", "rendezvous_dlq_records",
                   "rendezvous_consumer_lag", "rendezvous_quality_unlike_share"):
        assert wanted in covered, wanted
