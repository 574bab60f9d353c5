"""infra/prometheus/alerts.yml and infra/grafana/access-watch.json use only exported metrics.

Every PromQL expression is parsed with promql-parser (a PromQL parser, Rust
with Python bindings); each metric it selects must be a series that
:class:`WorkerMetrics` exports (counters as ``*_total``, histograms as
``*_bucket``/``*_sum``/``*_count``, info as ``*_info``), or Prometheus' own
``up``. Labels matched or grouped by must be labels of those metrics (or the
scrape's ``job``/``instance``, or ``le`` of a histogram bucket).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from pipeline.observability.metrics import WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "infra" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "infra" / "grafana" / "access-watch.json"

SCRAPE_LABELS = frozenset({"job", "instance"})
# Series Prometheus itself adds for every scrape target.
SYNTHETIC = {"up": frozenset()}
# Grafana's variables, replaced by plausible values before parsing.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$job": "access-watch-worker",
}
RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
SEVERITIES = {"critical", "warning", "info"}


def exported_series() -> dict[str, frozenset[str]]:
    """Series name -> label names, for every instrument of WorkerMetrics, and ``up``."""
    return {**SYNTHETIC, **WorkerMetrics().series()}


def selectors(expr: Any) -> list[Any]:
    found: list[Any] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(expr, pre_visit=visit)
    return found


def check_expression(text: str, series: dict[str, frozenset[str]]) -> set[str]:
    """Parse ``text``; every selected name must be exported with the labels used.
    Returns the metric names used."""
    try:
        expr = promql_parser.parse(text)
    except ValueError as exc:
        raise AssertionError(f"not PromQL ({exc}): {text}") from None
    used: set[str] = set()
    for sel in selectors(expr):
        assert sel.name, f"a selector without a metric name: {text}"
        assert sel.name in series, f"{sel.name} is not exported (in {text})"
        used.add(sel.name)
        allowed = series[sel.name] | SCRAPE_LABELS
        for matcher in sel.matchers.matchers:
            assert matcher.name in allowed, f"{sel.name} has no label {matcher.name}: {text}"

    def grouping(node: Any) -> None:
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            inner = selectors(node.expr)
            allowed = set(SCRAPE_LABELS)
            for sel in inner:
                allowed |= series[sel.name]
            if str(node.modifier).startswith("by"):
                for label in node.modifier.labels:
                    assert label in allowed, f"grouping by {label}, which no input has: {text}"

    promql_parser.walk(expr, pre_visit=grouping)
    return used


@pytest.fixture(scope="module")
def series() -> dict[str, frozenset[str]]:
    return exported_series()


def test_the_exported_series_are_what_the_infra_files_assume(
    series: dict[str, frozenset[str]],
) -> None:
    assert series["pipeline_events_dead_lettered_total"] == {"topic", "code"}
    assert series["pipeline_alert_latency_seconds_bucket"] == {"le"}
    assert series["pipeline_consumer_lag_messages"] == {"topic", "partition"}
    assert {"version", "python", "faust", "aiokafka", "river"} <= series["pipeline_build_info"]
    assert "pipeline_events_in" not in series  # counters only as *_total


def test_checker_refuses_unknown_names_labels_and_bad_syntax(
    series: dict[str, frozenset[str]],
) -> None:
    with pytest.raises(AssertionError, match="not exported"):
        check_expression("rate(pipeline_events_in[5m])", series)  # counter without _total
    with pytest.raises(AssertionError, match="no label"):
        check_expression('pipeline_alerts_out_total{topic="x"}', series)
    with pytest.raises(AssertionError, match="grouping by"):
        check_expression("sum by (partiton) (pipeline_consumer_lag_messages)", series)
    with pytest.raises(AssertionError, match="not PromQL"):
        check_expression("sum(rate(pipeline_alerts_out_total[5m])", series)
    assert check_expression(
        "histogram_quantile(0.99, sum by (le) (rate(pipeline_alert_latency_seconds_bucket[5m])))",
        series,
    ) == {"pipeline_alert_latency_seconds_bucket"}


def test_alert_rules_are_valid_and_use_exported_metrics(
    series: dict[str, frozenset[str]],
) -> None:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert set(doc) == {"groups"}
    names: list[str] = []
    group_names: list[str] = []
    used: set[str] = set()
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"}, group.keys()
        group_names.append(group["name"])
        assert group["rules"], group["name"]
        for rule in group["rules"]:
            assert set(rule) <= RULE_KEYS, rule
            assert "alert" in rule, "recording rules are not expected here"
            assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"]), rule["alert"]
            names.append(rule["alert"])
            assert isinstance(rule["expr"], str)
            used |= check_expression(rule["expr"], series)
            if "for" in rule:
                assert re.fullmatch(r"\d+[smhd]", rule["for"]), rule["for"]
                assert promql_parser.parse_duration(rule["for"]).total_seconds() > 0
            labels = rule.get("labels", {})
            assert labels.get("severity") in SEVERITIES, rule["alert"]
            assert all(isinstance(v, str) for v in labels.values())
            annotations = rule["annotations"]
            assert {"summary", "description"} <= set(annotations), rule["alert"]
            for text in annotations.values():
                assert text.count("{{") == text.count("}}"), text
    assert len(names) == len(set(names)), "duplicate alert names"
    assert len(group_names) == len(set(group_names)), "duplicate group names"
    # The rules the issue asks for, by what they watch.
    for metric in (
        "up",
        "pipeline_reference_ready",
        "pipeline_consumer_lag_messages",
        "pipeline_batches_dropped_total",
        "pipeline_events_dead_lettered_total",
        "pipeline_retries_total",
        "pipeline_alert_latency_seconds_bucket",
        "pipeline_agent_up",
    ):
        assert metric in used, metric
    text = RULES.read_text(encoding="utf-8")
    assert "absent(up{" in text and "> 0.25" in text and "deriv(" in text


def dashboard_targets(doc: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for panel in doc["panels"]:
        for nested in [panel, *panel.get("panels", [])]:
            for target in nested.get("targets", []):
                out.append((nested["title"], target["expr"]))
    return out


def test_dashboard_is_valid_and_uses_exported_metrics(
    series: dict[str, frozenset[str]],
) -> None:
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert doc["uid"] == "access-watch" and doc["title"]
    assert isinstance(doc["schemaVersion"], int)
    variables = {v["name"] for v in doc["templating"]["list"]}
    assert {"datasource", "job"} <= variables
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    used: set[str] = set()
    targets = dashboard_targets(doc)
    assert targets
    for title, expr in targets:
        assert 'job="$job"' in expr, f"{title}: every query is scoped to the job"
        concrete = expr
        for var, value in GRAFANA_VARIABLES.items():
            concrete = concrete.replace(var, value)
        assert "$" not in concrete, f"{title}: unknown variable in {expr}"
        used |= check_expression(concrete, series)
    for panel in doc["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]
    # What the issue asks the dashboard to show.
    for metric in (
        "pipeline_events_in_total",
        "pipeline_consumer_lag_messages",
        "pipeline_alert_latency_seconds_bucket",
        "pipeline_batch_seconds_bucket",
        "pipeline_postgres_write_seconds_bucket",
        "pipeline_events_dead_lettered_total",
        "pipeline_retries_total",
        "pipeline_batches_dropped_total",
        "pipeline_reference_ready",
        "pipeline_agent_up",
        "pipeline_partitions_waiting",
    ):
        assert metric in used, metric
    quantiles = {e for _, e in targets if "pipeline_alert_latency_seconds_bucket" in e}
    assert any(e.startswith("histogram_quantile(0.5,") for e in quantiles)
    assert any(e.startswith("histogram_quantile(0.99,") for e in quantiles)


def test_panels_do_not_overlap() -> None:
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    cells: dict[tuple[int, int], str] = {}
    for panel in doc["panels"]:
        g = panel["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
