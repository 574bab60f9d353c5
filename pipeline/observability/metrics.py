"""The worker's Prometheus instruments, on prometheus-client, in one registry.

:class:`WorkerMetrics` owns a private :class:`~prometheus_client.CollectorRegistry`
(never the process-global one, so tests and several apps in one process do not
collide) and holds one attribute per instrument. Callers use the instruments
directly (``m.events_in.labels(topic=t).inc(n)``, ``m.alert_latency.observe(s)``);
:meth:`WorkerMetrics.render` gives the page for ``GET /metrics`` and
:data:`CONTENT_TYPE` its content type.

Faust's own sensor (``faust.sensors.prometheus``) can be installed on the app
with :func:`install_faust_sensor`: it writes into the same registry, so the one
page serves both families (Faust's under the ``faust_`` prefix).

Names and labels are fixed: ``infra/grafana`` and ``infra/prometheus`` use them
(``tests/unit/test_observability_infra.py`` checks that every name they use is
exported here).

"""

from __future__ import annotations

import logging
import platform
from collections.abc import Iterable, Sequence
from importlib import metadata
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

log = logging.getLogger(__name__)

#: The classic text format (0.0.4): what every Prometheus 2.x and 3.x scrapes.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

#: Agents whose ``pipeline_batches_dropped_total`` series exist from the start
#: (at 0), so that ``increase(...)`` sees the first drop. Pass your own list to
#: :class:`WorkerMetrics` to change it. (``pipeline_agent_up`` is not created
#: ahead: a series at 0 would read as "down" before the agent first sets it.)
DEFAULT_AGENTS: Final = (
    "score-access",
    "store-alerts",
    "store-evidence",
    "apply-feedback",
    "learn-from-feedback",
    "reference",
    "peers",
)

#: Publish -> alert, in seconds: 5 ms to 60 s, then minutes for a worker catching up.
ALERT_LATENCY_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    900.0,
)
#: One batch of an agent, or one Postgres statement: 1 ms to 30 s.
DURATION_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
#: A partition held back for other partitions' peer statistics: 10 ms to 1 h.
PEER_WAIT_BUCKETS: Final = (
    0.01,
    0.1,
    0.5,
    1.0,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)

#: Distributions named in ``pipeline_build_info``.
BUILD_PACKAGES: Final = (
    ("version", "pipeline"),
    ("faust", "faust-streaming"),
    ("aiokafka", "aiokafka"),
    ("river", "river"),
)


class WorkerMetrics:
    """Every instrument of one worker, in its own registry."""

    def __init__(self, agents: Sequence[str] = DEFAULT_AGENTS) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._faust_installed = False
        self._lag_series: set[tuple[str, str]] = set()

        # -- counters --------------------------------------------------------
        self.events_in = Counter(
            "pipeline_events_in_total", "Records consumed, per topic", ["topic"], registry=r
        )
        self.events_dead_lettered = Counter(
            "pipeline_events_dead_lettered_total",
            "Records sent to the dead-letter topic, per source topic and error code",
            ["topic", "code"],
            registry=r,
        )
        self.alerts_out = Counter(
            "pipeline_alerts_out_total", "Alert revisions sent to the alerts topic", registry=r
        )
        self.ocsf_out = Counter(
            "pipeline_ocsf_out_total",
            "OCSF Detection Findings sent to the alerts.ocsf topic",
            registry=r,
        )
        self.alerts_written = Counter(
            "pipeline_alerts_written_total", "Alert revisions written to Postgres", registry=r
        )
        self.reference_records = Counter(
            "pipeline_reference_records_total",
            "Reference records applied, per kind (staff, assignment, profile)",
            ["kind"],
            registry=r,
        )
        self.feedback = Counter(
            "pipeline_feedback_total",
            "Analyst verdicts applied, per verdict",
            ["verdict"],
            registry=r,
        )
        self.feedback_learned = Counter(
            "pipeline_feedback_learned_total",
            "Benign verdicts applied to an employee's baselines",
            registry=r,
        )
        self.feedback_ignored = Counter(
            "pipeline_feedback_ignored_total",
            "Verdicts not applied, per reason",
            ["reason"],
            registry=r,
        )
        self.retries = Counter(
            "pipeline_retries_total",
            "Retried operations (Postgres, Kafka), per operation",
            ["operation"],
            registry=r,
        )
        self.batches_dropped = Counter(
            "pipeline_batches_dropped_total",
            "Batches an agent gave up on (must stay 0)",
            ["agent"],
            registry=r,
        )
        self.state_resets = Counter(
            "pipeline_state_resets_total",
            "Per-employee or per-partition state discarded and rebuilt, per kind and reason",
            ["kind", "reason"],
            registry=r,
        )
        self.events_duplicate = Counter(
            "pipeline_events_duplicate_total",
            "Redelivered access events recognised and skipped",
            registry=r,
        )
        self.rewinds = Counter(
            "pipeline_rewinds_total",
            "Seeks back to re-read access records the consumer skipped (a partition's "
            "next record came after a gap; asked again while nothing comes back, "
            "pipeline.worker.access)",
            registry=r,
        )
        self.offset_gaps = Counter(
            "pipeline_offset_gaps_total",
            "Access records given up after a rewind could not read them again (deleted "
            "by retention before they were read)",
            registry=r,
        )
        self.state_writes = Counter(
            "pipeline_state_writes_total",
            "Per-employee and per-partition states written to the state table",
            registry=r,
        )
        self.peer_days_published = Counter(
            "pipeline_peer_days_published_total",
            "Daily peer statistics published for other partitions",
            registry=r,
        )

        # -- gauges ----------------------------------------------------------
        self.processing_lag = Gauge(
            "pipeline_processing_lag_seconds",
            "Wall time minus the newest event time processed",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "pipeline_consumer_lag_messages",
            "High watermark minus committed position, per assigned partition",
            ["topic", "partition"],
            registry=r,
        )
        self.reference_ready = Gauge(
            "pipeline_reference_ready",
            "1 once the reference topics are loaded up to their end offsets at start",
            registry=r,
        )
        self.agent_up = Gauge(
            "pipeline_agent_up",
            "1 while the agent's loop runs, 0 once it stopped",
            ["agent"],
            registry=r,
        )
        self.partitions_waiting = Gauge(
            "pipeline_partitions_waiting",
            "Partitions held back waiting for other partitions' peer statistics",
            registry=r,
        )

        # -- histograms ------------------------------------------------------
        self.alert_latency = Histogram(
            "pipeline_alert_latency_seconds",
            "From an access event's publication to the alert it raised being sent",
            buckets=ALERT_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "pipeline_batch_seconds",
            "Time to process one batch, per agent",
            ["agent"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.postgres_write_seconds = Histogram(
            "pipeline_postgres_write_seconds",
            "Time of one Postgres write, per operation",
            ["operation"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.peer_wait_seconds = Histogram(
            "pipeline_peer_wait_seconds",
            "Time a partition waited for other partitions' peer statistics",
            buckets=PEER_WAIT_BUCKETS,
            registry=r,
        )

        self.batch_phase_seconds = Histogram(
            "pipeline_batch_phase_seconds",
            "Time of one phase of the access agent's cycle: score, publish, state, ack",
            ["phase"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.batch_records = Histogram(
            "pipeline_batch_records",
            "Access records finished per cycle of the access agent",
            buckets=(1, 10, 100, 1000, 5000, 10_000, 50_000),
            registry=r,
        )

        # -- build -----------------------------------------------------------
        self.build_info = Info(
            "pipeline_build", "Versions of the package and of its runtime", registry=r
        )
        self.build_info.info(build_labels())

        for agent in agents:
            self.batches_dropped.labels(agent=agent)

    # -- consumer lag, per assigned partition ------------------------------
    def set_consumer_lag(self, topic: str, partition: int, lag: float) -> None:
        """Lag of one assigned partition (negative values are clamped to 0)."""
        key = (topic, str(partition))
        self._lag_series.add(key)
        self.consumer_lag.labels(*key).set(max(0.0, lag))

    def prune_consumer_lag(self, assigned: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
        """Drop the lag series of every partition not in ``assigned``.

        Call after a rebalance: a revoked partition's last value would
        otherwise be exported for ever (and summed into the group's lag).
        Returns the ``(topic, partition)`` pairs removed.
        """
        keep = {(topic, str(partition)) for topic, partition in assigned}
        removed = sorted(self._lag_series - keep)
        for key in removed:
            self.consumer_lag.remove(*key)
            self._lag_series.discard(key)
        return [(topic, int(partition)) for topic, partition in removed]

    # -- exposition --------------------------------------------------------
    def render(self, extra: Sequence[tuple[str, str, list[Any]]] = ()) -> bytes:
        """The metrics page, in the text format of :data:`CONTENT_TYPE`. ``extra``: the
        families of another process's :class:`WorkerMetrics` (the scoring process's,
        ``(name, type, [(sample, labels, value)])``), whose counter and histogram
        samples are added to this one's (gauges are this process's own)."""
        if not extra:
            return generate_latest(_WithoutCreated(self.registry))
        return generate_latest(_Merged(_WithoutCreated(self.registry), extra))

    @property
    def content_type(self) -> str:
        return CONTENT_TYPE

    def collect(self) -> list[Metric]:
        """Every metric family of the page (Faust's too, once installed)."""
        return list(_WithoutCreated(self.registry).collect())

    def instruments(self) -> dict[str, MetricWrapperBase]:
        """The instruments of this class by exported name (counters with ``_total``)."""
        out: dict[str, MetricWrapperBase] = {}
        for value in vars(self).values():
            if isinstance(value, MetricWrapperBase):
                suffix = {"counter": "_total", "info": "_info"}.get(value._type or "", "")
                out[value._name + suffix] = value
        return out

    def series(self) -> dict[str, frozenset[str]]:
        """Every series name the page can hold -> its label names.

        Histograms give ``*_bucket`` (with ``le``), ``*_sum`` and ``*_count``.
        What dashboards and alert rules may select (their test uses this).
        """
        out: dict[str, frozenset[str]] = {}
        for name, metric in self.instruments().items():
            labels = frozenset(metric._labelnames)
            if metric is self.build_info:
                labels = frozenset(build_labels())
            if metric._type == "histogram":
                out[f"{name}_bucket"] = labels | {"le"}
                out[f"{name}_sum"] = labels
                out[f"{name}_count"] = labels
            else:
                out[name] = labels
        return out


class _WithoutCreated:
    """The registry without ``*_created`` samples.

    prometheus-client adds a creation-time sample to every counter and
    histogram series; in the classic text format Prometheus stores each as
    one more gauge series. Filtering here, rather than with the library's
    process-wide switch, leaves other registries in the process alone.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        for family in self.registry.collect():
            if family.type in {"counter", "histogram", "summary", "gaugehistogram"}:
                family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


class _Merged:
    """Families of this process with another's counter and histogram samples added."""

    SUMMED = frozenset({"counter", "histogram"})

    def __init__(self, own: _WithoutCreated, extra: Sequence[tuple[str, str, list[Any]]]) -> None:
        self.own = own
        self.extra = {name: samples for name, kind, samples in extra if kind in self.SUMMED}

    def collect(self) -> Iterable[Metric]:
        for family in self.own.collect():
            theirs = self.extra.get(family.name)
            if theirs:
                family.samples = _summed(family.samples, theirs)
            yield family


def _summed(mine: Sequence[Any], theirs: Sequence[Any]) -> list[Any]:
    def key(name: str, labels: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
        return name, tuple(sorted(labels.items()))

    out = {key(s.name, s.labels): s for s in mine}
    for name, labels, value in theirs:
        k = key(name, labels)
        s = out.get(k)
        if s is None:
            out[k] = Sample(name, dict(labels), value, None, None)
        else:
            out[k] = s._replace(value=s.value + value)
    return list(out.values())


def build_labels() -> dict[str, str]:
    """Labels of ``pipeline_build_info``: package, Python and library versions."""
    labels = {"python": platform.python_version()}
    for label, dist in BUILD_PACKAGES:
        try:
            labels[label] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            labels[label] = "unknown"
    return labels


def install_faust_sensor(app: Any, metrics: WorkerMetrics, prefix: str = "faust") -> Any:
    """Make Faust's Prometheus sensor the app's monitor, writing into ``metrics.registry``.

    Call before the app starts (the monitor is added to the app's sensors when
    its services start). Unlike ``faust.sensors.prometheus.setup_prometheus_sensors``
    this registers no web page: the worker's own ``/metrics`` page renders the
    shared registry. A fixed ``prefix`` (not the app id) keeps dashboards the
    same across deployments. Faust's latency histograms are in milliseconds
    (its own convention; buckets scaled to match since faust-streaming 0.15.3).

    Returns the monitor. Raises RuntimeError when called twice for one registry.
    """
    from faust.sensors import prometheus as faust_prometheus
    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor

    if not hasattr(faust_prometheus, "MS_LATENCY_BUCKETS"):
        # faust-streaming issue #260: older releases observe milliseconds into
        # second-scale buckets, so every faust_*latency* histogram overflows.
        log.warning("this faust-streaming's latency histograms have the wrong buckets (#260)")
    if metrics._faust_installed:
        raise RuntimeError("Faust's Prometheus sensor is already installed on this registry")
    monitor = PrometheusMonitor(metrics=FaustMetrics.create(metrics.registry, prefix))
    app.monitor = monitor
    metrics._faust_installed = True
    return monitor


# -- deprecated: name-addressed access, for code not yet on the attributes ----


__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_AGENTS",
    "WorkerMetrics",
    "build_labels",
    "install_faust_sensor",
]
