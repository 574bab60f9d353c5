"""Reference data as event-time state: staff history, assignments, customer profiles.

Pure, synchronous, no I/O. The worker feeds it from the three reference topics
(:mod:`pipeline.reference.reader`) and asks :meth:`ReferenceState.enrich` for
every access. Everything is judged at the access's own ``occurred_at``.

Where it lives and what it costs (see ``docs`` in the README, "Reference state"):

* every worker holds the whole table (a *global* table): customer profiles are
  keyed by customer, staff by staff and assignments by ``staff:customer``, so
  none of them is co-partitioned with the access stream as a whole, and the
  lookup an access needs must not be a network call;
* staff: a short list of versions per employee, sorted by ``effective_at``
  (~300 B per version);
* assignments: ``staff -> customer -> [interval]`` (~150 B per pair);
* profiles: one small interned int per customer (home branch, segment,
  sensitivity) in a dict, plus a side table for the few customers with a
  non-``normal`` sensitivity or related staff (~100 B per customer).

Semantics, per key, in log order (Kafka keeps the order of one key):

* staff: a record holds from its ``effective_at`` until the next version's;
  versions with the same ``effective_at`` replace each other (replays are
  idempotent); a tombstone forgets the employee.
* assignments: ``op: assign`` adds ``[valid_from, valid_to)`` (an interval with
  the same ``valid_from`` is replaced); ``op: revoke`` ends every interval of the
  pair at the revoke's ``valid_from`` and removes those starting later; a
  tombstone forgets the pair.
* profiles: last write wins; a tombstone forgets the customer.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

from pipeline.records import (
    DEFAULT_TIMEZONE,
    SEGMENTS,
    SENSITIVITIES,
    AccessEvent,
    Assignment,
    CustomerProfile,
    StaffRecord,
)

_SEGMENTS = tuple(sorted(SEGMENTS))
_SENSITIVITIES = ("normal", *sorted(SENSITIVITIES - {"normal"}))
_SEG_INDEX = {s: i for i, s in enumerate(_SEGMENTS)}
_SENS_INDEX = {s: i for i, s in enumerate(_SENSITIVITIES)}
_INF = math.inf


@dataclass(slots=True, frozen=True)
class StaffVersion:
    effective_at: float
    branch_id: str
    role: str
    status: str
    shift_start: str | None
    shift_end: str | None
    timezone: str


@dataclass(slots=True, frozen=True)
class Interval:
    valid_from: float
    valid_to: float  # math.inf when open-ended
    relation: str


@dataclass(slots=True, frozen=True)
class ProfileExtra:
    """Only for customers that are not ``normal`` or have related staff."""

    sensitivity: str
    related_staff_ids: frozenset[str]


@dataclass(slots=True, frozen=True)
class Enriched:
    """An access with everything detection needs, as of ``event.occurred_at``."""

    event: AccessEvent
    known_staff: bool
    role: str | None
    staff_branch_id: str | None
    status: str | None
    shift_start: str | None
    shift_end: str | None
    timezone: str
    assigned: bool
    relation: str | None
    known_customer: bool
    home_branch_id: str | None
    segment: str | None
    sensitivity: str | None
    related: bool


class ReferenceState:
    def __init__(self) -> None:
        self._staff: dict[str, list[StaffVersion]] = {}
        self._staff_times: dict[str, list[float]] = {}
        self._assign: dict[str, dict[str, list[Interval]]] = {}
        self._profile_code: dict[str, int] = {}
        self._profile_extra: dict[str, ProfileExtra] = {}
        self._branches: list[str] = []
        self._branch_index: dict[str, int] = {}
        # Canonical int objects, so 10M customers share a few hundred ints.
        self._code_objects: dict[int, int] = {}
        self.assignment_pairs = 0

    # -- updates -----------------------------------------------------------
    def apply_staff(self, rec: StaffRecord) -> None:
        version = StaffVersion(
            rec.effective_at,
            rec.branch_id,
            rec.role,
            rec.status,
            rec.shift_start,
            rec.shift_end,
            rec.timezone or DEFAULT_TIMEZONE,
        )
        versions = self._staff.setdefault(rec.staff_id, [])
        times = self._staff_times.setdefault(rec.staff_id, [])
        i = bisect_right(times, rec.effective_at)
        if i > 0 and times[i - 1] == rec.effective_at:
            versions[i - 1] = version
        else:
            versions.insert(i, version)
            times.insert(i, rec.effective_at)

    def delete_staff(self, staff_id: str) -> None:
        self._staff.pop(staff_id, None)
        self._staff_times.pop(staff_id, None)

    def apply_assignment(self, rec: Assignment) -> None:
        per_staff = self._assign.setdefault(rec.staff_id, {})
        intervals = per_staff.get(rec.customer_id)
        if rec.op == "revoke":
            if not intervals:
                return
            cut = rec.valid_from
            kept = [
                iv if iv.valid_to <= cut else Interval(iv.valid_from, cut, iv.relation)
                for iv in intervals
                if iv.valid_from < cut
            ]
            per_staff[rec.customer_id] = kept
            return
        new = Interval(rec.valid_from, _INF if rec.valid_to is None else rec.valid_to, rec.relation)
        if intervals is None:
            per_staff[rec.customer_id] = [new]
            self.assignment_pairs += 1
            return
        rest = [iv for iv in intervals if iv.valid_from != rec.valid_from]
        rest.append(new)
        rest.sort(key=lambda iv: iv.valid_from)
        per_staff[rec.customer_id] = rest

    def delete_assignment(self, staff_id: str, customer_id: str) -> None:
        per_staff = self._assign.get(staff_id)
        if per_staff is not None and per_staff.pop(customer_id, None) is not None:
            self.assignment_pairs -= 1
            if not per_staff:
                del self._assign[staff_id]

    def delete_assignment_key(self, key: str) -> None:
        """Tombstone of ``staff_id:customer_id``; ids may themselves contain ':'."""
        for i, ch in enumerate(key):
            if ch == ":" and key[:i] in self._assign:
                self.delete_assignment(key[:i], key[i + 1 :])

    def apply_profile(self, rec: CustomerProfile) -> None:
        b = self._branch_index.get(rec.home_branch_id)
        if b is None:
            b = len(self._branches)
            self._branches.append(rec.home_branch_id)
            self._branch_index[rec.home_branch_id] = b
        code = (b * len(_SEGMENTS) + _SEG_INDEX[rec.segment]) * len(_SENSITIVITIES) + _SENS_INDEX[
            rec.sensitivity
        ]
        self._profile_code[rec.customer_id] = self._code_objects.setdefault(code, code)
        if rec.sensitivity != "normal" or rec.related_staff_ids:
            self._profile_extra[rec.customer_id] = ProfileExtra(
                rec.sensitivity, frozenset(rec.related_staff_ids)
            )
        else:
            self._profile_extra.pop(rec.customer_id, None)

    def delete_profile(self, customer_id: str) -> None:
        self._profile_code.pop(customer_id, None)
        self._profile_extra.pop(customer_id, None)

    # -- lookups -----------------------------------------------------------
    def staff_at(self, staff_id: str, at: float) -> StaffVersion | None:
        """The staff record in force at ``at`` (None before the first one)."""
        versions = self._staff.get(staff_id)
        if not versions:
            return None
        if len(versions) == 1:
            v = versions[0]
            return v if v.effective_at <= at else None
        i = bisect_right(self._staff_times[staff_id], at)
        return versions[i - 1] if i else None

    def assignment_at(self, staff_id: str, customer_id: str, at: float) -> Interval | None:
        per_staff = self._assign.get(staff_id)
        if per_staff is None:
            return None
        intervals = per_staff.get(customer_id)
        if not intervals:
            return None
        for iv in intervals:
            if iv.valid_from <= at < iv.valid_to:
                return iv
        return None

    def assigned_customers(self, staff_id: str, at: float) -> list[str]:
        per_staff = self._assign.get(staff_id, {})
        return [
            c for c, ivs in per_staff.items() if any(i.valid_from <= at < i.valid_to for i in ivs)
        ]

    def profile(self, customer_id: str) -> tuple[str, str, str, frozenset[str]] | None:
        """(home_branch_id, segment, sensitivity, related_staff_ids) or None."""
        code = self._profile_code.get(customer_id)
        if code is None:
            return None
        code, sens = divmod(code, len(_SENSITIVITIES))
        b, seg = divmod(code, len(_SEGMENTS))
        extra = self._profile_extra.get(customer_id)
        related = extra.related_staff_ids if extra is not None else frozenset()
        return self._branches[b], _SEGMENTS[seg], _SENSITIVITIES[sens], related

    def enrich(self, event: AccessEvent) -> Enriched:
        at = event.occurred_at
        staff = self.staff_at(event.staff_id, at)
        customer_id = event.customer_id
        interval = None
        prof = None
        if customer_id is not None:
            interval = self.assignment_at(event.staff_id, customer_id, at)
            prof = self.profile(customer_id)
        return Enriched(
            event=event,
            known_staff=staff is not None,
            role=staff.role if staff else None,
            staff_branch_id=staff.branch_id if staff else None,
            status=staff.status if staff else None,
            shift_start=staff.shift_start if staff else None,
            shift_end=staff.shift_end if staff else None,
            timezone=staff.timezone if staff else DEFAULT_TIMEZONE,
            assigned=interval is not None,
            relation=interval.relation if interval else None,
            known_customer=prof is not None,
            home_branch_id=prof[0] if prof else None,
            segment=prof[1] if prof else None,
            sensitivity=prof[2] if prof else None,
            related=prof is not None and event.staff_id in prof[3],
        )

    # -- sizes -------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        return {
            "staff": len(self._staff),
            "assignment_pairs": self.assignment_pairs,
            "profiles": len(self._profile_code),
            "profiles_non_normal_or_related": len(self._profile_extra),
        }
