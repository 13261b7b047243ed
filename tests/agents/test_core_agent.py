"""The core's request stream (decoy + rendezvous) under Faust's test_context: no broker, real agent body, real table."""

import asyncio

from types import SimpleNamespace

import pytest

from agents import decoy, rendezvous
from agents.worker import Worker
from pipelines.spec import PipelineSpec
from schemas.codec import codec_for
from streams.kafka.settings import Settings
from streams.kafka.transport import StreamApp
from streams.metrics import PipelineMetrics

SPEC = PipelineSpec.from_dict({"pipeline": "ag", "partitions": 1, "models": [
    {"id": "a", "flavour": "external", "role": "champion", "group": "a"}]})


class Sent(list):
    """Stands in for the producer's network side: records what the agent publishes."""

    async def send(self, topic, key, value, partition, timestamp, headers, transactional_id=None):
        self.append((topic, key, value))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def capture(app) -> Sent:
    sent = Sent()

    async def started():
        return None

    app.producer.maybe_start = started
    app.producer.send = sent.send
    return sent


def on_topic(tested, topic: str) -> None:
    """The agent reads two topics; Faust's test wrapper names neither: put every message on ``topic``."""
    make = tested.to_message

    def to_message(*args, **kwargs):
        message = make(*args, **kwargs)
        message.topic = topic
        return message

    tested.to_message = to_message


@pytest.fixture
def core(tmp_path):
    app = StreamApp("rdv-test-decoy", broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False,
                    datadir=str(tmp_path / "faust"))
    settings = Settings.from_env({}, data_dir=tmp_path, broker="kafka://127.0.0.1:1")
    w = Worker(app, SPEC, settings, metrics=PipelineMetrics("ag"))
    archive = decoy.register(w)
    server, _ = rendezvous.register(w, archive)
    return SimpleNamespace(app=app, archive=archive, metrics=w.metrics, server=server)


def test_core_agent__archives_valid_requests_and_opens_their_mailbox_with_the_features(core):
    app = core.app
    request = {"request_id": "r1", "features": {"x": 1.5}, "deadline_ms": None, "tenant": None,
               "reply_to": None, "sent_at": None}
    raw = codec_for("Request").encode(request)

    async def scenario():
        capture(app)
        async with app.agents["ag-rendezvous"].test_context() as tested:
            on_topic(tested, "ag.requests")
            await tested.put(raw, key=b"r1")
        return app.tables["ag-mailboxes"]

    table = asyncio.run(scenario())
    assert table.data["r1"]["features"] == {"x": 1.5} and table.data["r1"]["done"] is None
    assert core.archive._rows[0][0] == "r1" and core.archive._rows[0][-1] == raw


def test_core_agent__the_commit_hook_takes_the_archive_rows_at_once_a_row_added_while_it_writes_is_kept(core, tmp_path):
    """The spool is written off the event loop; its rows are taken when the hook is called, with
    the other snapshots. (The writing thread used to take them itself, racing the loop's appends:
    a row appended to the list it had just written was lost.)"""
    from tables.archive import read_archive

    archive = core.archive
    archive.add({"request_id": "r1", "features": {}}, b"1", 0, 1, 1.0)

    async def scenario():
        writes = [hook() for hook in core.app.before_commit]  # as streams.kafka.transport.write_state does
        assert archive._rows == []  # taken at the instant of the hook
        archive.add({"request_id": "r2", "features": {}}, b"2", 0, 2, 2.0)  # arrives while it writes
        for write in writes:
            await write

    asyncio.run(scenario())
    assert [row[0] for row in archive._rows] == ["r2"]  # kept for the next write
    archive.flush()
    assert sorted(read_archive(tmp_path / "ag" / "archive", features=False)["request_id"]) == ["r1", "r2"]


def test_core_agent__bad_bytes_go_to_the_dlq_once_and_the_agent_keeps_going(core):
    app = core.app
    good = codec_for("Request").encode({"request_id": "ok", "features": {"x": 1.0}, "deadline_ms": None,
                                        "tenant": None, "reply_to": None, "sent_at": None})

    async def scenario():
        sent = capture(app)
        async with app.agents["ag-rendezvous"].test_context() as tested:
            on_topic(tested, "ag.requests")
            await tested.put(b"\x00garbage", key=b"bad")
            await tested.put(b'{"request_id": "x", "features": {"a": NaN}}', key=b"nan")
            await tested.put(good, key=b"ok")
        return sent

    sent = asyncio.run(scenario())
    letters = [codec_for("DeadLetter").decode(value) for topic, _, value in sent if topic == "ag.dlq"]
    assert [(d["key"], d["stage"]) for d in letters] == [(b"bad", "decode"), (b"nan", "decode")]
    assert "unknown format" in letters[0]["reason"] and letters[0]["payload"] == b"\x00garbage"
    assert "NaN" in letters[1]["reason"]
    assert [row[0] for row in core.archive._rows] == ["ok"] and "ok" in app.tables["ag-mailboxes"].data
    assert core.metrics._child(core.metrics._dlq, "decode")._value.get() == 2
