"""The raw-request archive as Parquet files, and a reader that turns it into a DataFrame."""

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

__all__ = ["ParquetArchive", "read_archive"]

_SCHEMA = pa.schema([
    ("request_id", pa.string()), ("partition", pa.int32()), ("offset", pa.int64()),
    ("received_at", pa.timestamp("ms", tz="UTC")), ("tenant", pa.string()), ("deadline_ms", pa.int32()),
    ("sent_at", pa.int64()), ("features", pa.string()), ("raw", pa.binary()),
])


class ParquetArchive:
    """Buffers archived requests and writes them as Parquet files, ``flush_rows`` at most per file."""

    def __init__(self, directory: Path, flush_rows: int = 5000) -> None:
        self.directory = Path(directory)
        self.flush_rows = flush_rows
        self._rows: list[tuple] = []
        self._lock = threading.Lock()

    def add(self, record: Mapping[str, Any], raw: bytes, partition: int, offset: int, received_s: float) -> None:
        self._rows.append((record["request_id"], partition, offset, int(received_s * 1000), record.get("tenant"),
                           record.get("deadline_ms"), record.get("sent_at"),
                           json.dumps(record["features"], separators=(",", ":")), raw))

    def flush(self) -> Path | None:
        """Write what is buffered to a new file (thread-safe; called off the event loop)."""
        with self._lock:
            rows, self._rows = self._rows, []
            if not rows:
                return None
            columns = list(zip(*rows))
            table = pa.table({name: pa.array(col, type=_SCHEMA.field(name).type)
                              for name, col in zip(_SCHEMA.names, columns)}, schema=_SCHEMA)
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
            tmp = path.with_suffix(".tmp")
            pq.write_table(table, tmp, compression="zstd")
            tmp.rename(path)
            return path


def read_archive(directory: Path, features: bool = True) -> pd.DataFrame:
    """All archived requests, de-duplicated by ``request_id`` (first seen wins), features as columns."""
    files = sorted(Path(directory).glob("*.parquet"))
    if not files:
        return pd.DataFrame(columns=_SCHEMA.names)
    frame = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
    frame = frame.sort_values("received_at").drop_duplicates("request_id", keep="first").reset_index(drop=True)
    if features:
        expanded = pd.json_normalize(frame["features"].map(json.loads).tolist())
        frame = pd.concat([frame.drop(columns=["features"]), expanded.add_prefix("f_")], axis=1)
    return frame
