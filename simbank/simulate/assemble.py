"""From raw simulated events to contract records: sessions, ids, order, labels. Pure."""

from __future__ import annotations

import hashlib
from typing import Any

from simbank.simulate.activity import RawEvent, Recorder
from simbank.simulate.bank import Bank, Customer, Posting, Span
from simbank.simulate.clock import MINUTE_MS, format_local, format_utc, hhmm
from simbank.simulate.labels import LabelBook
from simbank.simulate.model import Incident, RefRecord, Simulation

SESSION_IDLE_MS = 30 * MINUTE_MS  # a login session ends after 30 idle minutes


def assemble(bank: Bank, book: LabelBook, rec: Recorder) -> Simulation:
    seed = bank.config.seed
    raw = rec.events
    assign_sessions(raw, seed)
    raw.sort(key=lambda e: (e.ms, e.staff_id, e.seq))
    events: list[dict[str, Any]] = []
    members: dict[int, list[tuple[int, str]]] = {}
    for i, e in enumerate(raw):
        eid = f"ev-{seed}-{i:07d}"
        events.append(event_json(e, eid))
        if e.label >= 0:
            members.setdefault(e.label, []).append((e.ms, eid))
    found: list[tuple[int, str, str, int]] = []
    for label, spec in enumerate(book.specs):
        got = members.get(label)
        if got:
            found.append((got[0][0], spec.kind, spec.staff_id, label))
    found.sort()
    per_kind: dict[str, int] = {}
    incidents: list[Incident] = []
    for _, kind, _, label in found:
        spec = book.specs[label]
        got = members[label]
        n = per_kind[kind] = per_kind.get(kind, 0) + 1
        incidents.append(
            Incident(
                incident_id=f"inc-{kind}-{n:02d}",
                kind=kind,
                benign=spec.benign,
                staff_id=spec.staff_id,
                event_ids=tuple(eid for _, eid in got),
                start=got[0][0] / 1000,
                end=got[-1][0] / 1000,
                within_session=spec.within_session,
            )
        )
    return Simulation(bank.config, reference_records(bank), events, incidents)


def session_id(seed: int, staff_id: str, n: int) -> str:
    digest = hashlib.blake2b(f"{seed}|{staff_id}|{n}".encode(), digest_size=8).hexdigest()
    return f"ss-{digest}"


def assign_sessions(raw: list[RawEvent], seed: int) -> None:
    """A session is one staff member's run of events from one desk and channel with no
    idle gap over 30 minutes. Batch jobs come with their own job id."""
    runs: dict[tuple[str, str | None, str | None, str], list[RawEvent]] = {}
    for e in raw:
        if e.session_id is None:
            runs.setdefault((e.staff_id, e.terminal_id, e.source_ip, e.channel), []).append(e)
    counters: dict[str, int] = {}
    for key, evs in runs.items():
        evs.sort(key=lambda e: (e.ms, e.seq))
        last = -SESSION_IDLE_MS - 1
        current = ""
        for e in evs:
            if e.ms - last > SESSION_IDLE_MS:
                n = counters[key[0]] = counters.get(key[0], 0) + 1
                current = session_id(seed, key[0], n)
            e.session_id = current
            last = e.ms


def event_json(e: RawEvent, event_id: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "occurred_at": format_local(e.ms, e.tz) if e.tz else format_utc(e.ms),
        "staff_id": e.staff_id,
        "customer_id": e.customer_id,
        "action": e.action,
        "channel": e.channel,
        "branch_id": e.branch_id,
        "terminal_id": e.terminal_id,
        "source_ip": e.source_ip,
        "session_id": e.session_id,
        "authorization_ref": e.authorization_ref,
        "record_count": e.record_count,
        "outcome": e.outcome,
    }


def staff_json(staff_id: str, p: Posting) -> dict[str, Any]:
    return {
        "staff_id": staff_id,
        "branch_id": p.branch_id,
        "role": p.role,
        "status": p.status,
        "effective_at": format_local(p.effective_ms, p.timezone),
        "shift_start": hhmm(p.shift.start),
        "shift_end": hhmm(p.shift.end),
        "timezone": p.timezone,
    }


def span_json(s: Span) -> dict[str, Any]:
    return {
        "staff_id": s.staff_id,
        "customer_id": s.customer_id,
        "relation": s.relation,
        "valid_from": format_utc(s.valid_from),
        "valid_to": None if s.valid_to is None else format_utc(s.valid_to),
        "op": s.op,
    }


def customer_json(c: Customer) -> dict[str, Any]:
    return {
        "customer_id": c.customer_id,
        "home_branch_id": c.home_branch_id,
        "segment": c.segment,
        "sensitivity": c.sensitivity,
        "related_staff_ids": list(c.related_staff_ids),
        "updated_at": format_utc(c.updated_ms),
    }


def reference_records(bank: Bank) -> list[RefRecord]:
    """Initial state (staff, customers, assignments), then the changes in effective order."""
    out = [
        RefRecord("staff-directory", s, staff_json(s, bank.staff[s].first))
        for s in bank.initial_staff
    ]
    out += [RefRecord("customer-profiles", c.customer_id, customer_json(c)) for c in bank.customers]
    out += [
        RefRecord("staff-assignments", f"{s.staff_id}:{s.customer_id}", span_json(s))
        for s in bank.initial_spans
    ]
    for ch in sorted(bank.changes, key=lambda c: (c.at_ms, c.seq)):
        if ch.posting is not None:
            out.append(
                RefRecord("staff-directory", ch.staff_id, staff_json(ch.staff_id, ch.posting))
            )
        elif ch.span is not None:
            key = f"{ch.span.staff_id}:{ch.span.customer_id}"
            out.append(RefRecord("staff-assignments", key, span_json(ch.span)))
    return out
