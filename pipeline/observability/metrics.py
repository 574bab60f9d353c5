"""Worker metrics: plain counters and gauges, rendered in Prometheus text format."""

from __future__ import annotations

from collections import defaultdict


class Metrics:
    def __init__(self) -> None:
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self.gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.help: dict[str, tuple[str, str]] = {}

    def describe(self, name: str, kind: str, text: str) -> None:
        self.help[name] = (kind, text)

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        self.counters[(name, tuple(sorted(labels.items())))] += value

    def set(self, name: str, value: float, **labels: str) -> None:
        self.gauges[(name, tuple(sorted(labels.items())))] = value

    def observe(self, name: str, value: float, **labels: str) -> None:
        """A histogram sample (exported as _count and _sum)."""
        key = tuple(sorted(labels.items()))
        self.counters[(f"{name}_count", key)] += 1
        self.counters[(f"{name}_sum", key)] += value

    def drop(self, name: str, **labels: str) -> None:
        """Forget one label set of a gauge (a partition no longer assigned)."""
        self.gauges.pop((name, tuple(sorted(labels.items()))), None)

    def get(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return self.counters.get(key, self.gauges.get(key, 0.0))

    def render(self) -> str:
        lines: list[str] = []
        seen: set[str] = set()
        for (name, labels), value in sorted(
            [*self.counters.items(), *self.gauges.items()], key=lambda kv: kv[0]
        ):
            if name not in seen:
                seen.add(name)
                kind, text = self.help.get(name, ("untyped", name))
                lines.append(f"# HELP {name} {text}")
                lines.append(f"# TYPE {name} {kind}")
            lab = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            text = str(int(value)) if float(value).is_integer() else repr(float(value))
            lines.append(f"{name}{{{lab}}} {text}" if lab else f"{name} {text}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def worker_metrics() -> Metrics:
    m = Metrics()
    m.describe("pipeline_events_in_total", "counter", "Access events consumed")
    m.describe("pipeline_events_dead_lettered_total", "counter", "Records sent to the DLQ, by code")
    m.describe("pipeline_alerts_out_total", "counter", "Alert revisions emitted")
    m.describe("pipeline_alerts_written_total", "counter", "Alert revisions written to Postgres")
    m.describe("pipeline_reference_records_total", "counter", "Reference records applied")
    m.describe("pipeline_processing_lag_seconds", "gauge", "Wall time minus newest event time")
    m.describe("pipeline_consumer_lag_messages", "gauge", "Highwater minus position, per topic")
    m.describe("pipeline_reference_ready", "gauge", "1 once reference topics are loaded")
    m.describe("pipeline_feedback_total", "counter", "Analyst verdicts applied")
    m.describe(
        "pipeline_feedback_learned_total", "counter", "Benign verdicts applied to staff weights"
    )
    return m
