"""Reproducible performance harness; results go to BENCHMARKS.md."""
