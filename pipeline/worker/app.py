"""The Faust App, and nothing else. Agents are registered by :mod:`pipeline.worker.agents`.

The consumer and commit settings are chosen by measurement (``bench/README.md``):
large polls and stream buffers so that batches fill, offsets committed every
second (at-least-once: a crash replays at most what was not committed). Two
repairs of Faust's consumer are installed first: the choice of the offset to
commit (:mod:`pipeline.worker.faust_offsets`) and a fetch loop that delivers
records without a task each (:mod:`pipeline.worker.faust_drain`); then the
fetch wait Faust does not expose (:mod:`pipeline.worker.faust_fetch`).
"""

from __future__ import annotations

import faust

from pipeline.broker import clients
from pipeline.settings import Settings
from pipeline.worker import faust_drain, faust_fetch, faust_offsets

# Faust's own web views, all off: /router and /table expose the cluster's layout and
# table data (per-employee state), /graph, /performance and the statistics pages at
# / and /assignment the worker's internals. Only the pipeline's /health and /metrics
# (registered by the agents) and Faust's plain production index at / remain.
BUILTIN_VIEWS = (
    "web_router_enabled",
    "web_tables_enabled",
    "web_stats_enabled",
    "web_graph_enabled",
    "web_metrics_enabled",
)


def create_app(settings: Settings) -> faust.App:
    faust_offsets.install()
    faust_drain.install()
    faust_fetch.install()
    app = faust.App(
        settings.app_id,
        **clients.faust_broker_options(settings),
        store="memory://",
        datadir=str(settings.data_dir),
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_in_thread=False,
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        topic_partitions=settings.partitions,
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
        # aiokafka builds one batch per partition and, once it is full, waits for it to
        # be sent: at the default 16 KiB a flush of ~600 KB of states took a broker round
        # trip per 16 KiB and partition (bench/latency.py: the flush phase 37 s of a
        # 122 s run; 13 s at 512 KiB). Below the broker's 1 MiB message.max.bytes.
        producer_max_batch_size=512 * 1024,
        table_standby_replicas=settings.standby_replicas,
        # The access agent holds records unacknowledged on purpose (the day barrier);
        # waiting for them to be acknowledged would stall every shutdown and every
        # rebalance. Nothing needs the wait: unacknowledged records are read again by
        # the partition's next owner, and the state says which ones it already holds.
        stream_wait_empty=False,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        consumer_group_instance_id=settings.instance_id,
    )
    # A Faust without these settings ignores them silently and serves the views.
    for name in BUILTIN_VIEWS:
        if getattr(app.conf, name, None) is not False:
            raise RuntimeError(
                f"this faust-streaming does not honour {name}; install faust-streaming>=0.15.3"
            )
    return app
