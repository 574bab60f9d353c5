"""Reference data as event-time state: staff history, assignments, customer profiles.

Pure, synchronous, no I/O. The worker feeds it from the three reference topics
(:mod:`pipeline.reference.reader`) and asks :meth:`ReferenceState.enrich` for
every access. Everything is judged at the access's own ``occurred_at``.

Where it lives and what it costs (see ``docs`` in the README, "Reference state"):

* every worker holds the whole table (a *global* table): customer profiles are
  keyed by customer, staff by staff and assignments by ``staff:customer``, so
  none of them is co-partitioned with the access stream as a whole, and the
  lookup an access needs must not be a network call;
* staff: a short list of versions per employee, sorted by ``effective_at``;
  the small strings (branch, role, status, shift, timezone) are shared
  between versions (~680 B per employee, with its dict entries);
* assignments: ``staff -> customer -> interval``, a list only for the pairs
  with more than one interval; relations are shared strings (~190 B per pair);
* profiles: each customer points at one shared (home branch, segment,
  sensitivity) object, plus a side table of related staff for the few
  customers that have any (~95 B per customer, mostly its dict entry and id).

At 50,000 staff, 1M assignments and 10M profiles that is ~1.1 GiB of RSS
(``bench/reference_scale.py``; figures in ``bench/README.md``).

Semantics, per key, in log order (Kafka keeps the order of one key):

* staff: a record holds from its ``effective_at`` until the next version's;
  versions with the same ``effective_at`` replace each other (replays are
  idempotent); a tombstone forgets the employee.
* assignments: ``op: assign`` adds ``[valid_from, valid_to)`` (an interval with
  the same ``valid_from`` is replaced); ``op: revoke`` ends every interval of the
  pair at the revoke's ``valid_from`` and removes those starting later; a
  tombstone forgets the pair.
* profiles: versions by ``updated_at``: an access sees the version in force at
  its time, and the earliest known version also for times before it (a CRM
  export dates its records by the export, not by when they became true);
  a version with the same ``updated_at`` replaces the other (replays are
  idempotent); a tombstone forgets the customer.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

from msgspec import Struct

from pipeline.contract.records import (
    DEFAULT_TIMEZONE,
    AccessEvent,
    Assignment,
    CustomerProfile,
    StaffRecord,
)

_INF = math.inf
_NOBODY: frozenset[str] = frozenset()


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
class ProfileClass:
    """One (home branch, segment, sensitivity) combination, shared by its customers."""

    home_branch_id: str
    segment: str
    sensitivity: str


# A pair's intervals: one Interval (the usual case) or a list sorted by valid_from.
_Held = Interval | list[Interval]


def _interval_at(held: _Held, at: float) -> Interval | None:
    if isinstance(held, Interval):
        return held if held.valid_from <= at < held.valid_to else None
    for iv in held:
        if iv.valid_from <= at < iv.valid_to:
            return iv
    return None


class Enriched(Struct, gc=False):
    """An access with everything detection needs, as of ``event.occurred_at``.

    Read-only by convention, except ``minute``: a memo that
    :func:`pipeline.detect.shift.local_minute` fills on first use. A msgspec
    ``Struct``, not frozen: one is built for every access, and a Struct's
    constructor (compiled) costs a third of a slotted dataclass's (a frozen
    dataclass's, twice that). Never encoded; no cycles through it (``gc=False``).
    """

    event: AccessEvent
    at: float  # event.occurred_at as UTC epoch seconds
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
    minute: int = -1  # the local minute of the day, once computed (pipeline.detect.shift)


StaffRow = tuple[float, str, str, str, str | None, str | None, str]


def _staff_row(v: StaffVersion) -> StaffRow:
    return (
        v.effective_at,
        v.branch_id,
        v.role,
        v.status,
        v.shift_start,
        v.shift_end,
        v.timezone,
    )


class StateImage(Struct, array_like=True, gc=False):
    """A :class:`ReferenceState` as plain values (``pipeline.reference.snapshot`` encodes
    it). ``profiles[i]`` lists the customers whose newest profile is ``classes[i]`` (home
    branch, segment, sensitivity): lists of the state's own id strings, so an image of
    10M profiles costs a pointer per customer, not a dict entry; history entries name
    their class by index too. An open-ended interval ends at ``inf``."""

    staff: dict[str, list[StaffRow]]
    assignments: dict[str, dict[str, list[tuple[float, float, str]]]]
    classes: list[tuple[str, str, str]]
    profiles: list[list[str]]
    related: dict[str, list[str]]
    history: dict[str, list[tuple[float, int, list[str]]]]


class ReferenceState:
    def __init__(self) -> None:
        self._staff: dict[str, list[StaffVersion]] = {}
        self._staff_times: dict[str, list[float]] = {}
        self._assign: dict[str, dict[str, _Held]] = {}
        self._profiles: dict[str, ProfileClass] = {}
        self._related: dict[str, frozenset[str]] = {}
        # Customers whose profile changed: [(updated_at, class, related)] by time.
        self._profile_history: dict[str, list[tuple[float, ProfileClass, frozenset[str]]]] = {}
        self._classes: dict[tuple[str, str, str], ProfileClass] = {}
        # Customers with a non-``normal`` sensitivity or related staff (for counts()).
        self._notable = 0
        # One object per distinct small string (branch, role, status, relation, ...).
        self._strings: dict[str, str] = {}
        self.assignment_pairs = 0

    def _shared(self, s: str) -> str:
        return self._strings.setdefault(s, s)

    # -- updates -----------------------------------------------------------
    def apply_staff(self, rec: StaffRecord) -> None:
        shared = self._strings.setdefault
        effective_at = rec.effective_at.timestamp()
        version = StaffVersion(
            effective_at,
            shared(rec.branch_id, rec.branch_id),
            shared(rec.role, rec.role),
            shared(rec.status, rec.status),
            None if rec.shift_start is None else shared(rec.shift_start, rec.shift_start),
            None if rec.shift_end is None else shared(rec.shift_end, rec.shift_end),
            self._shared(rec.timezone or DEFAULT_TIMEZONE),
        )
        versions = self._staff.setdefault(rec.staff_id, [])
        times = self._staff_times.setdefault(rec.staff_id, [])
        i = bisect_right(times, effective_at)
        if i > 0 and times[i - 1] == effective_at:
            versions[i - 1] = version
        else:
            versions.insert(i, version)
            times.insert(i, effective_at)

    def delete_staff(self, staff_id: str) -> None:
        self._staff.pop(staff_id, None)
        self._staff_times.pop(staff_id, None)

    def apply_assignment(self, rec: Assignment) -> None:
        per_staff = self._assign.get(rec.staff_id)
        held = None if per_staff is None else per_staff.get(rec.customer_id)
        valid_from = rec.valid_from.timestamp()
        if rec.op == "revoke":
            if per_staff is None or held is None:
                return
            cut = valid_from
            intervals = [held] if isinstance(held, Interval) else held
            kept = [
                iv if iv.valid_to <= cut else Interval(iv.valid_from, cut, iv.relation)
                for iv in intervals
                if iv.valid_from < cut
            ]
            # The pair stays known (and counted) even with no interval left.
            per_staff[rec.customer_id] = kept[0] if len(kept) == 1 else kept
            return
        new = Interval(
            valid_from,
            _INF if rec.valid_to is None else rec.valid_to.timestamp(),
            self._shared(rec.relation),
        )
        if per_staff is None:
            per_staff = self._assign[rec.staff_id] = {}
        if held is None:
            per_staff[rec.customer_id] = new
            self.assignment_pairs += 1
            return
        others = [held] if isinstance(held, Interval) else held
        rest = [iv for iv in others if iv.valid_from != valid_from]
        if not rest:
            per_staff[rec.customer_id] = new
            return
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
        cid = rec.customer_id
        combo = (rec.home_branch_id, rec.segment, rec.sensitivity)
        cls = self._classes.get(combo)
        if cls is None:
            cls = self._classes[combo] = ProfileClass(*combo)
        related = frozenset(rec.related_staff_ids) if rec.related_staff_ids else _NOBODY
        old = self._profiles.get(cid)
        if old is not None:
            # A second version: from now on the customer keeps a history by updated_at.
            # The first version (whose time was not kept) holds before every later one.
            at = rec.updated_at.timestamp()
            history = self._profile_history.get(cid)
            if history is None:
                history = self._profile_history[cid] = [
                    (-_INF, old, self._related.get(cid, _NOBODY))
                ]
            times = [h[0] for h in history]
            i = bisect_right(times, at)
            if i > 0 and times[i - 1] == at:
                history[i - 1] = (at, cls, related)
            else:
                history.insert(i, (at, cls, related))
            cls, related = history[-1][1], history[-1][2]
            if old.sensitivity != "normal" or cid in self._related:
                self._notable -= 1
        self._profiles[cid] = cls  # the newest version
        if related:
            self._related[cid] = related
            self._notable += 1
        else:
            self._related.pop(cid, None)
            if cls.sensitivity != "normal":
                self._notable += 1

    def delete_profile(self, customer_id: str) -> None:
        old = self._profiles.pop(customer_id, None)
        self._profile_history.pop(customer_id, None)
        if old is None:
            return
        if self._related.pop(customer_id, None) is not None or old.sensitivity != "normal":
            self._notable -= 1

    def _profile_version(
        self, customer_id: str, at: float
    ) -> tuple[ProfileClass, frozenset[str]] | None:
        """The profile in force at ``at`` (the earliest one before it), or None."""
        history = self._profile_history.get(customer_id)
        if history is None:
            cls = self._profiles.get(customer_id)
            return None if cls is None else (cls, self._related.get(customer_id, _NOBODY))
        i = bisect_right([h[0] for h in history], at)
        _, cls, related = history[i - 1] if i else history[0]
        return cls, related

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
        held = per_staff.get(customer_id)
        return None if held is None else _interval_at(held, at)

    def assigned_customers(self, staff_id: str, at: float) -> list[str]:
        per_staff = self._assign.get(staff_id, {})
        return [c for c, held in per_staff.items() if _interval_at(held, at) is not None]

    def profile(
        self, customer_id: str, at: float = _INF
    ) -> tuple[str, str, str, frozenset[str]] | None:
        """(home_branch_id, segment, sensitivity, related_staff_ids) at ``at``, or None."""
        found = self._profile_version(customer_id, at)
        if found is None:
            return None
        cls, related = found
        return cls.home_branch_id, cls.segment, cls.sensitivity, related

    def enrich(self, event: AccessEvent, at: float) -> Enriched:
        """Everything detection needs of ``event`` as of ``at`` (its occurred_at, as epoch)."""
        # The lookups are written out here (not via staff_at & co.): this runs
        # for every access, and the calls were a good part of its cost.
        staff_id = event.staff_id
        staff: StaffVersion | None = None
        versions = self._staff.get(staff_id)
        if versions:
            if len(versions) == 1:
                first = versions[0]
                if first.effective_at <= at:
                    staff = first
            else:
                i = bisect_right(self._staff_times[staff_id], at)
                if i:
                    staff = versions[i - 1]
        interval: Interval | None = None
        cls: ProfileClass | None = None
        related = False
        customer_id = event.customer_id
        if customer_id is not None:
            per_staff = self._assign.get(staff_id)
            if per_staff is not None:
                held = per_staff.get(customer_id)
                if held is not None:
                    if type(held) is Interval:
                        if held.valid_from <= at < held.valid_to:
                            interval = held
                    else:
                        interval = _interval_at(held, at)
            if customer_id in self._profile_history:
                found = self._profile_version(customer_id, at)
                if found is not None:
                    cls = found[0]
                    related = staff_id in found[1]
            else:
                cls = self._profiles.get(customer_id)
                if cls is not None:
                    others = self._related.get(customer_id)
                    related = others is not None and staff_id in others
        assigned = interval is not None
        relation = None if interval is None else interval.relation
        # Positional arguments, in field order (see Enriched).
        if staff is None:
            if cls is None:
                return Enriched(
                    event, at, False, None, None, None, None, None, DEFAULT_TIMEZONE,
                    assigned, relation, False, None, None, None, False,
                )  # fmt: skip
            return Enriched(
                event, at, False, None, None, None, None, None, DEFAULT_TIMEZONE,
                assigned, relation, True, cls.home_branch_id, cls.segment, cls.sensitivity,
                related,
            )  # fmt: skip
        if cls is None:
            return Enriched(
                event, at, True, staff.role, staff.branch_id, staff.status,
                staff.shift_start, staff.shift_end, staff.timezone,
                assigned, relation, False, None, None, None, False,
            )  # fmt: skip
        return Enriched(
            event, at, True, staff.role, staff.branch_id, staff.status,
            staff.shift_start, staff.shift_end, staff.timezone,
            assigned, relation, True, cls.home_branch_id, cls.segment, cls.sensitivity, related,
        )  # fmt: skip

    # -- as plain values (the snapshot) ----------------------------------------
    def image(self) -> StateImage:
        """Everything this state holds, as plain values."""
        index = {cls: i for i, cls in enumerate(self._classes.values())}
        by_class: list[list[str]] = [[] for _ in index]
        for cid, cls in self._profiles.items():
            by_class[index[cls]].append(cid)
        return StateImage(
            staff={sid: [_staff_row(v) for v in versions] for sid, versions in self._staff.items()},
            assignments={
                sid: {
                    cid: [
                        (iv.valid_from, iv.valid_to, iv.relation)
                        for iv in ([held] if isinstance(held, Interval) else held)
                    ]
                    for cid, held in per_staff.items()
                }
                for sid, per_staff in self._assign.items()
            },
            classes=[(c.home_branch_id, c.segment, c.sensitivity) for c in index],
            profiles=by_class,
            related={cid: sorted(staff) for cid, staff in self._related.items()},
            history={
                cid: [(at, index[cls], sorted(rel)) for at, cls, rel in versions]
                for cid, versions in self._profile_history.items()
            },
        )

    def clear(self) -> None:
        """Forget everything (in place: the core holds this object)."""
        self.__init__()  # type: ignore[misc]

    def restore(self, image: StateImage) -> None:
        """Replace everything this state holds by ``image`` (as :meth:`image` made it)."""
        self.clear()
        shared = self._shared
        for sid, versions in image.staff.items():
            self._staff[sid] = [
                StaffVersion(
                    at, shared(branch), shared(role), shared(status),
                    None if start is None else shared(start),
                    None if end is None else shared(end), shared(tz),
                )
                for at, branch, role, status, start, end, tz in versions
            ]  # fmt: skip
            self._staff_times[sid] = [row[0] for row in versions]
        for sid, pairs in image.assignments.items():
            per_staff = self._assign[sid] = {}
            for cid, spans in pairs.items():
                held = [Interval(f, t, shared(rel)) for f, t, rel in spans]
                per_staff[cid] = held[0] if len(held) == 1 else held
                self.assignment_pairs += 1
        classes = []
        for combo in image.classes:
            cls = self._classes[combo] = ProfileClass(*combo)
            classes.append(cls)
        profiles = self._profiles
        for cls, cids in zip(classes, image.profiles, strict=True):
            for cid in cids:
                profiles[cid] = cls
        self._related = {cid: frozenset(staff) for cid, staff in image.related.items()}
        self._profile_history = {
            cid: [(at, classes[i], frozenset(rel) if rel else _NOBODY) for at, i, rel in rows]
            for cid, rows in image.history.items()
        }
        self._notable = len(self._related) + sum(
            1
            for cid, cls in self._profiles.items()
            if cls.sensitivity != "normal" and cid not in self._related
        )

    # -- sizes -------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        return {
            "staff": len(self._staff),
            "assignment_pairs": self.assignment_pairs,
            "profiles": len(self._profiles),
            "profiles_non_normal_or_related": self._notable,
        }
