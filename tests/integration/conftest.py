"""Start whole pipelines (core + model groups as real processes) on a real broker.

The helpers live in ``streams/testing.py`` (the benchmarks use them too)."""

from __future__ import annotations

import asyncio

import pytest


pytestmark = pytest.mark.integration


@pytest.fixture
def run():
    """Run a coroutine on a fresh event loop (tests stay plain functions)."""
    return lambda coro: asyncio.run(coro)
