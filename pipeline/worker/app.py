"""The Faust App, and nothing else. Agents are registered by :mod:`pipeline.worker.agents`."""

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
        web_bind="0.0.0.0",
        web_in_thread=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
        broker_commit_every=2000,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=8192,
        producer_linger_ms=5,
        table_standby_replicas=0,
    )
