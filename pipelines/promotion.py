"""When a candidate may replace the champion: checks before a promotion, and the live rule.

:func:`promotion_checks` — what a candidate must pass before ``rendezvous models promote``
changes anything: it loads (verified bytes, safe loader), it reads only features the pipeline
has, it meets the pipeline's latency budget, and on replayed traffic it agrees enough with the
current champion (and is accurate enough on feedback, when the spec asks and there is feedback).
Pure: the caller (``pipelines/jobs/lifecycle.py``) loads and replays and passes what came out.

:func:`beats` — the auto-promotion rule: on live feedback, a candidate replaces the champion
only when it is right where the champion is wrong significantly more often than the reverse —
McNemar's exact test on the requests both scored, one-sided, at the stated confidence.

>>> beats(champion_only=10, candidate_only=30, confidence=0.95)[0]
True
>>> beats(champion_only=18, candidate_only=22, confidence=0.95)[0]
False
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from pipelines.spec import PipelineSpec

__all__ = ["Check", "beats", "promotion_checks", "summary"]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def promotion_checks(model_id: str, features: Iterable[str], pipeline: PipelineSpec, known_features: Iterable[str],
                     load_error: str | None, report, reference: str | None) -> list[Check]:
    """``report``: the candidate's replay (``pipelines.jobs.replay.ReplayReport``), ``None`` when it
    did not load; ``reference``: the model to agree with (the current champion), ``None`` when there is none."""
    checks = [Check("loads", load_error is None, load_error or "artifact verified and loaded")]
    features, known = list(features), set(known_features)
    unknown = [f for f in features if f not in known]
    checks.append(Check("features", not unknown,
                        f"reads {', '.join(unknown)}, which the pipeline's requests do not carry" if unknown
                        else f"all {len(features)} features are in the pipeline's requests" if features
                        else "no feature list recorded (external model): nothing to compare"))
    if report is None:
        checks.append(Check("replay", False, "no replay: the model did not load"))
        return checks
    rules = pipeline.checks
    checks.append(Check("traffic", report.rows >= rules.min_rows,
                        f"{report.rows} replayed requests (at least {rules.min_rows} needed"
                        f"{'' if report.rows >= rules.min_rows else '; let traffic run, or lower checks.min_rows'})"))
    budget, p99 = pipeline.latency_budget_ms, report.latency_ms["p99"]
    checks.append(Check("latency", p99 == p99 and p99 <= budget,
                        f"p99 {p99:.2f} ms per batch of {report.batch} (budget {budget:g} ms)"))
    if reference is None:
        checks.append(Check("agreement", True, "no champion to compare with"))
    else:
        share, n = report.agreement.get(reference), report.compared.get(reference, 0)
        ok = share is not None and share >= rules.min_agreement
        checks.append(Check("agreement", ok,
                            f"agrees with {reference} on {share:.1%} of {n} requests (at least {rules.min_agreement:.0%})"
                            if share is not None else f"no recorded answers of {reference} to compare with"))
    accuracy = report.accuracy.get(model_id)
    if rules.min_accuracy is not None:
        ok = accuracy is not None and accuracy >= rules.min_accuracy
        checks.append(Check("accuracy", ok, f"{accuracy:.1%} on {report.labelled} labelled requests "
                                            f"(at least {rules.min_accuracy:.0%})" if accuracy is not None
                            else "no feedback to measure accuracy on"))
    elif accuracy is not None:
        checks.append(Check("accuracy", True, f"{accuracy:.1%} on {report.labelled} labelled requests (not required)"))
    return checks


def summary(checks: list[Check]) -> str:
    return "; ".join(f"{c.name}: {'ok' if c.ok else 'FAILED'} ({c.detail})" for c in checks)


def beats(champion_only: int, candidate_only: int, confidence: float, min_discordant: int = 20) -> tuple[bool, float]:
    """(whether the candidate is better, the p-value); ``*_only``: requests only that model got right."""
    from scipy.stats import binomtest

    n = champion_only + candidate_only
    if n == 0:
        return False, 1.0
    p_value = float(binomtest(candidate_only, n, 0.5, alternative="greater").pvalue)
    return n >= min_discordant and p_value <= 1.0 - confidence, p_value
