"""The state the core keeps, with versioned encodings and explicit upgrades.

Two kinds of value live in the ``staff-state`` table (a Faust table whose
changelog topic is co-partitioned with the access topic):

* :class:`StaffState`, keyed by ``staff_id``: risk and the open incident
  (:mod:`pipeline.alerts.incidents`), behaviour baselines and windows
  (:mod:`pipeline.detect.behaviour`), the last access offset applied and the
  newest event ids (so a redelivered access changes nothing). A few KB per
  employee; every collection in it is bounded.
* :class:`PartitionState`, keyed by ``key_for_partition("partition", p, P)``
  (which hashes to partition ``p``, so the owner of ``p`` recovers it): the
  partition's event-time watermark, the bank days it has published to the
  peer statistics and the staff active on the days it has not, and the
  staff with an open incident. A few KB per partition.

Values are msgpack maps with a version ``v``. Decoding a value of an older
version runs the upgrades in :data:`STAFF_UPGRADES` (a value of the previous
release, JSON, is version 1); a value that cannot be read (corrupt, from a
newer release, or failing an upgrade) is replaced by a fresh state, and the
caller counts and logs it: an unreadable value is never fatal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

import msgspec
from msgspec import Struct, field

from pipeline.alerts.incidents import Incident, ReasonAcc, Risk
from pipeline.contract.records import ModelInfo
from pipeline.detect.behaviour import Behaviour
from pipeline.detect.surprise import Baseline

STAFF_VERSION: Final = 2
PARTITION_VERSION: Final = 1
RECENT_IDS: Final = 64  # event ids remembered per employee against redelivery
SKEW_REJECTED_CAP: Final = 2048


class StaffState(Struct, gc=False):
    v: int = STAFF_VERSION
    applied: int = -1  # offset of the last access applied (in the staff's partition)
    ids: list[str] = field(default_factory=list)  # the newest event ids, at most RECENT_IDS
    risk: Risk = field(default_factory=Risk)
    behaviour: Behaviour = field(default_factory=Behaviour)


class PartitionState(Struct, gc=False):
    v: int = PARTITION_VERSION
    partition: int = 0
    arrived: int = -1  # highest offset checked on arrival (skew, key)
    watermark: float = 0.0  # newest accepted access time (0: none yet)
    published_watermark: float = 0.0
    day: int = -1  # the bank day of the newest access processed
    checked_at: float = 0.0  # event time open incidents were last checked for closing
    closed_through: int | None = None  # the last bank day published to the peer statistics
    active: dict[int, list[str]] = field(default_factory=dict)  # open day -> staff active
    skew_rejected: list[int] = field(default_factory=list)  # offsets refused for clock skew
    open_incidents: list[str] = field(default_factory=list)


S = TypeVar("S", StaffState, PartitionState)

_ENC = msgspec.msgpack.Encoder()
_STAFF_DEC = msgspec.msgpack.Decoder(StaffState)
_PART_DEC = msgspec.msgpack.Decoder(PartitionState)


class StateError(Exception):
    """A stored value that cannot be read; ``reason`` is a short label for the metric."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def encode(state: StaffState | PartitionState) -> bytes:
    return _ENC.encode(state)


# -- upgrades ------------------------------------------------------------------------


def _v1_staff(raw: dict[str, Any]) -> dict[str, Any]:
    """The previous release's JSON state -> version 2 (windows start empty)."""
    risk = raw.get("risk", {})
    behaviour = raw.get("behaviour", {})
    out: dict[str, Any] = {"v": 2}
    inc = risk.get("incident")
    incident = None
    if inc:
        incident = msgspec.to_builtins(
            Incident(
                alert_id=str(inc["alert_id"]),
                revision=int(inc["revision"]),
                first_at=float(inc["first_event_at"]),
                last_at=float(inc["last_event_at"]),
                branch_id=str(inc["branch_id"]),
                event_ids=[str(x) for x in inc.get("event_ids", [])][-500:],
                event_count=int(inc.get("event_count", 0)),
                customers=[str(x) for x in inc.get("customers", [])][:200],
                reasons={
                    str(k): ReasonAcc(float(v[0]), int(v[1]), str(v[2]))
                    for k, v in inc.get("reasons", {}).items()
                },
                peak_risk=float(inc.get("peak_risk", 0.0)),
                emitted_count=int(inc.get("emitted_count", 0)),
                emitted_at=float(inc.get("emitted_at", 0.0)),
                emitted_codes=[str(x) for x in inc.get("emitted_codes", [])],
                emitted_severity=str(inc.get("emitted_severity", "")),
                model=_model(inc.get("model")),
            )
        )
    out["risk"] = {
        "fast": float(risk.get("risk", 0.0)),
        "at": float(risk.get("risk_at", 0.0)),
        "incident": incident,
        "closed_ids": [str(x) for x in risk.get("closed_ids", [])][-100:],
    }
    days = int(behaviour.get("days", 0))
    out["behaviour"] = {
        "baselines": {
            str(code): msgspec.to_builtins(Baseline(float(m), float(m), min(days, 30)))
            for code, m in behaviour.get("daily_mean", {}).items()
            if not str(code).startswith("_")
        },
        "days": days,
        "first_seen": {str(k): float(v) for k, v in behaviour.get("first_seen", {}).items()},
        "events": int(behaviour.get("events", 0)),
        "feedback": {
            str(k): max(0.25, float(v)) for k, v in behaviour.get("feedback_scale", {}).items()
        },
    }
    return out


def _model(raw: Any) -> ModelInfo | None:
    if not raw:
        return None
    try:
        return msgspec.convert(raw, ModelInfo)
    except msgspec.ValidationError:
        return None


# version -> function from that version's builtins to the next version's
STAFF_UPGRADES: Final[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {1: _v1_staff}
PARTITION_UPGRADES: Final[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {}


def _decode_any(
    raw: bytes,
    cls: type[S],
    fast: msgspec.msgpack.Decoder[S],
    version: int,
    upgrades: dict[int, Callable[[dict[str, Any]], dict[str, Any]]],
) -> S:
    if raw[:1] == b"{":  # the previous release's JSON (version 1)
        try:
            data: Any = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise StateError("corrupt", str(exc)) from None
        if isinstance(data, dict):
            data.setdefault("v", 1)
    else:
        try:
            st = fast.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            st = None
        if st is not None and st.v == version:
            return st
        try:
            data = msgspec.msgpack.decode(raw)
        except msgspec.DecodeError as exc:
            raise StateError("corrupt", str(exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("v"), int):
        raise StateError("corrupt", "not a versioned state")
    v = data["v"]
    if v > version:
        raise StateError("newer_version", f"version {v}, this release reads up to {version}")
    try:
        while v < version:
            step = upgrades.get(v)
            if step is None:
                raise StateError("no_upgrade", f"no upgrade from version {v}")
            data = step(data)
            v = data["v"]
        return msgspec.convert(data, cls)
    except StateError:
        raise
    except (msgspec.ValidationError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise StateError("upgrade_failed", f"{type(exc).__name__}: {exc}") from None


def decode_staff(raw: bytes) -> StaffState:
    """Raises StateError when the value cannot be read or upgraded."""
    return _decode_any(raw, StaffState, _STAFF_DEC, STAFF_VERSION, STAFF_UPGRADES)


def decode_partition(raw: bytes) -> PartitionState:
    return _decode_any(raw, PartitionState, _PART_DEC, PARTITION_VERSION, PARTITION_UPGRADES)
