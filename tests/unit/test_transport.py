"""The rdv:// transport is found through Faust's entry points and passes our fetch wait."""

import asyncio

import faust

from streams.transport import Consumer, Transport


def test_transport__rdv_scheme_selects_our_transport_with_our_fetch_wait():
    app = faust.App("rdv-test-transport", broker="rdv://127.0.0.1:1", autodiscover=False)
    app.rdv_fetch_max_wait_ms = 7
    assert isinstance(app.transport, Transport)
    consumer = app.consumer
    assert isinstance(consumer, Consumer)

    async def build():  # aiokafka consumers are created inside a running loop
        return consumer._thread._create_worker_consumer(app.transport)

    aiokafka_consumer = asyncio.run(build())
    assert aiokafka_consumer._fetch_max_wait_ms == 7  # what aiokafka hands its fetcher at start()


def test_transport__no_ack_is_recorded_while_the_flow_is_suspended():
    """Faust acks messages its streams skip during a stop/rebalance; committing them lost requests."""
    from faust.types import TP, Message

    app = faust.App("rdv-test-acks", broker="rdv://127.0.0.1:1", autodiscover=False)
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
