"""Helpers for whole pipelines on a real broker: the integration tests and the benchmarks use them.

:func:`make_stack` — a fresh pipeline (its own topics and groups) from trained demo models;
:func:`ready_client` — a client once every model answered a probe; :func:`all_answered` — wait
for Results, and long enough for duplicates to show; :func:`diagnose_lost` — where lost
requests are, for a failure message.
"""

from __future__ import annotations

import itertools
import os
import uuid

import yaml

from pipelines.jobs.train import agrawal_rows
from pipelines.spec import load_spec
from streams.client import PipelineClient
from streams.kafka.broker import free_port
from streams.kafka.clients import Kafka
from streams.kafka.settings import Settings
from streams.stack import Stack

__all__ = ["all_answered", "diagnose_lost", "make_stack", "ready_client", "rows"]

_counter = itertools.count()


def make_stack(broker, trained, tmp_path, deadline_ms: int = 150, spec: dict | None = None,
               extra_models: list[dict] = (), **overrides) -> Stack:
    """A fresh pipeline (unique name: its own topics and groups) on ``broker`` (anything with a
    ``url``); ``trained``: (directory, spec template) of ``train_demo_models``; ``spec`` overrides
    fields of the demo spec, ``extra_models`` are added to its models."""
    directory, template = trained
    data = yaml.safe_load(template.read_text())
    data.update(spec or {})
    data["models"] += list(extra_models)
    data["pipeline"] = f"t{next(_counter)}-{uuid.uuid4().hex[:6]}"
    data["deadline_ms"] = deadline_ms
    for model in data["models"]:
        model["artifact"] = str(directory / model["artifact"])
        if model.get("training_data"):
            model["training_data"] = str(directory / model["training_data"])
    path = tmp_path / f"{data['pipeline']}.yaml"
    path.write_text(yaml.safe_dump(data))
    # Only the log level comes from the environment (RDV_LOG_LEVEL=info to debug a test).
    env = {k: v for k, v in os.environ.items() if k == "RDV_LOG_LEVEL"}
    settings = Settings.from_env(env, broker=broker.url, data_dir=tmp_path / "data", web_port=free_port(), **overrides)
    return Stack(load_spec(path), settings)


def rows(n: int, seed: int = 11) -> list[dict]:
    return [x for x, _ in agrawal_rows(n, seed=seed)]


async def ready_client(stack: Stack, **kwargs) -> PipelineClient:
    client = PipelineClient(stack.settings, stack.spec.name, **kwargs)
    await client.__aenter__()
    try:
        await stack.wait_ready(client)
    except BaseException:
        await client.__aexit__(None, None, None)
        raise
    return client


async def all_answered(client: PipelineClient, ids: list[str], timeout_s: float = 60) -> set[str]:
    """Wait for every id's Result, then for one more request's: duplicates of the earlier ones
    would have arrived by then. Returns the ids still without a Result."""
    missing = await client.wait_results(ids, timeout_s=timeout_s)
    sentinel = await client.send(rows(1, seed=99)[0])
    await client.wait_results([sentinel], timeout_s=30)
    return missing


async def diagnose_lost(stack: Stack, lost: list[str]) -> str:
    """Where lost requests are on ``{p}.requests`` and where the core's group committed: for failure messages."""
    kafka, topic = Kafka(stack.settings), f"{stack.spec.name}.requests"
    found, ends = await _scan(kafka, topic, stack.spec.partitions, lost)
    answered, _ = await _scan(kafka, f"{stack.spec.name}.results", stack.spec.partitions, lost)
    admin = kafka.admin()
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(f"rdv-{stack.spec.name}-core")
        offsets = {f"{tp.topic}/{tp.partition}": meta.offset for tp, meta in committed.items() if tp.topic == topic}
    finally:
        await admin.close()
    return (f"on {topic} at (partition, offset): {found}; log ends {dict((t.partition, o) for t, o in ends.items())}; "
            f"core committed {offsets}; their Results on the results topic: {answered}")


async def _scan(kafka: Kafka, topic: str, partitions: int, keys: list[str]):
    """(partition, offset) of the messages keyed by ``keys`` in ``topic``, and its end offsets."""
    from aiokafka import TopicPartition

    from tables.results import records_until

    consumer = kafka.consumer(enable_auto_commit=False)
    await consumer.start()
    found = {}
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        async for m in records_until(consumer, ends):
            if m.key and m.key.decode() in keys:
                found[m.key.decode()] = (m.partition, m.offset)
    finally:
        await consumer.stop()
    return found, ends
