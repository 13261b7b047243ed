"""The decoy: archives every raw request exactly as the models saw it.

A Parquet dataset ``<pipeline>/archive/date=…/partition=…/`` in the store (``RDV_STORE``;
the data directory by default) for offline work (replay, retrain, the quality worker,
notebooks, DuckDB), written in batches off the event loop; before every offset
commit the rows not yet written are spooled to ``archive/spool/`` (merged at the next batch),
so no archived request is lost to a crash. The decoy has no
stream of its own: the core consumes ``{p}.requests`` once, and each request is decoded once,
archived here, then opened at the rendezvous (``agents/rendezvous.py``). Requests that do not
decode go to the DLQ with the reason, once.

Design change (issue 6, measured): the decoy used to be its own agent with a changelog-backed
table ``request_id -> raw bytes`` for joining feedback. A second agent on the same topic
decoded every request twice, and the table cost one more changelog message per request; the
mailbox now keeps the request's features (what the models saw), and the feedback join reads
them there.
"""

from __future__ import annotations

import asyncio
import time

from agents.worker import Worker
from tables.archive import ParquetArchive

__all__ = ["register"]


def register(w: Worker) -> ParquetArchive:
    """The archive, flushed on a timer and spooled before every commit; the rendezvous agent adds
    every request to it (:func:`archive_request`)."""
    app, spec, settings = w.app, w.spec, w.settings
    archive = ParquetArchive(settings.data_dir / spec.name / "archive", settings.archive_flush_rows,
                             store=settings.open_store())

    @app.timer(settings.archive_flush_s, name=f"{spec.name}-decoy-flush")
    async def flush():
        await asyncio.to_thread(archive.flush, archive.take())

    @app.timer(60.0, name=f"{spec.name}-archive-retention")
    async def retention():
        if settings.archive_retention_s > 0:
            await asyncio.to_thread(archive.prune, settings.archive_retention_s)

    @app.on_before_shutdown.connect
    async def _final_flush(app, **kwargs):
        archive.flush()

    def spool():  # the rows are taken now, with the other snapshots (streams/kafka/transport.py)
        return asyncio.to_thread(archive.spool, archive.take())

    # before Faust commits the offsets of archived requests, their rows are on disk (a SIGKILL
    # once lost the last seconds of the archive: tests/reliability/test_kills.py)
    app.before_commit.append(spool)

    return archive


def archive_request(archive: ParquetArchive, record: dict, message) -> None:
    archive.add(record, message.value, message.partition, message.offset, time.time())
