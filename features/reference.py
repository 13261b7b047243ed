"""Build and store a pipeline's reference profile from its training data (what ``rendezvous profile`` does)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from features.profile import build_profile, build_suite, save_profile

__all__ = ["profile_training_data", "read_table"]


def read_table(path: Path) -> pd.DataFrame:
    """CSV or Parquet, by suffix."""
    path = Path(path)
    if path.suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if path.suffix in (".csv", ".txt"):
        return pd.read_csv(path)
    raise ValueError(f"{path}: training data must be .csv or .parquet")


def profile_training_data(pipeline: str, data: Path, features: Sequence[str], data_dir: Path,
                          store=None) -> tuple[Path, dict]:
    """Profile ``data`` (the file the models were trained on) for ``pipeline``; return (folder, profile).
    With a ``store`` (``streams.kafka.store.Store`` over ``data_dir``), the profile and the pointer
    to it are published there, for the quality worker wherever it runs."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    data = Path(data)
    profile = build_profile(read_table(data), features)
    gx.get_context(mode="ephemeral")  # GX serializes a suite only with a context in place
    suite = build_suite(profile, f"{pipeline}-requests")
    folder = save_profile(profile, suite.to_json_dict(), Path(data_dir) / pipeline / "profiles", data.read_bytes())
    if store is not None:
        store.push_tree(folder)
        store.push(folder.parent / "current")
    return folder, profile
