"""The pure core: decoded access events in, alerts out.

No I/O. The Faust agents, the offline JSONL runner and the benchmarks all
drive this same object. Per-employee state lives in a :class:`StaffStore`;
the worker backs it with a Faust table (changelog topic, JSON values), tests
and offline runs with a dict.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from pipeline.alerts.ids import Pseudonymizer
from pipeline.alerts.incidents import IncidentTracker, RiskConfig, StaffRisk
from pipeline.broker.partitioning import key_for_partition, partition_for
from pipeline.contract.records import AccessEvent, Alert
from pipeline.detect.behaviour import (
    Behaviour,
    PeerBaselines,
    model_due,
    observe_behaviour,
    window_features,
)
from pipeline.detect.model import GroupModel, anomaly_signal
from pipeline.detect.rules import evaluate_rules
from pipeline.detect.signals import Signal
from pipeline.reference.state import ReferenceState


@dataclass(slots=True)
class EngineStats:
    events: int = 0
    signals: int = 0
    alerts: int = 0
    newest_event_at: float = 0.0


@dataclass(slots=True)
class StaffState:
    """Everything the pipeline knows of one employee (one value of the staff table)."""

    risk: StaffRisk = field(default_factory=StaffRisk)
    behaviour: Behaviour = field(default_factory=Behaviour)

    def to_json(self) -> dict[str, Any]:
        return {"risk": self.risk.to_json(), "behaviour": self.behaviour.to_json()}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> StaffState:
        return cls(StaffRisk.from_json(raw["risk"]), Behaviour.from_json(raw["behaviour"]))


class Backing(Protocol):
    """Where serialized per-employee state goes: a dict, or a Faust table adapter."""

    def get(self, key: str, /) -> Any: ...

    def __setitem__(self, key: str, value: Any, /) -> None: ...


@dataclass(slots=True)
class StaffStore:
    """Deserialized per-employee state with write-behind to a mapping of JSON bytes.

    ``backing`` maps staff_id -> the state as UTF-8 JSON bytes (a Faust table
    with raw values in the worker, a dict in tests and offline runs). Objects
    are loaded on first use and written back by :meth:`flush`.
    """

    backing: Backing = field(default_factory=lambda: dict[str, Any]())
    cache: dict[str, StaffState] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)

    def get(self, staff_id: str) -> StaffState:
        st = self.cache.get(staff_id)
        if st is None:
            raw = self.backing.get(staff_id)
            st = StaffState.from_json(orjson.loads(raw)) if raw else StaffState()
            self.cache[staff_id] = st
        self.dirty.add(staff_id)
        return st

    peers: dict[int, PeerBaselines] = field(default_factory=dict)
    peers_dirty: set[int] = field(default_factory=set)
    partitions: int = 1
    models: dict[int, GroupModel] = field(default_factory=dict)
    models_dirty: set[int] = field(default_factory=set)
    models_every_s: float = 30.0  # checkpoint models at most this often (wall clock)
    models_flushed_at: float = 0.0

    def model_of(self, partition: int) -> GroupModel:
        """The online peer-group model of one access partition."""
        m = self.models.get(partition)
        if m is None:
            raw = self.backing.get(key_for_partition("model", partition, self.partitions))
            m = GroupModel.from_json(orjson.loads(raw)) if raw else GroupModel()
            self.models[partition] = m
        self.models_dirty.add(partition)
        return m

    def peers_of(self, partition: int) -> PeerBaselines:
        """The peer baselines of one access partition (see PeerBaselines)."""
        p = self.peers.get(partition)
        if p is None:
            raw = self.backing.get(key_for_partition("peers", partition, self.partitions))
            p = PeerBaselines.from_json(orjson.loads(raw)) if raw else PeerBaselines()
            self.peers[partition] = p
        self.peers_dirty.add(partition)
        return p

    def flush(self) -> int:
        n = len(self.dirty)
        for staff_id in self.dirty:
            self.backing[staff_id] = orjson.dumps(self.cache[staff_id].to_json())
        self.dirty.clear()
        for partition in self.peers_dirty:
            key = key_for_partition("peers", partition, self.partitions)
            self.backing[key] = orjson.dumps(self.peers[partition].to_json())
        self.peers_dirty.clear()
        # Models are ~20 KB per peer group: checkpointed, not written every batch.
        # After a crash a model resumes from its last checkpoint (it has learned
        # a little less); nothing else depends on it being exact.
        now = time.monotonic()
        if self.models_dirty and now - self.models_flushed_at >= self.models_every_s:
            self.flush_models()
            self.models_flushed_at = now
        return n

    def flush_models(self) -> None:
        for partition in self.models_dirty:
            key = key_for_partition("model", partition, self.partitions)
            self.backing[key] = orjson.dumps(self.models[partition].to_json())
        self.models_dirty.clear()

    def forget(self) -> None:
        """Drop the cache (after a rebalance the backing table is the truth)."""
        self.cache.clear()
        self.dirty.clear()
        self.peers.clear()
        self.peers_dirty.clear()
        self.models.clear()
        self.models_dirty.clear()


class Engine:
    def __init__(
        self,
        reference: ReferenceState,
        pseudonymizer: Pseudonymizer,
        store: StaffStore | None = None,
        risk: RiskConfig | None = None,
        clock: Callable[[], float] = time.time,
        namespace: str = "",
    ) -> None:
        self.reference = reference
        self.store = store if store is not None else StaffStore()
        self.tracker = IncidentTracker(risk or RiskConfig(), pseudonymizer, namespace)
        self.clock = clock
        self.stats = EngineStats()

    def process(self, event: AccessEvent, partition: int = 0) -> Alert | None:
        """One access; ``partition`` is the access topic partition it came from."""
        stats = self.stats
        stats.events += 1
        if event.occurred_at > stats.newest_event_at:
            stats.newest_event_at = event.occurred_at
        enriched = self.reference.enrich(event)
        st = self.store.get(event.staff_id)
        signals = evaluate_rules(enriched)
        flagged = st.risk.incident is not None
        peers = self.store.peers_of(partition)
        b = st.behaviour
        signals += observe_behaviour(b, enriched, signals, peers, flagged)
        model_info = None
        if enriched.role is not None and model_due(b, enriched):
            model = self.store.model_of(partition)
            result = model.score_and_learn(enriched.role, window_features(b), learn=not flagged)
            sig = anomaly_signal(result, enriched.role)
            if sig is not None:
                scale = b.scale(sig.code, peers.of(enriched.role, event.staff_id, b.day_counts))
                signals.append(Signal(sig.code, sig.weight * scale, sig.summary))
                model_info = model.alert_model(result)
        stats.signals += len(signals)
        alert = self.tracker.observe(st.risk, enriched, signals, self.clock(), model_info)
        if alert is not None:
            stats.alerts += 1
        return alert

    def apply_feedback(self, staff_id: str, codes: list[str]) -> None:
        """An analyst judged an alert of ``staff_id`` benign: weigh its reasons less."""
        self.store.get(staff_id).behaviour.apply_feedback(codes)

    def process_batch(
        self, events: Iterable[AccessEvent], partitions: Iterable[int] | None = None
    ) -> list[Alert]:
        """Process in order; every revision is returned (the tracker already throttles them).

        ``partitions``: each event's access partition (default: derived from the key
        with Kafka's default partitioner, as a producer keyed by staff_id places it).
        """
        out: list[Alert] = []
        events = list(events)
        parts = (
            list(partitions)
            if partitions is not None
            else [partition_for(e.staff_id.encode(), self.store.partitions) for e in events]
        )
        for ev, part in zip(events, parts, strict=True):
            alert = self.process(ev, part)
            if alert is not None:
                out.append(alert)
        return out
