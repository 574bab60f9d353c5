"""The worker's fetch wait (pipeline.worker.faust_fetch) on the consumer Faust creates."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from pipeline.settings import Settings
from pipeline.worker import faust_fetch
from pipeline.worker.app import create_app
from pipeline.worker.faust_fetch import FETCH_MAX_WAIT_MS, FETCH_MIN_BYTES


async def test_the_consumer_faust_creates_waits_for_a_fuller_fetch() -> None:
    app = create_app(Settings(dev_mode=True, partitions=1, topic_prefix="tf.", app_id="tf"))
    app.finalize()
    consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
    try:
        assert consumer._fetch_min_bytes == FETCH_MIN_BYTES > 1  # Faust's would be 1
        assert consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS < 1500  # and 1500
    finally:
        await consumer.stop()


def test_install_wraps_the_factory_once() -> None:
    faust_fetch.install()
    wrapped = AIOKafkaConsumerThread._create_worker_consumer
    faust_fetch.install()
    assert AIOKafkaConsumerThread._create_worker_consumer is wrapped
    assert wrapped is not faust_fetch.FAUST_CREATE_WORKER_CONSUMER


def test_a_consumer_without_the_settings_is_refused_clearly() -> None:
    with pytest.raises(RuntimeError, match="no _fetch_min_bytes"):
        faust_fetch.configure(SimpleNamespace())
