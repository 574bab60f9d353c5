# mypy: disable-error-code="import-untyped"
"""The labelled bank simulator: determinism, contract validity, labels and behaviour."""

from __future__ import annotations

import argparse
import bisect
import json
import re
import zoneinfo
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pipeline.timeutil import parse_ts
from simbank.simulate import Incident, SimConfig, Simulation, generate
from simbank.simulate import cli as sim_cli
from simbank.simulate.config import ConfigError
from simbank.simulate.labels import BENIGN_KINDS, MALICIOUS_KINDS
from simbank.simulate.output import read_jsonl, write_jsonl

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
SMALL = SimConfig(seed=3, branches=3, staff=60, customers=3000, days=14)
TINY = SimConfig(seed=11, branches=2, staff=30, customers=800, days=7)
TOPIC_SCHEMA = {
    "staff-directory": "staff-record",
    "staff-assignments": "assignment",
    "customer-profiles": "customer-profile",
}
INF = float("inf")


class Truth:
    """An independent reading of the reference records, per the contract: staff versions by
    effective_at; assignment intervals per pair (assign adds or replaces the interval with
    the same valid_from, revoke cuts every interval at its valid_from)."""

    def __init__(self, sim: Simulation) -> None:
        self.staff: dict[str, list[tuple[float, dict[str, Any]]]] = defaultdict(list)
        self.spans: dict[tuple[str, str], list[tuple[float, float, str]]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        for r in sim.reference:
            v = r.value
            assert v is not None
            if r.topic == "staff-directory":
                self.staff[r.key].append((parse_ts(v["effective_at"]), v))
            elif r.topic == "customer-profiles":
                self.customers[r.key] = v
            else:
                key = (v["staff_id"], v["customer_id"])
                start = parse_ts(v["valid_from"])
                old = self.spans.get(key, [])
                if v["op"] == "revoke":
                    self.spans[key] = [(a, min(b, start), rel) for a, b, rel in old if a < start]
                else:
                    end = parse_ts(v["valid_to"]) if v["valid_to"] else INF
                    self.spans[key] = [iv for iv in old if iv[0] != start] + [
                        (start, end, v["relation"])
                    ]
        for versions in self.staff.values():
            versions.sort(key=lambda x: x[0])

    def staff_at(self, staff_id: str, at: float) -> dict[str, Any] | None:
        versions = self.staff[staff_id]
        i = bisect.bisect_right([t for t, _ in versions], at)
        return versions[i - 1][1] if i else None

    def assigned(self, ev: dict[str, Any]) -> bool:
        at = parse_ts(ev["occurred_at"])
        ivs = self.spans.get((ev["staff_id"], ev["customer_id"]), [])
        return any(a <= at < b for a, b, _ in ivs)

    def local(self, ev: dict[str, Any]) -> datetime:
        at = parse_ts(ev["occurred_at"])
        rec = self.staff_at(ev["staff_id"], at) or self.staff[ev["staff_id"]][0][1]
        return datetime.fromtimestamp(at, UTC).astimezone(zoneinfo.ZoneInfo(rec["timezone"]))


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return generate(SMALL)


@pytest.fixture(scope="module")
def tiny() -> Simulation:
    return generate(TINY)


@pytest.fixture(scope="module")
def truth(sim: Simulation) -> Truth:
    return Truth(sim)


@pytest.fixture(scope="module")
def by_id(sim: Simulation) -> dict[str, dict[str, Any]]:
    return {e["event_id"]: e for e in sim.events}


@pytest.fixture(scope="module")
def labelled(sim: Simulation) -> dict[str, Incident]:
    return {eid: inc for inc in sim.incidents for eid in inc.event_ids}


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# -- determinism and files ----------------------------------------------------------


def test_same_seed_gives_identical_bytes(tiny: Simulation, tmp_path: Path) -> None:
    a = _files(write_jsonl(tiny, tmp_path / "a"))
    b = _files(write_jsonl(generate(TINY), tmp_path / "b"))
    assert set(a) == {
        "reference.jsonl",
        "events.jsonl",
        "incidents.json",
        "summary.json",
        "profile.json",
    }
    assert a == b


def test_different_seed_gives_different_output(tiny: Simulation, tmp_path: Path) -> None:
    a = _files(write_jsonl(tiny, tmp_path / "a"))
    other = SimConfig(seed=TINY.seed + 1, branches=2, staff=30, customers=800, days=7)
    b = _files(write_jsonl(generate(other), tmp_path / "b"))
    assert a["events.jsonl"] != b["events.jsonl"]
    assert a["reference.jsonl"] != b["reference.jsonl"]


def test_jsonl_round_trip(sim: Simulation, tmp_path: Path) -> None:
    back = read_jsonl(write_jsonl(sim, tmp_path))
    assert back == sim
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["events"] == len(sim.events)
    assert summary["active_staff_days"] == sim.active_staff_days()


def test_cli_writes_jsonl_and_prints_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    sim_cli.configure(parser)
    size = ["--branches", "2", "--staff", "30", "--customers", "800", "--days", "7"]
    args = parser.parse_args(["--seed", "5", *size, "--out-dir", str(tmp_path)])
    assert sim_cli.run(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"\d+ staff, 800 customers", out)
    assert "malicious:" in out and "bulk_harvest" in out
    written = read_jsonl(tmp_path)
    assert written.config == SimConfig(seed=5, branches=2, staff=30, customers=800, days=7)
    assert len(written.events) > 0


def test_cli_rejects_an_impossible_size(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    sim_cli.configure(parser)
    assert sim_cli.run(parser.parse_args(["--branches", "8", "--staff", "20"])) == 2
    assert "staff must be at least" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs",
    [{"branches": 0}, {"staff": 10}, {"customers": 100}, {"days": 2}, {"start": "2026-13-01"}],
)
def test_config_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SimConfig(**kwargs)


# -- the stream -----------------------------------------------------------------


def test_event_ids_unique_and_events_sorted(sim: Simulation) -> None:
    ids = [e["event_id"] for e in sim.events]
    assert len(ids) == len(set(ids))
    times = [parse_ts(e["occurred_at"]) for e in sim.events]
    assert times == sorted(times)
    assert 20_000 < len(sim.events) < 80_000  # ~30 staff-days of work a day at this size


def _validators() -> dict[str, Draft202012Validator]:
    return {
        name: Draft202012Validator(
            json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
        )
        for name in ("access-event", "staff-record", "assignment", "customer-profile")
    }


def _shape(ev: dict[str, Any]) -> tuple[object, ...]:
    """What varies between events, for validating one of each kind."""
    nulls = tuple(k for k, v in ev.items() if v is None)
    return (ev["action"], ev["channel"], ev["outcome"], ev["occurred_at"][-6:], nulls)


def test_every_record_validates_against_the_contract_schemas(tiny: Simulation) -> None:
    # every record of a whole (tiny) simulation; jsonschema costs ~0.1 ms a record
    validators = _validators()
    zones = zoneinfo.available_timezones()
    for r in tiny.reference:
        assert r.value is not None
        errors = list(validators[TOPIC_SCHEMA[r.topic]].iter_errors(r.value))
        assert not errors, (r, errors[0].message)
        if r.topic == "staff-directory":
            assert r.key == r.value["staff_id"]
            assert r.value["timezone"] in zones
        elif r.topic == "staff-assignments":
            assert r.key == f"{r.value['staff_id']}:{r.value['customer_id']}"
        else:
            assert r.key == r.value["customer_id"]
    for ev in tiny.events:
        errors = list(validators["access-event"].iter_errors(ev))
        assert not errors, (ev, errors[0].message)


def test_every_shape_of_record_validates(sim: Simulation) -> None:
    validators = _validators()
    for r in sim.reference:
        assert r.value is not None
        assert validators[TOPIC_SCHEMA[r.topic]].is_valid(r.value), r
    shapes: dict[tuple[object, ...], dict[str, Any]] = {}
    for ev in sim.events:
        shapes.setdefault(_shape(ev), ev)
    assert len(shapes) > 50
    for ev in shapes.values():
        errors = list(validators["access-event"].iter_errors(ev))
        assert not errors, (ev, errors[0].message)


def test_timestamps_carry_local_offsets(sim: Simulation, truth: Truth) -> None:
    offsets = Counter(
        e["occurred_at"][-6:] if e["occurred_at"][-1] != "Z" else "Z" for e in sim.events
    )
    assert {"+08:00", "+09:00", "Z"} <= set(offsets)
    for ev in sim.events[::97]:
        if not ev["occurred_at"].endswith("Z"):
            local = truth.local(ev)
            assert ev["occurred_at"][:19] == local.strftime("%Y-%m-%dT%H:%M:%S")


def test_active_staff_days(sim: Simulation, truth: Truth) -> None:
    expected = {(e["staff_id"], truth.local(e).date()) for e in sim.events}
    assert sim.active_staff_days() == len(expected)
    assert len(expected) <= (SMALL.staff + 5) * SMALL.days


# -- labels ----------------------------------------------------------------------


def test_every_incident_kind_is_present(sim: Simulation) -> None:
    malicious = Counter(i.kind for i in sim.incidents if not i.benign)
    benign = Counter(i.kind for i in sim.incidents if i.benign)
    assert set(malicious) == set(MALICIOUS_KINDS)
    # authorization_on_file only where a profile lets credit queries lack the reference
    assert set(benign) == set(BENIGN_KINDS) - {"authorization_on_file"}


def test_labels_point_at_real_events(sim: Simulation, by_id: dict[str, dict[str, Any]]) -> None:
    seen: set[str] = set()
    for inc in sim.incidents:
        assert inc.event_ids, inc.incident_id
        assert not seen & set(inc.event_ids), "an event belongs to two incidents"
        seen |= set(inc.event_ids)
        events = [by_id[e] for e in inc.event_ids]
        assert {e["staff_id"] for e in events} == {inc.staff_id}
        times = [parse_ts(e["occurred_at"]) for e in events]
        assert times == sorted(times)
        assert (inc.start, inc.end) == (times[0], times[-1])
    assert len({i.incident_id for i in sim.incidents}) == len(sim.incidents)


def test_within_session_incidents_stay_in_one_session(
    sim: Simulation, by_id: dict[str, dict[str, Any]]
) -> None:
    flagged = [i for i in sim.incidents if i.within_session]
    assert {i.kind for i in flagged} >= {"bulk_harvest", "off_hours_session", "overtime"}
    for inc in flagged:
        sessions = {by_id[e]["session_id"] for e in inc.event_ids}
        assert len(sessions) == 1 and None not in sessions, inc.incident_id


def _events(inc: Incident, by_id: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [by_id[e] for e in inc.event_ids]


def test_malicious_incidents_do_what_their_kind_says(
    sim: Simulation, truth: Truth, by_id: dict[str, dict[str, Any]]
) -> None:
    for inc in (i for i in sim.incidents if not i.benign):
        evs = _events(inc, by_id)
        on_customers = [e for e in evs if e["customer_id"] is not None]
        custs = [truth.customers[e["customer_id"]] for e in on_customers]
        home = truth.staff_at(inc.staff_id, inc.start)
        assert home is not None
        if inc.kind in ("unassigned_lookup", "statement_exfiltration", "low_and_slow"):
            assert not any(truth.assigned(e) for e in on_customers), inc.incident_id
        if inc.kind == "unassigned_lookup":
            assert all(c["home_branch_id"] != home["branch_id"] for c in custs)
        elif inc.kind == "bulk_harvest":
            assert len({c["customer_id"] for c in custs}) >= 150
            assert inc.end - inc.start <= 2.5 * 3600
            assert not any(truth.assigned(e) for e in on_customers)
        elif inc.kind == "statement_exfiltration":
            assert {e["action"] for e in evs} & {"export_statement", "print_statement"}
        elif inc.kind == "unauthorized_credit_query":
            queries = [e for e in evs if e["action"] == "credit_report_query"]
            assert queries and all(e["authorization_ref"] is None for e in queries)
        elif inc.kind == "inactive_account_use":
            assert home["status"] in ("terminated", "transferred")
        elif inc.kind == "sensitive_snooping":
            assert all(c["sensitivity"] in ("vip", "pep") for c in custs)
            assert not any(truth.assigned(e) for e in on_customers)
        elif inc.kind == "related_customer_access":
            assert all(inc.staff_id in c["related_staff_ids"] for c in custs)
        elif inc.kind == "low_and_slow":
            assert len({truth.local(e).date() for e in evs}) >= 3
        elif inc.kind == "off_hours_session":
            for e in evs:
                t = truth.local(e)
                assert t.hour >= 22 or t.hour < 6, e["occurred_at"]


def test_benign_lookalikes_are_legitimate(
    sim: Simulation, truth: Truth, by_id: dict[str, dict[str, Any]]
) -> None:
    start = parse_ts(f"{SMALL.start}T00:00:00+08:00")
    for inc in (i for i in sim.incidents if i.benign):
        evs = _events(inc, by_id)
        first = truth.staff[inc.staff_id][0][1]
        if inc.kind in ("covering_colleague", "overtime"):
            assert all(truth.assigned(e) for e in evs), inc.incident_id
        if inc.kind == "covering_colleague":
            # the absent colleague's clients, held through backup assignments
            assert any(
                rel == "backup"
                for e in evs
                for _, _, rel in truth.spans[(e["staff_id"], e["customer_id"])]
            )
        elif inc.kind == "overtime":
            hh, mm = first["shift_end"].split(":")
            after = int(hh) * 60 + int(mm) - 20  # the day's end varies a little
            assert all(truth.local(e).hour * 60 + truth.local(e).minute >= after for e in evs)
        elif inc.kind == "month_end_batch":
            assert all(e["channel"] == "back_office_batch" for e in evs)
            assert all(e["record_count"] >= 200 for e in evs)
        elif inc.kind == "transfer":
            now = truth.staff_at(inc.staff_id, inc.start)
            assert now is not None and now["branch_id"] != first["branch_id"]
            assert all(e["branch_id"] == now["branch_id"] for e in evs)
        elif inc.kind == "new_hire":
            assert parse_ts(first["effective_at"]) > start


def test_unlabelled_events_break_no_rule(
    sim: Simulation, truth: Truth, labelled: dict[str, Incident]
) -> None:
    for ev in sim.events:
        if ev["event_id"] in labelled:
            continue
        if ev["action"] == "credit_report_query":
            assert ev["authorization_ref"], ev
        rec = truth.staff_at(ev["staff_id"], parse_ts(ev["occurred_at"]))
        assert rec is not None and rec["status"] == "active", ev
        if ev["customer_id"] is not None:
            assert ev["staff_id"] not in truth.customers[ev["customer_id"]]["related_staff_ids"]
        if ev["channel"] != "back_office_batch":
            assert 7 <= truth.local(ev).hour < 22, ev


# -- behaviour ---------------------------------------------------------------------


def test_role_behaviour(sim: Simulation, truth: Truth, labelled: dict[str, Incident]) -> None:
    per_role: dict[str, Counter[str]] = defaultdict(Counter)
    for ev in sim.events:
        if ev["event_id"] in labelled or ev["customer_id"] is None:
            continue
        rec = truth.staff_at(ev["staff_id"], parse_ts(ev["occurred_at"]))
        assert rec is not None
        c = per_role[rec["role"]]
        c["n"] += 1
        c["assigned"] += truth.assigned(ev)
        c[ev["channel"]] += 1
        c[ev["action"]] += 1
    share = {role: c["assigned"] / c["n"] for role, c in per_role.items()}
    assert share["teller"] < 0.05  # walk-in customers are nobody's portfolio
    assert share["customer_manager"] > 0.85  # mostly their own clients...
    assert share["customer_manager"] < 0.995  # ...with a few benign look-ups
    assert share["loan_officer"] > 0.75
    assert per_role["teller"]["branch_terminal"] == per_role["teller"]["n"]
    assert per_role["operations"]["back_office_batch"] > 0
    assert per_role["auditor"]["api"] > 0
    assert per_role["loan_officer"]["credit_report_query"] > 0
    assert per_role["customer_manager"]["mobile_crm"] > 0
    denied = sum(1 for e in sim.events if e["outcome"] == "denied")
    assert 0 < denied < 0.01 * len(sim.events)


def test_batch_exports_are_large_and_at_fixed_times(sim: Simulation) -> None:
    batches = [e for e in sim.events if e["channel"] == "back_office_batch"]
    assert batches and all(e["action"] == "export_statement" for e in batches)
    assert min(e["record_count"] for e in batches) >= 200
    jobs = {e["session_id"] for e in batches}
    assert all(j.startswith("job-") for j in jobs)
    assert {j.rsplit("-", 1)[1][:2] for j in jobs} <= {"07", "18"}


def test_it_support_searches_without_customer(sim: Simulation, truth: Truth) -> None:
    it = [
        e
        for e in sim.events
        if (truth.staff_at(e["staff_id"], parse_ts(e["occurred_at"])) or {}).get("role")
        == "it_support"
    ]
    assert it
    searches = [e for e in it if e["action"] == "search_customers"]
    assert len(searches) > len(it) / 2
    assert all(e["customer_id"] is None for e in searches)


def test_weekdays_dominate_with_a_lunch_dip(sim: Simulation, truth: Truth) -> None:
    days: Counter[str] = Counter()
    hours: Counter[int] = Counter()
    for ev in sim.events:
        t = truth.local(ev)
        days["weekend" if t.weekday() >= 5 else "weekday"] += 1
        hours[t.hour] += 1
    assert 0 < days["weekend"] < 0.1 * days["weekday"]
    assert hours[12] < 0.6 * hours[10] and hours[12] < 0.6 * hours[15]


# -- reference changes --------------------------------------------------------------


def test_reference_changes(sim: Simulation, truth: Truth) -> None:
    start = parse_ts(f"{SMALL.start}T00:00:00+08:00")
    staff_recs = [r.value for r in sim.reference if r.topic == "staff-directory" and r.value]
    statuses = {v["status"] for v in staff_recs}
    assert statuses == {"active", "on_leave", "terminated", "transferred"}
    moved = [
        sid
        for sid, versions in truth.staff.items()
        if len({v["branch_id"] for _, v in versions}) > 1
    ]
    assert moved
    hires = [sid for sid, versions in truth.staff.items() if versions[0][0] > start]
    assert hires
    spans = [r.value for r in sim.reference if r.topic == "staff-assignments" and r.value]
    assert any(v["op"] == "revoke" for v in spans)
    assert any(v["valid_to"] is not None and v["relation"] == "backup" for v in spans)
    assert {v["relation"] for v in spans} == {
        "relationship_manager",
        "loan_officer",
        "backup",
        "service_team",
    }
    # initial state first (all dated before the start), then changes in effective order

    def effective(r: Any) -> float:
        v = r.value
        if r.topic == "staff-directory":
            return parse_ts(v["effective_at"])
        if r.topic == "customer-profiles":
            return parse_ts(v["updated_at"])
        if v["op"] == "assign" and v["valid_to"] is not None and parse_ts(v["valid_from"]) < start:
            return parse_ts(v["valid_to"])  # an assignment ended by a change
        return parse_ts(v["valid_from"])

    times = [effective(r) for r in sim.reference]
    n_initial = next(i for i, t in enumerate(times) if t >= start)
    assert all(t < start for t in times[:n_initial])
    changes = times[n_initial:]
    assert changes and changes == sorted(changes)


def test_customers_and_sensitivities(sim: Simulation, truth: Truth) -> None:
    custs = list(truth.customers.values())
    assert len(custs) == SMALL.customers
    sens = Counter(c["sensitivity"] for c in custs)
    assert set(sens) == {"normal", "vip", "pep", "employee", "restricted"}
    assert 0.9 < sens["normal"] / len(custs) < 0.98
    for c in custs:
        if c["sensitivity"] == "employee":
            assert c["related_staff_ids"]
            assert all(s in truth.staff for s in c["related_staff_ids"])
    assert any(c["related_staff_ids"] and c["sensitivity"] == "normal" for c in custs)
    segments = Counter(c["segment"] for c in custs)
    assert segments["retail"] > 0.8 * len(custs) and segments["private"] and segments["corporate"]
