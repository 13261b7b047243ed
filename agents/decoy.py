"""The decoy: archives every raw request exactly as the models saw it.

Two copies: a changelog-backed table (``request_id`` -> raw bytes, for joins with feedback)
and Parquet files under ``$RDV_DATA_DIR/<pipeline>/archive/`` for offline work (replay,
notebooks). Parquet is written in batches off the event loop. Requests that do not decode
go to the DLQ with the reason — the decoy is the one role that reports bad requests.
"""

from __future__ import annotations

import asyncio
import logging
import time

import faust

from agents.dlq import dead_letter
from pipelines.spec import PipelineSpec
from schemas.codec import DecodeError, codec_for
from streams.settings import Settings
from streams.topics import PipelineTopics
from tables.archive import ParquetArchive

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(app: faust.App, spec: PipelineSpec, settings: Settings, topics: PipelineTopics) -> None:
    requests = app.topic(topics.requests, key_serializer="raw", value_serializer="raw")
    dlq = app.topic(topics.dlq, key_serializer="raw", value_serializer="raw")
    table = app.Table(topics.table("archive"), key_type=bytes, value_type=bytes, partitions=spec.partitions)
    archive = ParquetArchive(settings.data_dir / spec.name / "archive", settings.archive_flush_rows)
    codec = codec_for("Request")
    app.rdv_archive = archive
    app.rdv_archive_table = table  # the feedback agent joins labels with these requests

    @app.agent(requests, name=f"{spec.name}-decoy")
    async def decoy(stream):
        async for event in stream.events():
            message = event.message
            try:
                record = codec.decode(message.value, message.key)
            except DecodeError as exc:
                await dead_letter(dlq, spec.name, event, exc.reason, exc.stage)
                continue
            table[record["request_id"].encode()] = message.value
            archive.add(record, message.value, message.partition, message.offset, time.time())

    @app.timer(settings.archive_flush_s, name=f"{spec.name}-decoy-flush")
    async def flush():
        await asyncio.to_thread(archive.flush)

    @app.on_before_shutdown.connect
    async def _final_flush(app, **kwargs):
        archive.flush()
