"""How long the worker's Kafka fetches wait for data: ``fetch.min.bytes`` and
``fetch.max.wait.ms`` of the consumer Faust creates.

Faust passes neither setting through: its consumer asks for at least one byte
and waits up to 1.5 s for it. With a live stream that means one fetch per
broker round trip, each returning the few records written since the last
one. In ``bench/latency.py`` (one worker, ~2,500 accesses/s published in 5 ms
producer batches) the worker spent about a tenth of its samples sending fetch
requests and parsing their small responses, fell behind whenever a cycle ran
long, and needed tens of seconds to catch up: p99 from publish to the alert
topic was 2.5-3.5 s. Asking for ``FETCH_MIN_BYTES`` or ``FETCH_MAX_WAIT_MS``,
whichever comes first, batches a live stream into a few dozen fetches a
second and leaves catch-up untouched (its fetches are full at once); the same
run gave p99 0.67 s. The wait bounds what it adds to latency; the cost is an
idle worker's fetch every ``FETCH_MAX_WAIT_MS`` (0.09 of a core instead of
0.03 at 20 ms, measured the same way).

:func:`install` wraps the Faust driver's consumer factory (idempotent); the
two values are set on the aiokafka consumer before it starts, which is when
it builds its fetcher from them.
"""

from __future__ import annotations

from typing import Any, Final

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

FETCH_MIN_BYTES: Final = 256 * 1024
FETCH_MAX_WAIT_MS: Final = 20

_INSTALLED = "_pipeline_fetch_wait"
FAUST_CREATE_WORKER_CONSUMER = AIOKafkaConsumerThread._create_worker_consumer


def configure(consumer: Any) -> Any:
    """Set the fetch wait of an aiokafka consumer that has not started yet."""
    for attr in ("_fetch_min_bytes", "_fetch_max_wait_ms"):
        if not hasattr(consumer, attr):
            raise RuntimeError(
                f"this aiokafka consumer has no {attr}: the fetch wait cannot be set "
                "(pipeline.worker.faust_fetch needs the aiokafka the project pins)"
            )
    consumer._fetch_min_bytes = FETCH_MIN_BYTES
    consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
    return consumer


def _create_worker_consumer(self: Any, transport: Any) -> Any:
    return configure(FAUST_CREATE_WORKER_CONSUMER(self, transport))


def install() -> None:
    """Give every Faust worker consumer of this process the fetch wait above."""
    if getattr(AIOKafkaConsumerThread, _INSTALLED, False):
        return
    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]
    setattr(AIOKafkaConsumerThread, _INSTALLED, True)
