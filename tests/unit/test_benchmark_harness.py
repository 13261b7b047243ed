"""The benchmark harness runs end to end on tiny settings and writes its file (no timing asserted)."""

import re

import pytest

from benchmarks import e2e

pytestmark = pytest.mark.integration


def test_benchmark_harness__tiny_run_writes_its_table(broker, tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\nhand-written notes stay\n")
    e2e.main(["--broker", broker.url, "--rates", "50", "--duration-s", "1", "--groups", "1", "--warmup-s", "1",
              "--out", str(out)])
    text = out.read_text()
    assert "hand-written notes stay" in text
    assert "**xgb + lr + canary (1 model-group worker)**" in text and e2e.BROKER in text
    assert "| 50 |" in text and e2e.END in text


def test_compare_harness__tiny_run_writes_three_systems_ratios_and_a_plot(broker, tmp_path):
    from benchmarks import compare

    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\nhand-written notes stay\n")
    compare.main(["--broker", broker.url, "--rates", "20", "--duration-s", "1", "--warmup-s", "1", "--refine", "0",
                  "--flood", "200", "--peer-workers", "1", "--out", str(out)])
    text = out.read_text()
    assert "hand-written notes stay" in text and compare.START in text and compare.END in text
    for system in compare.SYSTEMS:
        assert f"**{compare.LABELS[system]}** — maximum sustained rate" in text, system
    assert "messages/s" in text and "Rendezvous / peer at the same p99" in text and "**Per-hop overhead**" in text
    # per system: offered 20/s, what was achieved, 20 requests in 1 s, and nothing lost
    assert len(re.findall(r"^\| 20 \| \d+ \| 20 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| \d+ \| (—|[\d.]+) \| 0 \|", text, re.M)) == 3
    plot = tmp_path / "BENCHMARKS-latency.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({plot.name})" in text


def test_faults_and_soak_reports_render_their_tables_and_plot(tmp_path):
    """The fault and soak benchmarks' reports (the runs themselves are tests/reliability and `make bench`)."""
    from benchmarks import faults, soak

    report = faults.Report(["a", "b", "c"], {"ok": 2, "timeout": 1}, [], 0, [faults.Fault("SIGKILL core", print)], 50)
    report.faults[0].recovered_s = 5.8
    report.missing_from_archive = []
    text = faults.render([("kills", report)], "python -m benchmarks.faults")
    assert "| kills | 3 | 1 | 2 | 1 | 0 | 0 | 0 | 0 | 5.8 / 5.8 |" in text and "SIGKILL core 5.8 s" in text

    samples = [{"t_s": t, "sent": int(t * 500), "answered": int(t * 500), "p50_ms": 10.0, "p99_ms": 40.0,
                "mailboxes": min(t, 120) * 500, "archive_mib": t / 10, "rss_core": 300 + min(t, 120) / 2,
                "rss_group:linear": 250.0} for t in range(10, 601, 10)]
    samples.append({"t_s": 605, "lost": 0, "duplicates": 0, "requests": 300_000})
    soak.plot(samples, tmp_path / "soak.png")
    assert (tmp_path / "soak.png").read_bytes()[:4] == b"\x89PNG"
    text = soak.render(samples, 500, 120, "python -m benchmarks.soak", "soak.png")
    assert "300000 requests, lost 0, duplicates 0" in text
    assert "- core: 360 → 360 MiB (max 360, +0.0 MiB/min)" in text
    assert "- mailboxes in memory: 60000–60000 (rate × TTL = 60000)" in text


def test_fetch_path_harness__tiny_run_writes_both_consumers(tmp_path):
    """It times Faust's consumer and ours over the same batches (and checks it got the kinds right)."""
    from benchmarks import fetch_path

    out = tmp_path / "BENCHMARKS.md"
    fetch_path.main(["--messages", "2000", "--out", str(out)])
    text = out.read_text()
    assert "| Faust's aiokafka consumer |" in text and "| ours (copy, fetch/seek lock, seek check) |" in text
    assert fetch_path.END in text


def test_startup_report_renders_median_and_max_per_broker():
    """The start-up benchmark's table (its runs start whole pipelines: `make bench`)."""
    from benchmarks import startup

    text = startup.render({"ready": [10.4, 9.4, 10.0], "restart": [7.8, 8.5, 7.7]}, "python -m benchmarks.startup")
    assert text.startswith(startup.START) and text.endswith(startup.END)
    assert "| 3 | 10.0 / 10.4 | 7.8 / 8.5 |" in text


def test_retrain_cost__compares_the_requests_sent_while_a_retrain_ran_with_the_same_positions_without(tmp_path):
    from argparse import Namespace

    from benchmarks.retrain_cost import Run, figures, render

    def run(retrain, slow):  # one request every 10 ms for 10 s; a timeout every 100th of those in ``slow``
        out = Run(retrain, sent=[i / 100 for i in range(1000)])
        for i, t in enumerate(out.sent):
            late = slow[0] <= t <= slow[1]
            out.latency.append(None if late and i % 100 == 0 else 50.0 if late else 10.0)
            out.status.append("timeout" if late and i % 100 == 0 else "ok")
        return out

    off, on = run(False, (99, 99)), run(True, (4.0, 6.0))
    on.retrains = [(4.0, 6.0, "retrained xgb")]
    during = on.during_retrains()
    assert len(during) == 201 and min(during) == 400 and max(during) == 600
    assert figures(off, during) == (10.0, 0, 201) and figures(on, during) == (50.0, 3, 201)
    text = render([(off, on)], Namespace(rate=100, seconds=10, flip_at=3, deadline_ms=100), "cmd")
    assert "| 1 | 10.0 / 10.0, 0 / 0 | retrained xgb: 2.0 | 201 | 10.0 / 50.0 | 0 / 3 |" in text, text
