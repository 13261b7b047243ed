"""The archives as Parquet files — raw requests (the decoy) and every Score the rendezvous
saw (what replay compares a candidate with) — and readers that turn them into DataFrames."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["ParquetArchive", "ScoreArchive", "read_archive", "read_scores"]

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
    """Buffers rows and writes them as Parquet files.

    Rows are added on the event loop and handed over there (:meth:`take`); only the writing
    runs off the loop. (A thread that swapped the buffer itself raced ``add``: a row appended to
    the list it had already written was lost — one archived request in eight fault runs.)"""

    schema = _SCHEMA

    def __init__(self, directory: Path, flush_rows: int = 5000) -> None:
        self.directory = Path(directory)
        self.flush_rows = flush_rows
        self._rows: list[tuple] = []
        self._lock = threading.Lock()  # one writer of files at a time

    def take(self) -> list[tuple]:
        """The buffered rows, handed over (on the thread that adds them: the event loop)."""
        rows, self._rows = self._rows, []
        return rows

    def flush(self, rows: list[tuple] | None = None) -> Path | None:
        """Write ``rows`` (default: :meth:`take`) and what was spooled to a new file.

        The spooled files are deleted only after the new file is in place: a crash in between
        leaves rows twice, which every reader de-duplicates by ``request_id``."""
        rows = self.take() if rows is None else rows
        with self._lock:
            spooled = sorted(self._spool_dir.glob("*.parquet")) if self._spool_dir.exists() else []
            if not rows and not spooled:
                return None
            tables = [t for t in map(_read_spooled, spooled) if t is not None] + ([self._table(rows)] if rows else [])
            if not tables:
                return None
            path = self._write(pa.concat_tables(tables), self.directory)
            for f in spooled:
                f.unlink(missing_ok=True)  # a second core worker (same data directory) may have merged it too
            return path

    def spool(self, rows: list[tuple] | None = None) -> Path | None:
        """Make ``rows`` (default: :meth:`take`) durable now, as a small file ``flush`` merges later:
        the core does this before every offset commit, so a crash (even SIGKILL) loses no archived
        request."""
        rows = self.take() if rows is None else rows
        with self._lock:
            return self._write(self._table(rows), self._spool_dir) if rows else None

    def prune(self, max_age_s: float, now: float | None = None) -> int:
        """Retention: delete archive files older than ``max_age_s``; how many."""
        cutoff = (time.time() if now is None else now) - max_age_s
        old = [f for f in self.directory.glob("part-*.parquet") if f.stat().st_mtime < cutoff]
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

    def add(self, score: Mapping[str, Any], received_s: float) -> None:
        probabilities = score.get("probabilities") or {}
        prediction = score.get("prediction")
        self._rows.append((score["request_id"], score["model_id"], score.get("model_version"), score.get("role"),
                           None if prediction is None else str(prediction), probabilities.get("1"),
                           score.get("status"), score.get("latency_ms"), int(received_s * 1000)))


def _read(directory: Path, schema: pa.Schema) -> pd.DataFrame:
    files = sorted(Path(directory).glob("*.parquet"))
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
