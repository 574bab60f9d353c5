"""The Faust App, and nothing else. Agents are registered by :mod:`pipeline.worker.agents`.

The consumer and commit settings are chosen by measurement (``bench/README.md``):
large polls and stream buffers so batches fill, offsets committed every
second (at-least-once: a crash replays at most that much).
"""

from __future__ import annotations

import faust

from pipeline.settings import Settings


def create_app(settings: Settings) -> faust.App:
    brokers = [f"kafka://{host.strip()}" for host in settings.kafka_bootstrap.split(",")]
    return faust.App(
        settings.app_id,
        broker=brokers,
        store="memory://",
        datadir=str(settings.data_dir),
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_in_thread=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        broker_max_poll_records=10_000,
        stream_buffer_maxsize=32_768,
        producer_linger_ms=5,
        producer_max_request_size=4 * 1024 * 1024,
        table_standby_replicas=0,
    )
