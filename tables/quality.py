"""The quality table: one row per validated window (what ``{p}.quality`` carries), appended to
``DATA_DIR/<pipeline>/quality/windows.jsonl``, and read back as a DataFrame."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

__all__ = ["QualityTable", "read_quality"]


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
