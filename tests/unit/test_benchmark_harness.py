"""The benchmark harness runs end to end on tiny settings and writes its file (no timing asserted)."""

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
