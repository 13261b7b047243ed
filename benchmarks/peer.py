"""The peer: what a user would pick instead of Rendezvous — the same models behind a
conventional REST ensemble service (FastAPI + uvicorn), each request calling every model and
answering with the first by the same preference order.

    RDV_PEER_SPEC=pipeline.yaml uvicorn --factory benchmarks.peer:create_app --workers 2

The models are loaded with our own flavours from the same spec and artifacts (verified
against their SHA-256), so both systems run exactly the same model code; the peer scores one
request at a time (no micro-batching: a REST call is one request), in the event loop (no
thread hop). It has no deadline, no decoy, no canary comparison: it is the fast, plain
baseline. The HTTP load generator below paces requests exactly like the Kafka client's
``run_load`` (open loop: a send never waits for an answer).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

__all__ = ["create_app", "HttpLoad"]


class Body(BaseModel):
    features: dict[str, Any]


def create_app(spec_path: str | None = None):
    from fastapi import FastAPI, HTTPException

    from pipelines.flavours import load_model
    from pipelines.spec import load_spec

    spec = load_spec(Path(spec_path or os.environ["RDV_PEER_SPEC"]))
    models = [load_model(m) for m in sorted(spec.models, key=lambda m: m.preference)]
    answering = {m.id for m in spec.models if m.role != "canary"}
    app = FastAPI(title=f"{spec.name} ensemble (REST peer)")
    from streams.app import tune_gc

    tune_gc()  # the same collector tuning as our workers: the peer at its best

    @app.post("/predict")
    async def predict(body: Body) -> dict:
        scores = []
        for model in models:
            started = time.perf_counter()
            [outcome] = model.score_batch([body.features])
            scores.append({"model_id": model.spec.id, "prediction": outcome.prediction, "error": outcome.error,
                           "latency_ms": (time.perf_counter() - started) * 1000.0})
        chosen = next((s for s in scores if s["model_id"] in answering and s["error"] is None), None)
        if chosen is None:
            raise HTTPException(502, {"error": "no model answered", "scores": scores})
        return {"prediction": chosen["prediction"], "model_id": chosen["model_id"], "scores": scores}

    return app


class HttpLoad:
    """Open-loop HTTP load: ``count`` POSTs at ``rate`` per second, each timed send -> response."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self.timeout_s = timeout_s

    async def run(self, bodies: Callable[[int], dict], count: int, rate: float) -> tuple[list[float], int, float]:
        """(latencies in ms of the answered requests, how many failed or timed out, achieved rate)."""
        import aiohttp

        latencies: list[float] = []
        failed = 0
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:

            async def one(body: dict) -> None:
                nonlocal failed
                sent = time.perf_counter()
                try:
                    async with session.post(self.url, json=body) as response:
                        await response.read()
                        if response.status != 200:
                            failed += 1
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    failed += 1
                    return
                latencies.append((time.perf_counter() - sent) * 1000.0)

            tasks = []
            start = time.perf_counter()
            for i in range(count):  # the same pacing as PipelineClient.run_load
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(one(bodies(i))))
            achieved = count / (time.perf_counter() - start)
            await asyncio.gather(*tasks)
        return latencies, failed, achieved
