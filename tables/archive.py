"""The archives as Parquet files — raw requests (the decoy) and every Score the rendezvous
saw (what replay compares a candidate with) — and readers that turn them into DataFrames."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["ParquetArchive", "ScoreArchive", "archive_files", "read_archive", "read_scores"]

log = logging.getLogger(__name__)

_SCHEMA = pa.schema([
    ("request_id", pa.string()), ("partition", pa.int32()), ("offset", pa.int64()),
    ("received_at", pa.timestamp("ms", tz="UTC")), ("tenant", pa.string()), ("deadline_ms", pa.int32()),
    ("sent_at", pa.int64()), ("features", pa.string()), ("raw", pa.binary()),
])


_SCORES = pa.schema([
    ("request_id", pa.string()), ("model_id", pa.string()), ("model_version", pa.string()), ("role", pa.string()),
    ("prediction", pa.string()), ("probability", pa.float64()), ("status", pa.string()), ("latency_ms", pa.float64()),
    ("received_at", pa.timestamp("ms", tz="UTC")),
])


class _ParquetBuffer:
    """Buffers rows and writes them as Parquet files, laid out as a dataset
    (``date=YYYY-MM-DD/partition=N/part-….parquet``) that DuckDB, pyarrow and pandas read directly.

    Rows are added on the event loop and handed over there (:meth:`take`); only the writing
    runs off the loop. (A thread that swapped the buffer itself raced ``add``: a row appended to
    the list it had already written was lost — one archived request in eight fault runs.)

    With a ``store`` (:class:`streams.kafka.store.Store`) whose data directory holds
    ``directory``, every file is published to it: written under ``.outgoing/`` and uploaded by
    the flush; a store that does not answer leaves it there for the next flush, and answers never
    wait for it (flushes run off the event loop)."""

    schema = _SCHEMA
    by_partition = True

    def __init__(self, directory: Path, flush_rows: int = 5000, store=None) -> None:
        self.directory = Path(directory)
        self.flush_rows = flush_rows
        self.store = store
        self._prefix = (self.directory.resolve().relative_to(store.local.resolve()).as_posix()
                        if store is not None else None)
        self._rows: list[tuple] = []
        self._lock = threading.Lock()  # one writer of files at a time
        self._store_down_since: float | None = None

    def take(self) -> list[tuple]:
        """The buffered rows, handed over (on the thread that adds them: the event loop)."""
        rows, self._rows = self._rows, []
        return rows

    def flush(self, rows: list[tuple] | None = None) -> list[Path]:
        """Write ``rows`` (default: :meth:`take`) and what was spooled as new dataset files; publish
        them (and any a store outage held back) to the store.

        The spooled files are deleted only after the new files are in place: a crash in between
        leaves rows twice, which every reader de-duplicates by ``request_id``."""
        rows = self.take() if rows is None else rows
        with self._lock:
            spooled = sorted(self._spool_dir.glob("*.parquet")) if self._spool_dir.exists() else []
            tables = [t for t in map(_read_spooled, spooled) if t is not None] + ([self._table(rows)] if rows else [])
            paths = self._write_dataset(pa.concat_tables(tables)) if tables else []
            for f in spooled:
                f.unlink(missing_ok=True)  # a second core worker (same data directory) may have merged it too
        self.publish()
        return paths

    def publish(self) -> int:
        """Upload what was written and not uploaded yet; how many files (0 when the store is down)."""
        if self.store is None or not self.store.remote:
            return 0
        try:
            sent = self.store.upload_outgoing()
        except Exception as exc:  # StoreError, or anything the filesystem raised: the rows wait
            if self._store_down_since is None:
                self._store_down_since = time.time()
                log.warning("archive: the store is unreachable (%s); files wait in %s and go up when it is back",
                            exc, self.store.local / ".outgoing")
            return 0
        if self._store_down_since is not None:
            log.warning("archive: the store is back after %.0f s; %d waiting files uploaded",
                        time.time() - self._store_down_since, sent)
            self._store_down_since = None
        return sent

    def spool(self, rows: list[tuple] | None = None) -> Path | None:
        """Make ``rows`` (default: :meth:`take`) durable now, as a small file ``flush`` merges later:
        the core does this before every offset commit, so a crash (even SIGKILL) loses no archived
        request. The spool is local on purpose: it is this worker's, and a commit never waits on
        the store."""
        rows = self.take() if rows is None else rows
        with self._lock:
            return self._write(self._table(rows), self._spool_dir) if rows else None

    def prune(self, max_age_s: float, now: float | None = None) -> int:
        """Retention: delete archive files older than ``max_age_s`` (in the store too); how many."""
        if self.store is not None:
            return self.store.delete_older(self._prefix, max_age_s, now)
        cutoff = (time.time() if now is None else now) - max_age_s
        old = [f for f in archive_files(self.directory) if f.stat().st_mtime < cutoff]
        for f in old:
            f.unlink(missing_ok=True)
        return len(old)

    @property
    def _spool_dir(self) -> Path:
        return self.directory / "spool"

    def _table(self, rows: list[tuple]) -> pa.Table:
        schema = self.schema
        return pa.table({name: pa.array(col, type=schema.field(name).type)
                         for name, col in zip(schema.names, zip(*rows))}, schema=schema)

    def _write_dataset(self, table: pa.Table) -> list[Path]:
        """One file per day (and Kafka partition, for requests), where the store wants it."""
        days = pc.strftime(table["received_at"], format="%Y-%m-%d")
        keys = pa.table({"date": days, "partition": table["partition"]}) if self.by_partition else pa.table({"date": days})
        paths = []
        for group in keys.group_by(keys.column_names).aggregate([]).to_pylist():
            mask = pc.equal(days, group["date"])
            folder = f"date={group['date']}"
            if self.by_partition:
                mask = pc.and_(mask, pc.equal(table["partition"], group["partition"]))
                folder += f"/partition={group['partition']}"
            target = (self.store.staging(f"{self._prefix}/{folder}") if self.store is not None
                      else self.directory / folder)
            paths.append(self._write(table.filter(mask), target))
        return paths

    @staticmethod
    def _write(table: pa.Table, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = path.with_suffix(".tmp")
        pq.write_table(table, tmp, compression="zstd")
        tmp.rename(path)
        return path


def _read_spooled(path: Path) -> pa.Table | None:
    try:
        return pq.read_table(path)
    except FileNotFoundError:  # another core worker sharing the data directory merged it first
        return None


class ParquetArchive(_ParquetBuffer):
    """The decoy's archive of raw requests."""

    def add(self, record: Mapping[str, Any], raw: bytes, partition: int, offset: int, received_s: float) -> None:
        self._rows.append((record["request_id"], partition, offset, int(received_s * 1000), record.get("tenant"),
                           record.get("deadline_ms"), record.get("sent_at"),
                           json.dumps(record["features"], separators=(",", ":")), raw))


class ScoreArchive(_ParquetBuffer):
    """Every Score the rendezvous received (also late ones): the live models' recorded answers.

    ``prediction`` is kept as text (models of one pipeline may answer ints, strings or floats);
    ``probability`` is the probability of the positive class ``"1"`` when the Score has one.
    """

    schema = _SCORES
    by_partition = False  # a Score's request partition is not known here; by day only

    def add(self, score: Mapping[str, Any], received_s: float) -> None:
        probabilities = score.get("probabilities") or {}
        prediction = score.get("prediction")
        self._rows.append((score["request_id"], score["model_id"], score.get("model_version"), score.get("role"),
                           None if prediction is None else str(prediction), probabilities.get("1"),
                           score.get("status"), score.get("latency_ms"), int(received_s * 1000)))


def archive_files(directory: Path) -> list[Path]:
    """The dataset's files under ``directory`` (any layout), sorted; not the spool, which is one
    worker's rows not yet merged."""
    directory = Path(directory)
    return sorted(p for p in directory.rglob("*.parquet") if "spool" not in p.relative_to(directory).parts)


def _read(directory: Path, schema: pa.Schema) -> pd.DataFrame:
    files = archive_files(directory)
    if not files:
        return pa.table({n: pa.array([], type=schema.field(n).type) for n in schema.names}).to_pandas()
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)


def read_scores(directory: Path) -> pd.DataFrame:
    """Recorded Scores, one row per (request_id, model_id) (the first received wins)."""
    frame = _read(directory, _SCORES).sort_values("received_at")
    return frame.drop_duplicates(["request_id", "model_id"], keep="first").reset_index(drop=True)


def read_archive(directory: Path, features: bool = True) -> pd.DataFrame:
    """All archived requests, de-duplicated by ``request_id`` (first seen wins), features as columns."""
    frame = _read(directory, _SCHEMA)
    if frame.empty:
        return frame
    frame = frame.sort_values("received_at").drop_duplicates("request_id", keep="first").reset_index(drop=True)
    if features:
        expanded = pd.json_normalize(frame["features"].map(json.loads).tolist())
        frame = pd.concat([frame.drop(columns=["features"]), expanded.add_prefix("f_")], axis=1)
    return frame
