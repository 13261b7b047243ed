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

__all__ = ["DriftWatch", "QualityMonitor", "data_decayed", "decay_verdict"]

log = logging.getLogger(__name__)


def data_decayed(report: Mapping[str, Any], min_drifted: int = 2, unlike_limit: float = 0.1) -> bool:
    """Did a window's decay verdict come from the data itself (drifted features, requests unlike
    the training population), not only from the models' decay alerts? Only such a verdict makes
    the quality worker retrain the champion: a decayed model is the core's to retrain, from its own change.

    >>> data_decayed({"drifted": [], "unlike_share": 0.0, "decay": True})   # a model's decay alert only
    False
    >>> data_decayed({"drifted": ["age", "salary"], "unlike_share": 0.0, "decay": True})
    True
    """
    return bool(report.get("decay")) and (len(report["drifted"]) >= min_drifted or report["unlike_share"] > unlike_limit)


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


class DriftWatch:
    """Feature drift over a sequence of windows, with its false alarms controlled per day.

    A feature is flagged (``drifted``) only when it drifted in ``persistence`` windows in a row;
    ``window_drifted`` is the one window's test. The small-sample tests' level per window follows
    from the rate of false flags the spec allows, ``false_alarms_per_day`` (default 0.1: one in ten
    days), and the window's span: a window of ``s`` seconds is one of ``86,400 / s`` a day, so
    with windows independent under no drift, flags come at about ``(86,400 / s) · q^k`` a day when
    each window drifts by chance with probability ``q`` (all features together: Bonferroni) and
    ``k`` is ``persistence`` — solved for ``q``. The large-sample distances (PSI, Jensen–Shannon)
    have fixed thresholds that sampling noise does not reach; persistence still applies to them.

    >>> watch = DriftWatch({"features": {"x": {"kind": "numeric", "edges": [0.0, 5.0, 10.0], "shares": [0.5, 0.5],
    ...                     "sample": [float(v % 10) for v in range(1000)], "min": 0.0, "max": 9.99}}})
    >>> round(watch.significance(10.0), 5)  # a 10 s window, 0.1 false flags a day, 2 windows in a row
    0.0034
    >>> [watch.check(pd.DataFrame({"x": [9.0] * 500}), 10.0)["x"]["drifted"] for _ in range(2)]
    [False, True]
    """

    def __init__(self, profile: Mapping[str, Any], false_alarms_per_day: float = 0.1, persistence: int = 2) -> None:
        if false_alarms_per_day <= 0 or persistence < 1:
            raise ValueError("false_alarms_per_day must be > 0 and persistence >= 1")
        self.profile, self.features = profile, list(profile["features"])
        self.false_alarms_per_day, self.persistence = false_alarms_per_day, persistence
        self.reset()

    def reset(self) -> None:
        """Forget the streaks (a new stream, or a new profile)."""
        self.streak = dict.fromkeys(self.features, 0)

    def significance(self, span_s: float | None) -> float:
        """The small-sample tests' level for one feature in a window of ``span_s`` seconds."""
        share = self.false_alarms_per_day * max(span_s or 60.0, 1.0) / 86_400  # of a day's false flags
        return min(0.05, share ** (1 / self.persistence)) / max(len(self.features), 1)

    def check(self, frame: pd.DataFrame, span_s: float | None = None) -> dict[str, dict[str, Any]]:
        """Each feature's drift statistics in this window, ``window_drifted`` and the ``streak`` of
        windows in a row it drifted; ``drifted``: flagged (``streak`` ≥ ``persistence``)."""
        level = self.significance(span_s)
        out = {}
        for name in self.features:
            stats = feature_drift(self.profile["features"][name],
                                  frame[name].tolist() if name in frame.columns else [], level)
            self.streak[name] = self.streak[name] + 1 if stats.get("drifted") else 0
            out[name] = {**stats, "window_drifted": bool(stats.get("drifted")), "streak": self.streak[name],
                         "significance": level, "drifted": self.streak[name] >= self.persistence}
        return out


class QualityMonitor:
    """Validates windows of requests; GX context and suite built once."""

    def __init__(self, pipeline: str, profile: Mapping[str, Any], gx_dir: Path, min_drifted: int = 2,
                 unlike_limit: float = 0.1, keep_results: int = 500, false_alarms_per_day: float = 0.1,
                 persistence: int = 2) -> None:
        self.keep_results = keep_results  # GX validation results kept on disk (the newest)
        self.drift = DriftWatch(profile, false_alarms_per_day, persistence)
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
        window = dict(window or {})
        span_ms = (window["window_end"] - window["window_start"]) if {"window_start", "window_end"} <= set(window) else None
        drift = self.drift.check(frame, None if span_ms is None else span_ms / 1000)
        unlike = unlike_share(self.profile, frame)
        decayed, reasons = decay_verdict(drift, unlike, failed, model_alerts, self.min_drifted, self.unlike_limit)
        return {"pipeline": self.pipeline, **window, "rows": int(len(frame)), "gx_success": bool(result.success),
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
