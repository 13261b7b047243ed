"""The benchmark harness runs end to end on tiny settings and writes its file (no timing asserted)."""

import re

import pytest

from benchmarks import e2e

pytestmark = pytest.mark.integration


def test_benchmark_harness__tiny_run_writes_its_table(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\nhand-written notes stay\n")
    e2e.main(["--broker", "embedded", "--rates", "50", "--duration-s", "1", "--groups", "1", "--warmup-s", "1",
              "--out", str(out)])
    text = out.read_text()
    assert "hand-written notes stay" in text
    assert "**embedded broker, xgb + lr + canary (1 model-group worker)**" in text
    assert "| 50 |" in text and e2e.END in text


def test_compare_harness__tiny_run_writes_three_systems_ratios_and_a_plot(tmp_path):
    from benchmarks import compare

    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\nhand-written notes stay\n")
    compare.main(["--broker", "embedded", "--rates", "20", "--duration-s", "1", "--warmup-s", "1", "--refine", "0",
                  "--flood", "200", "--peer-workers", "1", "--out", str(out)])
    text = out.read_text()
    assert "hand-written notes stay" in text and compare.START in text and compare.END in text
    for system in compare.SYSTEMS:
        assert f"**{compare.LABELS[system]}** — maximum sustained rate" in text, system
    assert "messages/s" in text and "Rendezvous / peer at the same p99" in text and "**Per-hop overhead**" in text
    # per system: offered 20/s, what was achieved, 20 requests in 1 s, and nothing lost
    assert len(re.findall(r"^\| 20 \| \d+ \| 20 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| \d+ \| 0 \|", text, re.M)) == 3
    plot = tmp_path / "BENCHMARKS-latency.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({plot.name})" in text
