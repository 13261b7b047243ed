"""The quality table: one row per validated window (what ``{p}.quality`` carries), appended to
``DATA_DIR/<pipeline>/quality/windows.jsonl``, and read back as a DataFrame."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

__all__ = ["QualityTable", "last_window", "read_quality"]


class QualityTable:
    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / "windows.jsonl"

    def add(self, record: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record, default=str) + "\n")


def read_quality(directory: Path) -> pd.DataFrame:
    """Every window checked so far, oldest first; times as UTC timestamps."""
    path = Path(directory) / "windows.jsonl"
    if not path.exists():
        return pd.DataFrame(columns=["window_start", "window_end", "rows", "gx_success", "decay", "unlike_share"])
    frame = pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
    for column in ("window_start", "window_end"):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True)
    return frame.sort_values("window_start").reset_index(drop=True)


def last_window(directory: Path, tail_bytes: int = 65536) -> dict | None:
    """The newest window, reading only the end of the file (``/metrics`` calls this on every scrape)."""
    path = Path(directory) / "windows.jsonl"
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - tail_bytes))
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        try:
            return json.loads(line)
        except ValueError:  # the first, cut line of the tail, or a line being written
            continue
    return None
