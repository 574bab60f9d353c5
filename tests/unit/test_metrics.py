"""Metrics rendered in the Prometheus text exposition format."""

from __future__ import annotations

import re

from pipeline.observability.metrics import Metrics, worker_metrics

# One sample line: name, optional {labels}, value.
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> tuple[dict[str, tuple[str, str]], dict[tuple[str, str], float]]:
    """A small reader of the text format: (help/type per name, value per (name, labels))."""
    meta: dict[str, list[str]] = {}
    samples: dict[tuple[str, str], float] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            meta.setdefault(name, []).append(help_text)
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in {"counter", "gauge", "untyped", "histogram", "summary"}
            meta.setdefault(name, []).append(kind)
        else:
            m = SAMPLE.match(line)
            assert m is not None, line
            assert m.group(1) in meta, f"sample before its HELP/TYPE: {line}"
            samples[(m.group(1), m.group(3) or "")] = float(m.group(4))
    return {k: (v[0], v[1]) for k, v in meta.items()}, samples


def test_help_and_type_once_per_name_before_samples() -> None:
    m = worker_metrics()
    m.inc("pipeline_events_in_total")
    m.inc("pipeline_events_dead_lettered_total", code="malformed_json", topic="bank.access-events")
    m.inc("pipeline_events_dead_lettered_total", code="tombstone", topic="bank.access-events")
    m.set("pipeline_reference_ready", 1.0)
    text = m.render()
    meta, samples = parse(text)
    assert meta["pipeline_events_in_total"] == ("Access events consumed", "counter")
    assert meta["pipeline_reference_ready"][1] == "gauge"
    assert text.count("# TYPE pipeline_events_dead_lettered_total ") == 1
    assert text.count("# HELP pipeline_events_dead_lettered_total ") == 1
    assert samples[("pipeline_events_in_total", "")] == 1.0
    assert (
        samples[
            (
                "pipeline_events_dead_lettered_total",
                'code="tombstone",topic="bank.access-events"',
            )
        ]
        == 1.0
    )
    assert len(samples) == 4


def test_undescribed_metric_is_untyped_with_its_name_as_help() -> None:
    m = Metrics()
    m.set("some_gauge", 2.5)
    meta, samples = parse(m.render())
    assert meta["some_gauge"] == ("some_gauge", "untyped")
    assert samples[("some_gauge", "")] == 2.5


def test_counters_accumulate_per_label_set() -> None:
    m = Metrics()
    m.describe("x_total", "counter", "X")
    for _ in range(3):
        m.inc("x_total", kind="a")
    m.inc("x_total", 2.5, kind="b")
    m.inc("x_total", 0.5, kind="b")
    # Label order at the call site does not matter.
    m.inc("y_total", a="1", b="2")
    m.inc("y_total", b="2", a="1")
    assert m.get("x_total", kind="a") == 3.0
    assert m.get("x_total", kind="b") == 3.0
    assert m.get("x_total", kind="zzz") == 0.0
    _, samples = parse(m.render())
    assert samples[("x_total", 'kind="a"')] == 3.0
    assert samples[("x_total", 'kind="b"')] == 3.0
    assert samples[("y_total", 'a="1",b="2"')] == 2.0


def test_gauges_are_replaced_not_added() -> None:
    m = Metrics()
    m.set("lag", 10.0, topic="t")
    m.set("lag", 4.0, topic="t")
    assert m.get("lag", topic="t") == 4.0
    _, samples = parse(m.render())
    assert samples[("lag", 'topic="t"')] == 4.0


def test_label_values_are_escaped() -> None:
    m = Metrics()
    nasty = 'say "hi"\\now\nnext'
    m.inc("e_total", topic=nasty)
    text = m.render()
    line = [x for x in text.splitlines() if x.startswith("e_total")]
    assert len(line) == 1  # the newline did not split the sample
    assert line[0] == 'e_total{topic="say \\"hi\\"\\\\now\\nnext"} 1'
    labels = LABEL.findall(line[0])
    assert len(labels) == 1
    unescaped = labels[0][1].replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
    assert labels[0][0] == "topic"
    assert "say" in unescaped and "next" in unescaped


def test_render_of_nothing_is_a_newline() -> None:
    assert Metrics().render() == "\n"


def test_small_values_are_exact() -> None:
    m = Metrics()
    m.inc("c_total", 999_999.0)
    m.set("g", 0.25)
    _, samples = parse(m.render())
    assert samples[("c_total", "")] == 999_999.0
    assert samples[("g", "")] == 0.25


def test_large_counters_render_exactly() -> None:
    m = Metrics()
    m.inc("events_total", 1_234_567.0)
    m.inc("events_total")
    _, samples = parse(m.render())
    assert samples[("events_total", "")] == 1_234_568.0
