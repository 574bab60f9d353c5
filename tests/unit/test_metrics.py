"""WorkerMetrics: the instruments, their page, lag pruning, build info, Faust's sensor."""

from __future__ import annotations

import platform
import re
from importlib import metadata

import faust
import pytest
from faust.types import TP
from prometheus_client.parser import text_string_to_metric_families

from pipeline.observability.metrics import (
    ALERT_LATENCY_BUCKETS,
    CONTENT_TYPE,
    DEFAULT_AGENTS,
    WorkerMetrics,
    install_faust_sensor,
)

# One sample line: name, optional {labels}, value.
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")

# name -> (type, label names) as the issue fixes them.
EXPECTED = {
    "pipeline_events_in": ("counter", {"topic"}),
    "pipeline_events_dead_lettered": ("counter", {"topic", "code"}),
    "pipeline_alerts_out": ("counter", set()),
    "pipeline_ocsf_out": ("counter", set()),
    "pipeline_alerts_written": ("counter", set()),
    "pipeline_reference_records": ("counter", {"kind"}),
    "pipeline_feedback": ("counter", {"verdict"}),
    "pipeline_feedback_learned": ("counter", set()),
    "pipeline_feedback_ignored": ("counter", {"reason"}),
    "pipeline_retries": ("counter", {"operation"}),
    "pipeline_batches_dropped": ("counter", {"agent"}),
    "pipeline_state_resets": ("counter", {"kind", "reason"}),
    "pipeline_events_duplicate": ("counter", set()),
    "pipeline_rewinds": ("counter", set()),
    "pipeline_offset_gaps": ("counter", set()),
    "pipeline_peer_days_published": ("counter", set()),
    "pipeline_state_writes": ("counter", set()),
    "pipeline_processing_lag_seconds": ("gauge", set()),
    "pipeline_consumer_lag_messages": ("gauge", {"topic", "partition"}),
    "pipeline_reference_ready": ("gauge", set()),
    "pipeline_agent_up": ("gauge", {"agent"}),
    "pipeline_partitions_waiting": ("gauge", set()),
    "pipeline_alert_latency_seconds": ("histogram", set()),
    "pipeline_batch_seconds": ("histogram", {"agent"}),
    "pipeline_postgres_write_seconds": ("histogram", {"operation"}),
    "pipeline_peer_wait_seconds": ("histogram", set()),
    "pipeline_batch_phase_seconds": ("histogram", {"phase"}),
    "pipeline_batch_records": ("histogram", set()),
    "pipeline_build_info": ("info", set()),
}


def strict_parse(text: str) -> dict[tuple[str, str], float]:
    """The classic text format, checked line by line: HELP and TYPE once per
    family, before its samples; every sample line well formed."""
    samples: dict[tuple[str, str], float] = {}
    typed: dict[str, str] = {}
    helped: set[str] = set()
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line[7:].split(" ", 1)[0]
            assert name not in helped, f"second HELP for {name}"
            helped.add(name)
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ", 1)
            assert name not in typed, f"second TYPE for {name}"
            assert kind in {"counter", "gauge", "histogram", "summary", "untyped"}
            typed[name] = kind
        else:
            m = SAMPLE.match(line)
            assert m is not None, line
            name = m.group(1)
            family = next(
                (f for f in typed if name == f or name.startswith(f + "_")),
                None,
            )
            assert family is not None, f"sample before its HELP/TYPE: {line}"
            samples[(name, m.group(3) or "")] = float(m.group(4))
    return samples


def test_every_instrument_is_exported_with_its_type_and_labels() -> None:
    m = WorkerMetrics()
    families = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
    assert set(families) == set(EXPECTED)
    for name, (kind, _labels) in EXPECTED.items():
        fam = families[name]
        # The classic text format has no "info" type: it is a gauge named *_info.
        assert fam.type == ("gauge" if kind == "info" else kind), name
        assert fam.documentation, name
    m.events_in.labels(topic="bank.access-events").inc(3)
    m.events_dead_lettered.labels(topic="bank.access-events", code="malformed_json").inc()
    m.reference_records.labels(kind="staff").inc(2)
    m.feedback.labels(verdict="true_positive").inc()
    m.feedback_ignored.labels(reason="unknown_alert").inc()
    m.retries.labels(operation="write_alerts").inc()
    m.state_resets.labels(kind="staff", reason="corrupt").inc()
    m.consumer_lag.labels(topic="t", partition="0").set(1)
    m.batch_seconds.labels(agent="score-access").observe(0.01)
    m.postgres_write_seconds.labels(operation="upsert_alerts").observe(0.002)
    for fam in text_string_to_metric_families(m.render().decode()):
        kind, labels = EXPECTED[fam.name]
        for sample in fam.samples:
            got = set(sample.labels) - {"le"}
            if kind == "info":
                continue
            assert got == labels, (fam.name, sample)


def test_page_is_well_formed_and_has_no_created_series() -> None:
    m = WorkerMetrics()
    m.alerts_out.inc(2)
    m.alert_latency.observe(0.1)
    text = m.render().decode()
    samples = strict_parse(text)
    assert "_created" not in text
    assert samples[("pipeline_alerts_out_total", "")] == 2.0
    assert samples[("pipeline_alert_latency_seconds_count", "")] == 1.0
    assert samples[("pipeline_alert_latency_seconds_bucket", 'le="0.1"')] == 1.0
    assert samples[("pipeline_alert_latency_seconds_bucket", 'le="0.05"')] == 0.0
    assert m.content_type == CONTENT_TYPE
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_counters_accumulate_per_label_set_and_label_values_are_escaped() -> None:
    m = WorkerMetrics()
    for _ in range(3):
        m.events_dead_lettered.labels(topic="t", code="a").inc()
    m.events_dead_lettered.labels(code="b", topic="t").inc(2)
    nasty = 'say "hi"\\now\nnext'
    m.events_in.labels(topic=nasty).inc()
    text = m.render().decode()
    samples = strict_parse(text)
    assert samples[("pipeline_events_dead_lettered_total", 'code="a",topic="t"')] == 3.0
    assert samples[("pipeline_events_dead_lettered_total", 'code="b",topic="t"')] == 2.0
    lines = [x for x in text.splitlines() if x.startswith("pipeline_events_in_total")]
    assert lines == ['pipeline_events_in_total{topic="say \\"hi\\"\\\\now\\nnext"} 1.0']
    parsed = {
        s.labels["topic"]
        for f in text_string_to_metric_families(text)
        if f.name == "pipeline_events_in"
        for s in f.samples
    }
    assert parsed == {nasty}


def test_alert_latency_buckets_span_5ms_to_beyond_a_minute_and_mark_250ms() -> None:
    assert ALERT_LATENCY_BUCKETS[0] == 0.005
    assert 0.25 in ALERT_LATENCY_BUCKETS  # the p99 > 250 ms alert needs this edge
    assert any(b > 60 for b in ALERT_LATENCY_BUCKETS)
    assert list(ALERT_LATENCY_BUCKETS) == sorted(ALERT_LATENCY_BUCKETS)
    m = WorkerMetrics()
    m.alert_latency.observe(61.0)
    samples = strict_parse(m.render().decode())
    assert samples[("pipeline_alert_latency_seconds_bucket", 'le="60.0"')] == 0.0
    assert samples[("pipeline_alert_latency_seconds_bucket", 'le="120.0"')] == 1.0


def test_consumer_lag_of_revoked_partitions_is_pruned() -> None:
    m = WorkerMetrics()
    for p in range(3):
        m.set_consumer_lag("bank.access-events", p, 10 * p)
    m.set_consumer_lag("bank.alert-feedback", 0, -4)  # clamped
    removed = m.prune_consumer_lag([("bank.access-events", 0), ("bank.access-events", 2)])
    assert removed == [("bank.access-events", 1), ("bank.alert-feedback", 0)]
    samples = strict_parse(m.render().decode())
    lag = {k[1]: v for k, v in samples.items() if k[0] == "pipeline_consumer_lag_messages"}
    assert lag == {
        'partition="0",topic="bank.access-events"': 0.0,
        'partition="2",topic="bank.access-events"': 20.0,
    }
    # Pruning again removes nothing; a partition assigned back is exported again.
    assert m.prune_consumer_lag([("bank.access-events", 0), ("bank.access-events", 2)]) == []
    m.set_consumer_lag("bank.access-events", 1, 7)
    assert (
        m.registry.get_sample_value(
            "pipeline_consumer_lag_messages", {"topic": "bank.access-events", "partition": "1"}
        )
        == 7.0
    )
    assert m.prune_consumer_lag([]) == [
        ("bank.access-events", 0),
        ("bank.access-events", 1),
        ("bank.access-events", 2),
    ]
    assert "pipeline_consumer_lag_messages{" not in m.render().decode()


def test_build_info_names_the_versions() -> None:
    m = WorkerMetrics()
    labels = next(
        s.labels
        for f in text_string_to_metric_families(m.render().decode())
        if f.name == "pipeline_build_info"
        for s in f.samples
    )
    assert labels["version"] == metadata.version("pipeline")
    assert labels["python"] == platform.python_version()
    assert labels["faust"] == metadata.version("faust-streaming")
    assert labels["aiokafka"] == metadata.version("aiokafka")
    assert labels["river"] == metadata.version("river")
    assert m.registry.get_sample_value("pipeline_build_info", labels) == 1.0


def test_known_agents_start_at_zero_and_registries_are_separate() -> None:
    a, b = WorkerMetrics(), WorkerMetrics(agents=["only-one"])
    for agent in DEFAULT_AGENTS:
        assert a.registry.get_sample_value("pipeline_batches_dropped_total", {"agent": agent}) == 0
        # Not created ahead: a 0 would read as "agent down" before it starts.
        assert a.registry.get_sample_value("pipeline_agent_up", {"agent": agent}) is None
    assert b.registry.get_sample_value("pipeline_batches_dropped_total", {"agent": "only-one"}) == 0
    assert (
        b.registry.get_sample_value("pipeline_batches_dropped_total", {"agent": "score-access"})
        is None
    )
    a.alerts_out.inc()
    assert a.registry.get_sample_value("pipeline_alerts_out_total") == 1.0
    assert b.registry.get_sample_value("pipeline_alerts_out_total") == 0.0


def test_faust_sensor_writes_into_the_same_page() -> None:
    m = WorkerMetrics()
    app = faust.App("metrics-test", broker="kafka://127.0.0.1:9", autodiscover=False)
    monitor = install_faust_sensor(app, m)
    assert app.monitor is monitor
    monitor.track_tp_end_offset(TP("bank.access-events", 3), 42)
    monitor.count("rebalances_seen", 2)
    text = m.render().decode()
    samples = strict_parse(text)
    assert (
        samples[
            (
                "faust_topic_partition_end_offset",
                'partition="3",topic="bank.access-events"',
            )
        ]
        == 42.0
    )
    assert samples[("faust_metrics_by_name", 'metric="rebalances_seen"')] == 2.0
    assert "pipeline_events_in_total" in text  # ours are still there
    with pytest.raises(RuntimeError, match="already installed"):
        install_faust_sensor(app, m)
