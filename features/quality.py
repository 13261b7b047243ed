"""Data quality of a window of requests: Great Expectations against the suite, drift against
the reference profile, the share of requests unlike the training population, and the decay
verdict that combines them (with model-decay alerts from feedback when there are some).

Pure apart from GX's file-backed context (``DATA_DIR/<pipeline>/gx``), built once per monitor:
validation results are stored there, so ``build_docs`` renders GX Data Docs of recent windows.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from features.drift import feature_drift, unlike_share
from features.profile import build_suite

__all__ = ["QualityMonitor", "decay_verdict"]

log = logging.getLogger(__name__)


def decay_verdict(drift: Mapping[str, Mapping[str, Any]], unlike: float, gx_failed: Sequence[str],
                  model_alerts: Sequence[Mapping[str, Any]] = (), min_drifted: int = 2,
                  unlike_limit: float = 0.1) -> tuple[bool, list[str]]:
    """Whether the pipeline is decaying, and why.

    Decay: at least ``min_drifted`` features drifted, or more than ``unlike_limit`` of the requests
    fall outside the training population, or a model's error stream drifted (River). Failed
    expectations alone are a quality problem, not decay; they are listed among the reasons.

    >>> decay_verdict({"age": {"drifted": True, "method": "psi", "score": 0.4}}, 0.02, [])
    (False, ['drift in age (psi 0.400)'])
    """
    drifted = [f"{name} ({d['method']} {d['score']:.3f})" for name, d in drift.items() if d.get("drifted")]
    reasons = [f"drift in {', '.join(drifted)}"] if drifted else []
    decayed = len(drifted) >= min_drifted
    if unlike > unlike_limit:
        reasons.append(f"{unlike:.1%} of requests unlike the training population (limit {unlike_limit:.0%})")
        decayed = True
    for alert in model_alerts:
        reasons.append(alert["reason"])
        decayed = True
    if gx_failed:
        reasons.append(f"{len(gx_failed)} expectations failed")
    return decayed, reasons


class QualityMonitor:
    """Validates windows of requests; GX context and suite built once."""

    def __init__(self, pipeline: str, profile: Mapping[str, Any], gx_dir: Path, min_drifted: int = 2,
                 unlike_limit: float = 0.1, keep_results: int = 500) -> None:
        self.keep_results = keep_results  # GX validation results kept on disk (the newest)
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.pipeline, self.profile = pipeline, profile
        self.features = list(profile["features"])
        self.min_drifted, self.unlike_limit = min_drifted, unlike_limit
        Path(gx_dir).mkdir(parents=True, exist_ok=True)
        self.context = gx.get_context(mode="file", project_root_dir=str(gx_dir))
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        name = f"{pipeline}-requests"
        try:
            self.context.suites.delete(name)  # the profile may have changed: the suite follows it
        except Exception:
            pass
        suite = self.context.suites.add(build_suite(profile, name))
        source = self.context.data_sources.add_or_update_pandas(f"{pipeline}-live")
        asset = next((a for a in source.assets if a.name == "window"), None) or source.add_dataframe_asset("window")
        batch = next((b for b in asset.batch_definitions if b.name == "window"), None) or \
            asset.add_batch_definition_whole_dataframe("window")
        try:
            self.context.validation_definitions.delete(name)
        except Exception:
            pass
        self.validation = self.context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))

    def check(self, frame: pd.DataFrame, window: Mapping[str, Any] | None = None,
              model_alerts: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
        """Everything about one window of requests (features as columns)."""
        for name in self.features:  # a missing feature is a column of nulls (and a failed expectation)
            if name not in frame.columns:
                frame = frame.assign(**{name: None})
        result = self.validation.run(batch_parameters={"dataframe": frame})
        self._prune_results()
        failed = [_describe(r) for r in result.results if not r.success]
        significance = 0.05 / max(len(self.features), 1)  # Bonferroni: one window tests every feature
        drift = {name: feature_drift(self.profile["features"][name], frame[name].tolist(), significance)
                 for name in self.features}
        unlike = unlike_share(self.profile, frame)
        decayed, reasons = decay_verdict(drift, unlike, failed, model_alerts, self.min_drifted, self.unlike_limit)
        return {"pipeline": self.pipeline, **(window or {}), "rows": int(len(frame)), "gx_success": bool(result.success),
                "failed": failed, "drift": drift, "drifted": [n for n, d in drift.items() if d.get("drifted")],
                "unlike_share": unlike, "decay": decayed, "reasons": reasons}

    def _prune_results(self) -> int:
        """Retention: GX stores every validation result; keep the newest ``keep_results``."""
        folder = Path(self.context.root_directory) / "uncommitted" / "validations"
        runs = sorted((d for d in folder.glob("*/*/*") if d.is_dir()), key=lambda d: d.name)
        old = runs[:-self.keep_results] if len(runs) > self.keep_results else []
        for d in old:
            shutil.rmtree(d, ignore_errors=True)
        return len(old)

    def build_docs(self) -> Path:
        """GX Data Docs of the stored validations; the index page."""
        self.context.build_data_docs()
        return Path(self.context.root_directory) / "uncommitted" / "data_docs" / "local_site" / "index.html"


def _describe(result) -> str:
    config = result.expectation_config
    column = config.kwargs.get("column")
    observed = {k: v for k, v in (result.result or {}).items()
                if k in ("unexpected_percent", "observed_value", "unexpected_count")}
    return f"{config.type} on {column}: {observed}"
