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
