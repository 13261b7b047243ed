"""The rendezvous server: a mailbox per request, the policy, and exactly one Result each.

One agent consumes ``{p}.requests`` and ``{p}.scores`` (co-partitioned by request_id): a
request opens its mailbox and starts its deadline clock; a score is filed into it. After
each event the pure policy decides; the moment it is satisfied the Result goes out and the
mailbox is closed — a changelog-backed table, so closed stays closed across restarts and
late scores are only counted. A timer fires deadlines: it closes due mailboxes outside an
event, writing the table's changelog to the mailbox's own partition.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import Counter
from typing import Callable

import faust

from agents.dlq import dead_letter
from pipelines.health import ModelHealth
from pipelines.policies import Decision, policy_for
from pipelines.spec import PipelineSpec
from schemas.codec import DecodeError, codec_for
from streams.settings import Settings
from streams.topics import PipelineTopics
from tables.mailboxes import (close_mailbox, file_score, is_open, new_mailbox, open_mailbox, result_record,
                              score_views)

__all__ = ["Rendezvous", "register"]

log = logging.getLogger(__name__)


def wall_clock_ms() -> float:
    return time.time() * 1000.0


class Rendezvous:
    """The decisions of the rendezvous over a mailbox mapping; no Faust inside.

    Every method returns the Results to publish as ``(request_id, partition, record)``.
    ``clock`` gives milliseconds and is injected in tests.
    """

    def __init__(self, spec: PipelineSpec, mailboxes, clock: Callable[[], float] = wall_clock_ms,
                 miss_limit: int = 3) -> None:
        self.spec = spec
        self.mailboxes = mailboxes
        self.clock = clock
        self.policy = policy_for(spec.policy, spec.ranking)
        self.health = ModelHealth(miss_limit)
        self.stats: Counter = Counter()
        self.late: Counter = Counter()
        self._deadlines: list[tuple[float, str]] = []

    def on_request(self, request: dict, partition: int) -> list[tuple]:
        rid = request["request_id"]
        box = self.mailboxes.get(rid) or new_mailbox(partition)
        if box["opened_at"] is not None:
            self.stats["duplicate_requests"] += 1
            return []
        self.stats["requests"] += 1
        open_mailbox(box, request, self.clock(), self.spec.deadline_ms)
        out = self._decide(rid, box)
        if not out:
            heapq.heappush(self._deadlines, (box["deadline_at"], rid))
        self.mailboxes[rid] = box
        return out

    def on_score(self, score: dict, partition: int) -> list[tuple]:
        rid, model_id = score["request_id"], score["model_id"]
        self.health.seen(model_id)
        box = self.mailboxes.get(rid) or new_mailbox(partition)
        if box["done"] is not None:
            self.late[model_id] += 1
            return []
        file_score(box, score)
        out = self._decide(rid, box) if box["opened_at"] is not None else []
        self.mailboxes[rid] = box
        return out

    def due(self) -> list[tuple[str, dict, list[tuple]]]:
        """Close every mailbox whose deadline passed: ``(request_id, mailbox, results)``."""
        now = self.clock()
        closed = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, rid = heapq.heappop(self._deadlines)
            box = self.mailboxes.get(rid)
            if is_open(box):
                closed.append((rid, box, self._decide(rid, box, now)))
        return closed

    def recover(self) -> int:
        """Re-arm the deadlines of open mailboxes (after a restart or a rebalance)."""
        armed = {rid for _, rid in self._deadlines}
        missing = [(box["deadline_at"], rid) for rid, box in self.mailboxes.items()
                   if is_open(box) and rid not in armed]
        for item in missing:
            heapq.heappush(self._deadlines, item)
        return len(missing)

    def _decide(self, rid: str, box: dict, now: float | None = None) -> list[tuple]:
        now = self.clock() if now is None else now
        decision: Decision | None = self.policy.decide(score_views(box), box["deadline_at"], now, self.health.down)
        if decision is None:
            return []
        if decision.missing:
            self.health.missed(decision.missing)
        self.stats[f"results_{decision.status}"] += 1
        record = result_record(rid, box, decision, self.policy.name, now)
        close_mailbox(box, decision)
        return [(rid, box["partition"], record)]


def register(app: faust.App, spec: PipelineSpec, settings: Settings, topics: PipelineTopics,
             on_result: Callable[[dict], None] = lambda record: None) -> Rendezvous:
    inputs = app.topic(topics.requests, topics.scores, key_serializer="raw", value_serializer="raw")
    results = app.topic(topics.results, key_serializer="raw", value_serializer="raw")
    dlq = app.topic(topics.dlq, key_serializer="raw", value_serializer="raw")
    table = app.Table(f"{spec.name}-mailboxes", partitions=spec.partitions)  # JSON keys and values
    server = Rendezvous(spec, table, miss_limit=settings.miss_limit)
    app.rdv_rendezvous = server
    requests_codec, scores_codec, results_codec = codec_for("Request"), codec_for("Score"), codec_for("Result")

    async def publish(out: list[tuple]) -> None:
        for rid, partition, record in out:
            await results.send(key=rid.encode(), value=results_codec.encode_as(record, settings.encoding),
                               partition=partition)
            on_result(record)

    @app.agent(inputs, name=f"{spec.name}-rendezvous")
    async def rendezvous(stream):
        async for event in stream.events():
            message = event.message
            is_request = message.topic == topics.requests
            try:
                if is_request:
                    out = server.on_request(requests_codec.decode(message.value, message.key), message.partition)
                else:
                    out = server.on_score(scores_codec.decode(message.value, message.key), message.partition)
            except DecodeError as exc:
                if not is_request:  # bad requests are reported once, by the decoy
                    await dead_letter(dlq, spec.name, event, exc.reason, exc.stage)
                continue
            except Exception as exc:  # never drop an event silently
                log.exception("rendezvous failed on %s@%s", message.topic, message.offset)
                await dead_letter(dlq, spec.name, event, f"{type(exc).__name__}: {exc}", "decide")
                continue
            await publish(out)

    @app.timer(settings.tick_ms / 1000.0, name=f"{spec.name}-deadlines")
    async def deadlines():
        for rid, box, out in server.due():
            # Outside an event: write the table's store and its changelog ourselves, to the
            # mailbox's own partition (Faust's table[key] = value needs a current event).
            table.data[rid] = box
            table.send_changelog(box["partition"], rid, box)
            await publish(out)

    @app.timer(1.0, name=f"{spec.name}-recover-deadlines")
    async def recover():
        if not app.rebalancing:
            server.recover()

    return server
