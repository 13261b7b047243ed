"""Per-model score state: what feedback says about every model (a worker keeps it in a
changelog-backed table: ``tables/scorestate.py``).

One row per (model, partition) — Faust writes a table row to the changelog partition of the
event that changed it, so a row keyed by model alone would be split across partitions and
restored wrongly; ``ScoreBook.summary`` merges the partitions exactly. A row holds, over the
last ``window`` events of each kind:

* scores seen by status (ok | error | late) and their latency (quantiles in the summary);
* labelled requests: (truth, prediction) pairs, with River's rolling metric over them —
  ``Rolling(Accuracy)`` for classification, ``Rolling(MAE)`` for regression;
* agreement with the canary and with the answer that was returned; how often it was chosen.

Rows are JSON (never pickle: the changelog is a topic); a worker writes the changed ones before
every offset commit, so a label whose offset is committed is in the table.

>>> book = ScoreBook(window=3)
>>> for truth in (1, 1, 0, 0):
...     _ = book.labelled(0, truth, {"lr": {"prediction": 1, "status": "ok"}}, chosen="lr")
>>> book.accuracy()["lr"]
(0.3333333333333333, 3)
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, deque
from typing import Any, Iterable, Mapping

import numpy as np
from river import metrics, utils

__all__ = ["ModelScoreState", "ScoreBook", "correct"]


def correct(truth: Any, prediction: Any) -> bool:
    """A class prediction matches the label (``1``, ``1.0``, ``True`` and ``"1"`` are one class)."""
    return _label(truth) == _label(prediction)


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class ModelScoreState:
    """One model on one partition."""

    def __init__(self, task: str = "classification", window: int = 500) -> None:
        self.task = task
        self.window = window
        self.status: Counter = Counter()
        self.latency_ms: deque = deque(maxlen=window)
        self.pairs: deque = deque(maxlen=window)   # (truth, prediction) of labelled requests
        self.ids: deque = deque(maxlen=window)     # their request ids, shortened: a label applied again is a no-op
        self.agree_canary: deque = deque(maxlen=window)
        self.agree_answer: deque = deque(maxlen=window)
        self.labelled = 0
        self.chosen = 0
        self._metric = self._new_metric()

    def _new_metric(self):
        return utils.Rolling(metrics.Accuracy if self.task == "classification" else metrics.MAE,
                             window_size=self.window)

    def scored(self, status: str, latency_ms: float) -> None:
        self.status[status] += 1
        if status == "ok":
            self.latency_ms.append(float(latency_ms))

    def knows(self, request_id: str | None) -> bool:
        """Was this request's label already learned (within the window)?"""
        return request_id is not None and _short(request_id) in self.ids

    def learn(self, truth: Any, prediction: Any, canary: Any = None, answer: Any = None, chosen: bool = False,
              request_id: str | None = None) -> float:
        """A label arrived for a request this model scored; returns its reward (1/0, or -|error|)."""
        if self.task == "classification":
            truth, prediction = _label(truth), _label(prediction)
            reward = float(truth == prediction)
        else:
            truth, prediction = float(truth), float(prediction)
            reward = -abs(truth - prediction)
        self.pairs.append((truth, prediction))
        self.ids.append(_short(request_id) if request_id is not None else "")
        self._metric.update(truth, prediction)
        if canary is not None:
            self.agree_canary.append(self._same(prediction, canary))
        if answer is not None:
            self.agree_answer.append(self._same(prediction, answer))
        self.labelled += 1
        self.chosen += bool(chosen)
        return reward

    def _same(self, a: Any, b: Any) -> bool:
        return _label(a) == _label(b) if self.task == "classification" else abs(float(a) - float(b)) < 1e-9

    def then(self, newer: "ModelScoreState") -> "ModelScoreState":
        """This (older, restored) state followed by ``newer`` (built since the restart)."""
        self.status.update(newer.status)
        self.latency_ms.extend(newer.latency_ms)
        for truth, prediction in newer.pairs:
            self.pairs.append((truth, prediction))
            self._metric.update(truth, prediction)
        self.ids.extend(newer.ids)
        self.agree_canary.extend(newer.agree_canary)
        self.agree_answer.extend(newer.agree_answer)
        self.labelled += newer.labelled
        self.chosen += newer.chosen
        return self

    def rewards(self) -> list[float]:
        """The reward of every labelled request in the window, oldest first (as :meth:`learn` gave them)."""
        if self.task == "classification":
            return [float(t == p) for t, p in self.pairs]
        return [-abs(float(t) - float(p)) for t, p in self.pairs]

    @property
    def metric(self) -> float | None:
        return self._metric.get() if self.pairs else None

    def to_json(self) -> dict:
        return {"task": self.task, "window": self.window, "status": dict(self.status),
                "latency_ms": list(self.latency_ms), "pairs": [list(p) for p in self.pairs], "ids": list(self.ids),
                "agree_canary": [int(a) for a in self.agree_canary], "agree_answer": [int(a) for a in self.agree_answer],
                "labelled": self.labelled, "chosen": self.chosen}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ModelScoreState":
        state = cls(data.get("task", "classification"), data.get("window", 500))
        state.status.update(data.get("status", {}))
        state.latency_ms.extend(data.get("latency_ms", ()))
        for truth, prediction in data.get("pairs", ()):
            state.pairs.append((truth, prediction))
            state._metric.update(truth, prediction)
        state.ids.extend(data.get("ids", ()))
        state.agree_canary.extend(bool(a) for a in data.get("agree_canary", ()))
        state.agree_answer.extend(bool(a) for a in data.get("agree_answer", ()))
        state.labelled, state.chosen = data.get("labelled", 0), data.get("chosen", 0)
        return state


class ScoreBook:
    """Every model's score state on the partitions this worker owns."""

    def __init__(self, task: str = "classification", window: int = 500) -> None:
        self.task = task
        self.window = window
        self.rows: dict[str, ModelScoreState] = {}   # "model@partition" -> state
        self.dirty: set[str] = set()

    def _row(self, model_id: str, partition: int) -> ModelScoreState:
        key = f"{model_id}@{partition}"
        self.dirty.add(key)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = ModelScoreState(self.task, self.window)
        return row

    def scored(self, partition: int, score: Mapping[str, Any]) -> None:
        self._row(score["model_id"], partition).scored(score.get("status", "ok"), score.get("latency_ms") or 0.0)

    def labelled(self, partition: int, truth: Any, scores: Mapping[str, Mapping[str, Any]], chosen: str | None,
                 canary: str | None = None, request_id: str | None = None) -> dict[str, float]:
        """A label for a request with these scores (model -> Score); returns each model's reward.
        With ``request_id``, a model whose row already learned this label is skipped (idempotent:
        a label replayed after a crash counts once)."""
        answer = scores.get(chosen, {}).get("prediction") if chosen else None
        reference = scores.get(canary, {}) if canary else {}
        canary_prediction = reference.get("prediction") if reference.get("status") == "ok" else None
        rewards = {}
        for model_id, score in scores.items():
            if score.get("status") != "ok" or score.get("prediction") is None:
                continue
            row = self.rows.get(f"{model_id}@{partition}")
            if row is not None and row.knows(request_id):
                continue
            rewards[model_id] = self._row(model_id, partition).learn(
                truth, score["prediction"], None if model_id == canary else canary_prediction, answer,
                chosen=model_id == chosen, request_id=request_id)
        return rewards

    def accuracy(self) -> dict[str, tuple[float, int]]:
        """model -> (recent accuracy, or minus the recent MAE for regression; labelled requests in the window)."""
        merged: dict[str, list[float]] = {}
        for key, row in self.rows.items():
            if row.pairs:
                total = merged.setdefault(key.rsplit("@", 1)[0], [0.0, 0])
                value = row.metric if self.task == "classification" else -row.metric
                total[0] += value * len(row.pairs)
                total[1] += len(row.pairs)
        return {m: (s / n, int(n)) for m, (s, n) in merged.items()}

    def summary(self) -> dict[str, dict[str, Any]]:
        """model -> merged figures of every partition (what ``rendezvous models status`` prints)."""
        by_model: dict[str, list[ModelScoreState]] = {}
        for key, row in self.rows.items():
            by_model.setdefault(key.rsplit("@", 1)[0], []).append(row)
        accuracy = self.accuracy()
        out = {}
        for model_id, rows in sorted(by_model.items()):
            latency = np.array([v for r in rows for v in r.latency_ms])
            status = sum((r.status for r in rows), Counter())
            labelled = sum(r.labelled for r in rows)
            value, window_n = accuracy.get(model_id, (None, 0))
            out[model_id] = {
                "scores": sum(status.values()), "errors": status.get("error", 0), "late": status.get("late", 0),
                "latency_p50_ms": _q(latency, 50), "latency_p99_ms": _q(latency, 99),
                "labelled": labelled, "window": window_n,
                ("accuracy" if self.task == "classification" else "mae"):
                    None if value is None else (value if self.task == "classification" else -value),
                "agreement_canary": _mean(v for r in rows for v in r.agree_canary),
                "agreement_answer": _mean(v for r in rows for v in r.agree_answer),
                "chosen_share": (sum(r.chosen for r in rows) / labelled) if labelled else None,
            }
        return out

    def dump_dirty(self) -> list[tuple[str, int, bytes]]:
        """(key, partition, JSON) of every row changed since the last call."""
        dirty, self.dirty = self.dirty, set()
        return [(key, int(key.rsplit("@", 1)[1]), json.dumps(self.rows[key].to_json(), separators=(",", ":")).encode())
                for key in sorted(dirty) if key in self.rows]

    def restore(self, items: Iterable[tuple[str, Any]]) -> int:
        """Rows read back from the table (after a restart), merged before what was built since; how many."""
        count = 0
        for key, value in items:
            data = json.loads(value) if isinstance(value, (bytes, str)) else value
            restored = ModelScoreState.from_json(data)
            self.rows[key] = restored.then(self.rows[key]) if key in self.rows else restored
            count += 1
        return count

    def drop(self, partitions: Iterable[int]) -> int:
        """Forget the rows of ``partitions`` (another worker holds them now and recovered them from
        the changelog); how many."""
        partitions = set(partitions)
        gone = {key for key in self.rows if int(key.rsplit("@", 1)[1]) in partitions}
        for key in gone:
            del self.rows[key]
        self.dirty -= gone
        return len(gone)

    def rewards(self, keys: Iterable[str] | None = None) -> dict[str, list[float]]:
        """model -> the rewards of its labelled requests in the window (every partition here, or
        only the rows ``keys``)."""
        out: dict[str, list[float]] = {}
        for key in self.rows if keys is None else [k for k in keys if k in self.rows]:
            out.setdefault(key.rsplit("@", 1)[0], []).extend(self.rows[key].rewards())
        return out


def _short(request_id: str) -> str:
    """12 hex characters of the id's hash: enough to tell a window's requests apart, and small."""
    return hashlib.blake2b(request_id.encode(), digest_size=6).hexdigest()


def _q(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return float(np.mean(values)) if values else None
