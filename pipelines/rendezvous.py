"""The rendezvous engine: a mailbox per request, the policy, and exactly one Result each. No Faust inside.

A request opens its mailbox (``pipelines/mailbox.py``) and starts its deadline clock; scores
(single Scores from any language, ScoreBatches from our model groups) are filed into it. After
each event the pure policy (``pipelines/policies``) decides; the moment it is satisfied the
Result is built and the mailbox closed — in a store the caller provides (a changelog-backed
table in a worker, ``tables/mailboxes.py``), so closed stays closed across restarts and late
scores are only counted. :meth:`Rendezvous.due` fires deadlines outside any event. Feedback is
joined here too (:meth:`Rendezvous.on_feedback`): the score book, the policy's reward, the
fallback rule, River's drift detectors on every model's errors and the auto-promotion rule
learn from it. ``agents/rendezvous.py`` and ``agents/feedback.py`` wire this to Kafka.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from typing import Callable

from features.decay import ErrorDrift
from pipelines.fallback import Fallback
from pipelines.mailbox import (DictStore, close_mailbox, file_score, is_open, new_mailbox, open_mailbox, result_record,
                               score_views)
from pipelines.policies import Decision, policy_for
from pipelines.promotion import beats
from pipelines.retraining import RetrainJob, RetrainPlanner, generation, lineage, retrainable
from pipelines.scorebook import ScoreBook
from pipelines.spec import PipelineSpec
from pipelines.telemetry import Telemetry

__all__ = ["Rendezvous", "wall_clock_ms"]


def wall_clock_ms() -> float:
    return time.time() * 1000.0


class Rendezvous:
    """The decisions of the rendezvous over a mailbox mapping; no Faust inside.

    Every method returns the Results to publish as ``(request_id, partition, record)``.
    A decided mailbox is closed in memory at once (no second decision), but written to the
    changelog as closed only by :meth:`confirm`, after its Result went to the producer: a
    worker stopped in between then re-decides the request instead of never answering it.
    ``clock`` gives milliseconds and is injected in tests.
    """

    def __init__(self, spec: PipelineSpec, mailboxes: DictStore, clock: Callable[[], float] = wall_clock_ms,
                 miss_limit: int = 3, orphan_grace_ms: float = 2000.0, metrics: "Telemetry | None" = None) -> None:
        self.spec = spec
        self.metrics = metrics or Telemetry()
        self.mailboxes = mailboxes
        self.clock = clock
        self.book = ScoreBook(spec.task, spec.fallback.window)
        self.fallback = Fallback(spec.fallback, miss_limit)
        self.decay = ErrorDrift()  # River's ADWIN on every model's errors, rises only are decay
        rules = spec.quality  # auto_retrain: decayed models are retrained on the data after their change
        self.retrains = RetrainPlanner(self.decay, rules.retrain_min_rows, rules.retrain_cooldown_s, clock,
                                       refinements=rules.retrain_refinements) if rules.auto_retrain else None
        self.retrain_jobs: list[RetrainJob] = []  # ready to run (agents/feedback.py runs them)
        self.policy = self._policy(spec)
        self.alerts: list[dict] = []  # fallback switches to publish on {p}.alerts
        self.examples: list[dict] = []  # labelled examples joined outside the feedback agent, to publish
        self.paired: dict[tuple[str, str], list[int]] = {}  # (candidate, champion) -> [champion only right, candidate only]
        self.promotions: list[dict] = []  # candidates that beat the champion (their auto-promotion rule)
        self.stats: Counter = Counter()
        self.late: Counter = Counter()
        self.last_request_at: float | None = None  # the clock (ms) at the last new request …
        self.last_scored: dict[str, float] = {}  # … and at each model's last Score: health's "not scoring"
        self._live_since: dict[str, float] = {}  # a model never scored: the first request it was live for
        self.answered: dict[str, float] = {}  # answered before this worker had the partition
        self.assigned: set[int] | None = None  # the partitions this worker holds (None: before the first assignment)
        self._deadlines: list[tuple[float, str]] = []
        self.orphan_grace_ms = orphan_grace_ms
        self._orphans: list[tuple[float, str]] = []
        self._expiry: list[tuple[float, str]] = []  # (when a closed mailbox may be forgotten, request id)

    def _policy(self, spec: PipelineSpec):
        return policy_for(spec.policy, spec.ranking, self.book.accuracy, spec.task, spec.fallback.min_labels)

    @property
    def canary(self) -> str | None:
        return next((m.id for m in self.spec.models if m.role == "canary"), None)

    def update(self, spec: PipelineSpec) -> None:
        """The registry changed: the policy follows the new roles and preference order at once
        (keeping what it learned: a bandit's arms are the new ranking, its rewards stay)."""
        same = spec.policy == self.spec.policy and spec.task == self.spec.task
        self.spec = spec
        if same:
            self.policy.ranking = spec.ranking
        else:
            self.policy = self._policy(spec)
        if self.retrains:
            self.retrains.forget(self._retrainable)

    def silent(self, limit_s: float) -> dict[str, float]:
        """Live models whose Scores stopped while requests kept coming: model id -> seconds between
        its last Score (or the first request it was live for) and the last request, when over
        ``limit_s``. No traffic, no verdict: an idle pipeline is not a broken one."""
        if self.last_request_at is None:
            return {}
        out = {}
        for m in self.spec.models:
            if m.flavour == "external" and m.id not in self.last_scored:
                continue  # an external worker may not be started yet: the group check names that
            since = self.last_scored.get(m.id) or self._live_since.setdefault(m.id, self.last_request_at)
            gap_s = (self.last_request_at - since) / 1000.0
            if gap_s > limit_s:
                out[m.id] = gap_s
        return out

    def _retrainable(self, model_id: str) -> bool:
        return any(m.id == model_id and retrainable(m) for m in self.spec.models)

    def _newest_version(self, root: str) -> str | None:
        """The version of a retrained lineage to retrain again: the newest live one (``None``
        while one of its candidates is still a shadow under evaluation, or none can be)."""
        versions = [m for m in self.spec.models if lineage(m.id) == root]
        if any(m.role == "shadow" for m in versions):
            return None
        live = [m.id for m in versions if retrainable(m)]
        return max(live, key=generation, default=None)

    def assign(self, partitions) -> tuple[list[int], int]:
        """A rebalance gave this worker ``partitions``. The mailboxes and score rows of partitions it
        held before and not now leave its memory: the worker holding them recovers them from the
        changelogs (written when they were revoked). (Lost partitions, mailboxes dropped.)"""
        held, self.assigned = self.assigned, set(partitions)
        lost = sorted(held - self.assigned) if held is not None else []
        gone = [rid for rid, box in list(self.mailboxes.items()) if box["partition"] in lost] if lost else []
        for rid in gone:
            self.mailboxes.discard(rid)
        self.book.drop(lost)
        return lost, len(gone)

    def holds(self, partition: int) -> bool:
        """Is ``partition`` this worker's (not a standby copy)? True before the first assignment."""
        return self.assigned is None or partition in self.assigned

    def remember_answered(self, answered: dict[str, float]) -> None:
        """Requests that already have a Result on the results topic: never answer them again."""
        self.answered.update(answered)

    def forget_answered(self, before_ms: float) -> None:
        self.answered = {rid: at for rid, at in self.answered.items() if at >= before_ms}

    def on_request(self, request: dict, partition: int, encoding: str | None = None) -> list[tuple]:
        """``encoding`` is how the request came (json | avro): its Result is answered alike."""
        rid = request["request_id"]
        box = self.mailboxes.get(rid) or new_mailbox(partition)
        if box["opened_at"] is not None or rid in self.answered:
            self.stats["duplicate_requests"] += 1
            self.metrics.request(duplicate=True)
            if box["opened_at"] is None:  # answered before a crash that lost its mailbox: keep it for feedback
                open_mailbox(box, request, self.clock(), self.spec.deadline_ms)
                box["done"], box["sent"] = "answered", True
                self.mailboxes.save(rid, box, final=True)
                heapq.heappush(self._expiry, (box["opened_at"] + self.spec.feedback_ttl_s * 1000.0, rid))
                parked = box.pop("parked", None)
                if parked:  # its label came first: join it now
                    example, _ = self.on_feedback(parked, partition)
                    if example is not None:
                        self.examples.append(example)
            return []
        self.stats["requests"] += 1
        self.metrics.request()
        self.last_request_at = now = self.clock()
        open_mailbox(box, request, now, self.spec.deadline_ms)
        box["meta"]["encoding"] = encoding
        box["meta"]["ranking"] = list(self.policy.order(request["features"], self.fallback.set_aside))
        aside = [f"{m} ({'; '.join(self.fallback.reasons[m].values())})" for m in self.policy.ranking
                 if m in self.fallback.set_aside]
        if aside:
            box["meta"]["aside"] = aside
        out = self._decide(rid, box)
        if not out:
            heapq.heappush(self._deadlines, (box["deadline_at"], rid))
        self.mailboxes.save(rid, box)  # answered at once: confirm() marks it final when the Result is out
        return out

    def on_score(self, score: dict, partition: int) -> list[tuple]:
        return self.on_scores([score], partition)

    def on_scores(self, scores: list[dict], partition: int) -> list[tuple]:
        """Scores that arrived together (a model group's ScoreBatch): all are filed, then each
        request they touch is decided once — the policy sees everything that arrived at that instant."""
        touched: dict[str, dict] = {}
        now = self.clock()
        for score in scores:
            self.last_scored[score["model_id"]] = now
            box = self._file(score, partition, now)
            if box is not None and box["opened_at"] is not None:
                touched[score["request_id"]] = box
        out = []
        for rid, box in touched.items():
            out += self._decide(rid, box)
        return out

    def _file(self, score: dict, partition: int, now: float) -> dict | None:
        """File one score; the mailbox if it is still to be decided."""
        rid, model_id = score["request_id"], score["model_id"]
        box = self.mailboxes.get(rid)
        if box is None:
            box = new_mailbox(partition)
            # if the request itself never shows up, its scores answer it (see due())
            heapq.heappush(self._orphans, (now + self.orphan_grace_ms, rid))
        # punctual: before its request's deadline (a score ahead of its request is)
        punctual = box["opened_at"] is None or now <= box["deadline_at"]
        self.alerts += self.fallback.scored(model_id, score["status"], punctual)
        late = box["done"] is not None or rid in self.answered
        self.metrics.scored(score, late)
        if late:
            self.late[model_id] += 1
            self.book.scored(partition, {**score, "status": "late"})
            if box["done"] is not None or rid in self.answered:  # its feedback still counts for this model
                file_score(box, score)
                if box.get("labelled"):  # a replay after a crash: the label came first (rows count it once)
                    self.book.labelled(partition, box["label"], {model_id: box["scores"][model_id]}, None, request_id=rid)
                self.mailboxes.save(rid, box, final=bool(box.get("sent")))
            return None
        self.book.scored(partition, score)
        file_score(box, score)
        self.mailboxes.save(rid, box)  # the scores an offset commit covers are in the changelog
        return box

    def overdue(self, now: float | None = None) -> bool:
        """Is a deadline or an orphan's grace already past? (A heap peek: cheap after every event.)"""
        now = self.clock() if now is None else now
        return bool(self._deadlines and self._deadlines[0][0] <= now or self._orphans and self._orphans[0][0] <= now)

    def due(self) -> list[tuple]:
        """Decide every mailbox whose deadline passed, and every orphan.

        An orphan is a mailbox with scores whose request did not arrive within
        ``orphan_grace_ms`` of its first score: the models saw the request but this worker did
        not (Faust can drop a message for one agent of a worker while it rebalances, and then
        delivers it again only after a restart). It is answered from its scores at once,
        with the pipeline's deadline counted from its first score — late, but answered.
        """
        now = self.clock()
        out = []
        while self._orphans and self._orphans[0][0] <= now:
            _, rid = heapq.heappop(self._orphans)
            box = self.mailboxes.get(rid)
            if box is None or box["opened_at"] is not None or box["done"] is not None or rid in self.answered:
                continue
            self.stats["orphans"] += 1
            open_mailbox(box, {}, now - self.orphan_grace_ms, self.spec.deadline_ms)
            box["meta"]["orphan"] = True
            self.mailboxes.save(rid, box)
            decided = self._decide(rid, box, now)
            if not decided:  # a deadline longer than the grace: wait for the rest of it
                heapq.heappush(self._deadlines, (box["deadline_at"], rid))
            out += decided
        while self._deadlines and self._deadlines[0][0] <= now:
            _, rid = heapq.heappop(self._deadlines)
            box = self.mailboxes.get(rid)
            if is_open(box) and rid not in self.answered:
                out += self._decide(rid, box, now)
        return out

    def on_feedback(self, feedback: dict, partition: int, features: dict | None = None) -> tuple[dict | None, str | None]:
        """A label for an answered request: (labelled example for online learners, or why it is refused).

        Joins the label with every score the request got and the answer returned; updates the
        score state, the policy (a bandit's delayed reward) and the fallback rule. ``features``:
        the request as the models saw it; by default the mailbox's copy (``None`` for an orphan).
        """
        rid = feedback["request_id"]
        box = self.mailboxes.get(rid)
        if (box is None or box["opened_at"] is None) and rid in self.answered and not (box or {}).get("parked"):
            # a replay after a crash: the label overtook its request, which is on its way again
            box = box or new_mailbox(partition)
            box["parked"] = {"request_id": rid, "label": feedback["label"], "observed_at": feedback.get("observed_at")}
            self.mailboxes.save(rid, box)
            heapq.heappush(self._expiry, (self.clock() + self.spec.feedback_ttl_s * 1000.0, rid))
            self.stats["feedback_parked"] += 1
            return None, None
        if box is None or box["opened_at"] is None:
            self.stats["feedback_unknown"] += 1
            self.metrics.feedback("unknown")
            return None, (f"feedback for unknown request {rid!r}: no request with this id was seen on this "
                          f"partition in the last {self.spec.feedback_ttl_s} s (feedback_ttl_s)")
        age_s = (self.clock() - box["opened_at"]) / 1000.0
        if age_s > self.spec.feedback_ttl_s:
            self.stats["feedback_expired"] += 1
            self.metrics.feedback("expired")
            return None, f"feedback for expired request {rid!r}: it arrived {age_s:.0f} s after the request; feedback_ttl_s is {self.spec.feedback_ttl_s}"
        if box.get("labelled"):
            self.stats["feedback_duplicate"] += 1
            self.metrics.feedback("duplicate")
            # a crash may have written the mailbox's flag but not every score row: complete them (idempotent)
            self.book.labelled(partition, box.get("label", feedback["label"]), box["scores"], box.get("chosen"),
                               self.canary, rid)
            return None, f"feedback for request {rid!r} was already received; the first label counts"
        box["labelled"], box["label"] = True, feedback["label"]  # durable before the feedback's offset is committed
        self.mailboxes.save(rid, box, final=box["done"] is not None)
        features = box.get("features") if features is None else features
        self.stats["feedback"] += 1
        self.metrics.feedback("joined")
        label = feedback["label"]
        rewards = self.book.labelled(partition, label, box["scores"], box.get("chosen"), self.canary, rid)
        ranking = box["meta"].get("ranking")
        if ranking and box.get("chosen") and features is not None:
            self.policy.learn(ranking, features, rewards)
        self.alerts += self.fallback.judge(self.book.accuracy(), self.canary)
        for model_id, reward in rewards.items():  # 1/0 right/wrong, or minus the absolute error
            error = 1.0 - reward if self.spec.task == "classification" else -reward
            for alert in self.decay.update(model_id, error, box["opened_at"]):
                self.alerts.append(alert)
                if self.retrains and self.retrains.on_decay(alert, self._retrainable(model_id)):
                    alert["reason"] += (f"; it is retrained once {self.retrains.min_rows} labelled requests came "
                                        "after the change (quality.retrain_min_rows)")
        if self.retrains:
            self.retrain_jobs += self.retrains.on_label(self._newest_version)
        self._compare_candidates(rewards)
        if features is None:
            return None, None
        return {"request_id": rid, "features": features, "label": label, "observed_at": feedback.get("observed_at")}, None

    def _compare_candidates(self, rewards: dict[str, float]) -> None:
        """Paired outcomes of shadows with an auto-promotion rule against the champion (McNemar)."""
        champion = next((m.id for m in self.spec.models if m.role == "champion"), None)
        if champion not in rewards:
            return
        for model in self.spec.models:
            if model.auto_promote is None or model.role != "shadow" or model.id not in rewards:
                continue
            counts = self.paired.get((model.id, champion))
            if counts is None:  # from the held-out pairs against this champion, if its retrain measured them
                counts = self.paired[(model.id, champion)] = next(
                    ([c, n] for who, c, n in model.prior if who == champion), [0, 0])
            mine, theirs = rewards[model.id] > 0, rewards[champion] > 0
            if mine != theirs:
                counts[int(mine)] += 1
                better, p_value = beats(counts[0], counts[1], model.auto_promote)
                if better and all(p["model_id"] != model.id for p in self.promotions):
                    self.promotions.append({"model_id": model.id, "champion": champion, "p_value": p_value,
                                            "champion_only": counts[0], "candidate_only": counts[1],
                                            "confidence": model.auto_promote})

    def encoding_of(self, request_id: str, default: str) -> str:
        box = self.mailboxes.get(request_id)
        return (box and box["meta"].get("encoding")) or default

    def confirm(self, request_id: str) -> None:
        """The Result of ``request_id`` went to the producer: write its closed mailbox durably."""
        box = self.mailboxes.get(request_id)
        box["sent"] = True
        self.mailboxes.save(request_id, box, final=True)
        heapq.heappush(self._expiry, (box["opened_at"] + self.spec.feedback_ttl_s * 1000.0, request_id))

    def expire(self) -> int:
        """Retention: forget closed mailboxes older than ``feedback_ttl_s`` (their feedback would be
        refused as expired anyway); how many. Memory and the changelog stay bounded by the rate times
        the TTL. A request redelivered after that is still caught by the Results read back on assignment."""
        now, forgotten = self.clock(), 0
        while self._expiry and self._expiry[0][0] <= now:
            _, rid = heapq.heappop(self._expiry)
            box = self.mailboxes.get(rid)
            if box is not None and (box["done"] is not None or box["opened_at"] is None):
                self.mailboxes.forget(rid)
                forgotten += 1
        self.stats["mailboxes_forgotten"] += forgotten
        return forgotten

    def recover(self) -> int:
        """Re-arm the deadlines of open mailboxes and the retention of closed ones (after a
        restart or a rebalance restored them from the changelog)."""
        armed = {rid for _, rid in self._deadlines}
        expiring = {rid for _, rid in self._expiry}
        missing = []
        ttl_ms = self.spec.feedback_ttl_s * 1000.0
        for rid, box in self.mailboxes.items():
            if not self.holds(box["partition"]):  # a standby copy of another worker's partition
                continue
            if is_open(box) and rid not in armed and rid not in self.answered:
                missing.append((box["deadline_at"], rid))
            elif box["done"] is not None and rid not in expiring and box["opened_at"] is not None:
                heapq.heappush(self._expiry, (box["opened_at"] + ttl_ms, rid))
        for item in missing:
            heapq.heappush(self._deadlines, item)
        return len(missing)

    def _decide(self, rid: str, box: dict, now: float | None = None) -> list[tuple]:
        now = self.clock() if now is None else now
        decision: Decision | None = self.policy.decide(score_views(box), box["deadline_at"], now, self.fallback.down,
                                                       box["meta"].get("ranking"))
        if decision is None:
            return []
        if decision.by_deadline:  # decided because its deadline passed: how much later than it
            self.metrics.overshoot(max(0.0, now - box["deadline_at"]) / 1000.0)
        if decision.missing:
            self.metrics.missed(decision.missing)
            self.alerts += self.fallback.missed(decision.missing)
        self.stats[f"results_{decision.status}"] += 1
        record = result_record(rid, box, decision, self.policy.name, now)
        close_mailbox(box, decision)
        self.metrics.result(record, decision.score.role if decision.score else None)
        return [(rid, box["partition"], record)]
