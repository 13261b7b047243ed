"""StreamApp builds our transport, which passes the app's fetch settings and acks only what was handled."""

import asyncio

from streams.kafka.transport import Consumer, StreamApp, Transport


def test_transport__the_app_builds_our_transport_with_its_fetch_wait():
    app = StreamApp("rdv-test-transport", broker="kafka://127.0.0.1:1", autodiscover=False, fetch_max_wait_ms=7)
    assert isinstance(app.transport, Transport) and isinstance(app.producer_transport, Transport)
    consumer = app.consumer
    assert isinstance(consumer, Consumer)

    async def build():  # aiokafka consumers are created inside a running loop
        return consumer._thread._create_worker_consumer(app.transport)

    aiokafka_consumer = asyncio.run(build())
    assert aiokafka_consumer._fetch_max_wait_ms == 7  # what aiokafka hands its fetcher at start()


def test_transport__no_ack_is_recorded_while_the_flow_is_suspended():
    """Faust acks messages its streams skip during a stop/rebalance; committing them lost requests."""
    from faust.types import TP, Message

    app = StreamApp("rdv-test-acks", broker="kafka://127.0.0.1:1", autodiscover=False)
    consumer = app.consumer

    def message(offset, generation):
        m = Message("t.requests", 0, offset, 0.0, 0, None, b"k", b"v", None, tp=TP("t.requests", 0),
                    generation_id=generation)
        return m

    app.consumer_generation_id = 3
    app.flow_control.suspend()
    skipped = message(10, 3)
    assert consumer.ack(skipped) is False and not skipped.acked
    app.flow_control.resume()
    old = message(11, 2)  # pulled before the last rebalance
    assert consumer.ack(old) is False and not old.acked
    processed = message(12, 3)
    consumer.ack(processed)
    assert processed.acked  # an ordinary ack reaches Faust's bookkeeping


def _consumer(name):
    app = StreamApp(name, broker="kafka://127.0.0.1:1", autodiscover=False)
    app.consumer_generation_id = 1
    return app.consumer


def test_transport__fetches_for_a_copy_of_the_active_partitions_and_never_for_none():
    """aiokafka takes an empty partition set for "all": Faust's live set, emptied while the fetch
    waited for the consumer thread, drained paused request partitions that Faust then dropped."""
    from faust.types import TP

    consumer = _consumer("rdv-test-fetch-copy")
    asked = []

    async def thread_getmany(partitions, timeout):
        await asyncio.sleep(0)  # the consumer thread runs it later
        asked.append(partitions)
        return {}

    consumer._thread.getmany = thread_getmany
    live = {TP("t.requests", 0), TP("t-changelog", 0)}

    async def scenario():
        fetch = asyncio.create_task(consumer._getmany(live, 1.0))
        await asyncio.sleep(0)
        live.clear()  # recovery paused them while the fetch was queued
        await fetch
        assert await consumer._getmany(set(), 1.0) == {}  # nothing active: nothing is fetched

    asyncio.run(scenario())
    assert asked == [{TP("t.requests", 0), TP("t-changelog", 0)}]


def test_transport__records_fetched_before_a_seek_of_their_partition_are_not_delivered_after_it():
    """Faust resumes the stream partitions, then seeks them to their committed offsets while the
    fetcher runs. Records fetched before the seek, delivered after it, read as a gap from the reset
    read offset, and the gap was committed: the requests in it were never handled."""
    from aiokafka.structs import ConsumerRecord
    from faust.types import TP

    consumer = _consumer("rdv-test-seek")
    requests, scores = TP("t.requests", 0), TP("t.scores", 0)

    def records(tp, offsets):
        return [ConsumerRecord(tp.topic, tp.partition, o, 0, 0, b"k", b"v", None, 1, 1, ()) for o in offsets]

    async def thread_getmany(partitions, timeout):  # Faust delivers round-robin: requests first
        return {requests: records(requests, [40, 41, 42]), scores: records(scores, [7, 8])}

    async def seek_to_committed():  # requests rewind to their commit; scores have none yet: not moved
        return {requests: 12, scores: None}

    consumer._thread.getmany = thread_getmany
    consumer._thread.seek_to_committed = seek_to_committed
    consumer._thread.highwater = lambda tp: 50
    consumer._set_active_tps({requests, scores})

    async def scenario():
        delivered = []
        async for tp, message in consumer.getmany(timeout=1.0):
            delivered.append((tp.topic, message.offset))
            if len(delivered) == 1:
                await consumer.perform_seek()  # recovery completes while the batch is delivered
        return delivered

    delivered = asyncio.run(scenario())
    assert [o for t, o in delivered if t == requests.topic] == [40]  # 41, 42 are fetched again from 12
    assert [o for t, o in delivered if t == scores.topic] == [7, 8]  # not seeked: its records stand
    assert consumer._read_offset[requests] == 12


def test_transport__the_producer_is_idempotent_when_the_settings_ask():
    """A batch retried after a broker crash must be written once (a request got a second Result)."""
    made = {}
    for idempotent in (True, False):
        app = StreamApp(f"rdv-test-idempotence-{idempotent}", broker="kafka://127.0.0.1:1", autodiscover=False,
                        idempotence=idempotent)

        async def build():  # aiokafka producers are created inside a running loop
            return app.producer._new_producer()

        made[idempotent] = asyncio.run(build())
    assert made[True]._txn_manager is not None  # aiokafka's idempotence: producer id and sequence numbers
    assert made[False]._txn_manager is None
