# mypy: disable-error-code="import-untyped"
"""Bank profiles: the default profile keeps the simulator's bytes, drawn profiles stay in
their documented ranges, and each parameter moves the generated rates its way."""

from __future__ import annotations

import hashlib
import json
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from simbank.evaluate.enrich import Access, GroundTruth
from simbank.simulate import SimConfig, Simulation, generate
from simbank.simulate.config import ConfigError, sized_config
from simbank.simulate.labels import MALICIOUS_KINDS
from simbank.simulate.output import read_jsonl, write_jsonl
from simbank.simulate.profile import (
    DEFAULT_PROFILE,
    RANGES,
    BankProfile,
    ProfileError,
    draw_profile,
)
from simbank.timestamps import parse_ts

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
TINY = SimConfig(seed=11, branches=2, staff=30, customers=800, days=7)
# sha256 (first 16 hex digits) of the four files the simulator wrote for TINY before bank
# profiles existed (commit 186c9c1): the default profile must not change a byte.
TINY_DIGEST_BEFORE_PROFILES = "f903f7c047888123"
# A small bank for the direction tests: each runs two generations of it.
SMALL = dict(seed=5, staff=40, days=8, start="2026-03-02", branches=3, customers=2000)


def _digest(directory: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(directory.iterdir()):
        if p.name == "profile.json":
            continue
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def test_default_profile_gives_the_bytes_of_the_simulator_before_profiles(
    tmp_path: Path,
) -> None:
    assert _digest(write_jsonl(generate(TINY), tmp_path)) == TINY_DIGEST_BEFORE_PROFILES


def test_random_profile_is_deterministic(tmp_path: Path) -> None:
    assert draw_profile(1234) == draw_profile(1234)
    assert draw_profile(1234) != draw_profile(1235)
    config = sized_config(draw_profile(1234), seed=3, staff=40, days=7, start="2026-03-02")
    a = write_jsonl(generate(config), tmp_path / "a")
    b = write_jsonl(generate(config), tmp_path / "b")
    assert {p.name: p.read_bytes() for p in a.iterdir()} == {
        p.name: p.read_bytes() for p in b.iterdir()
    }


def test_profile_json_round_trips_and_the_output_rebuilds_the_config(tmp_path: Path) -> None:
    p = draw_profile(77)
    assert BankProfile.from_json(json.loads(json.dumps(p.to_json()))) == p
    config = sized_config(p, seed=3, staff=40, days=7, start="2026-03-02")
    sim = generate(config)
    back = read_jsonl(write_jsonl(sim, tmp_path))
    assert back.config == config
    assert back.config.profile == p


def test_bad_profiles_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ProfileError, match="cm_walk_in_share"):
        replace(DEFAULT_PROFILE, cm_walk_in_share=1.5)
    with pytest.raises(ProfileError, match="not an IANA"):
        replace(DEFAULT_PROFILE, foreign_timezones=("Mars/Olympus",))
    with pytest.raises(ProfileError, match="unknown profile parameters: bogus"):
        BankProfile.from_json({"bogus": 1})
    with pytest.raises(ConfigError, match="too few loan officers"):
        generate(
            SimConfig(
                seed=1,
                branches=3,
                staff=40,
                customers=1000,
                days=5,
                profile=replace(DEFAULT_PROFILE, cm_share=0.55, teller_share=0.44),
            )
        )


def test_drawn_profiles_stay_in_the_documented_ranges() -> None:
    def within(name: str, value: float, slack: float = 1e-3) -> None:
        lo, hi, _ = RANGES[name]
        assert lo - slack <= value <= hi + slack, (name, value)

    seen_walk_in: list[float] = []
    seen_unassigned: list[float] = []
    for seed in range(1000, 1060):
        p = draw_profile(seed)
        for name in RANGES:
            if hasattr(p, name) and name not in ("cm_walk_in_share", "credit_authorized_share"):
                within(name, float(getattr(p, name)))
        within("cm_unassigned_per_day", p.cm_unassigned_share * 24)
        assert 0 <= len(p.foreign_timezones) <= 3
        assert p.credit_authorized_share == 1.0 or 0.998 <= p.credit_authorized_share < 1.0
        assert p.shift_offset_min % 15 == 0
        seen_walk_in.append(p.cm_walk_in_share)
        seen_unassigned.append(p.cm_unassigned_share * 24)
    # wide: a detector tuned to one bank meets very different ones
    assert min(seen_walk_in) < 0.1 and max(seen_walk_in) > 0.45
    assert min(seen_unassigned) < 1.0 and max(seen_unassigned) > 5.0


@pytest.mark.parametrize("seed", [1000, 1003, 5000, 5004])
def test_every_kind_is_planted_and_records_validate_for_drawn_banks(seed: int) -> None:
    config = sized_config(draw_profile(seed), seed=seed, staff=60, days=10, start="2026-03-02")
    sim = generate(config)
    assert {i.kind for i in sim.incidents if not i.benign} == set(MALICIOUS_KINDS)
    validators = {
        name: Draft202012Validator(
            json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
        )
        for name in ("access-event", "staff-record", "assignment", "customer-profile")
    }
    schema_of = {
        "staff-directory": "staff-record",
        "staff-assignments": "assignment",
        "customer-profiles": "customer-profile",
    }
    for r in sim.reference:
        assert r.value is not None
        errors = list(validators[schema_of[r.topic]].iter_errors(r.value))
        assert not errors, (r, errors[0].message)
    for ev in sim.events[::7]:
        errors = list(validators["access-event"].iter_errors(ev))
        assert not errors, (ev, errors[0].message)


# -- each parameter moves the rates its way ------------------------------------------


def _sim(**changes: Any) -> Simulation:
    key = tuple(sorted(changes.items()))
    if key not in _SIMS:
        _SIMS[key] = generate(SimConfig(**SMALL, profile=replace(DEFAULT_PROFILE, **changes)))
    return _SIMS[key]


_SIMS: dict[tuple[tuple[str, Any], ...], Simulation] = {}


def _role_events(sim: Simulation, role: str) -> list[tuple[dict[str, Any], bool]]:
    """Unlabelled events of staff in ``role`` with 'assigned?' (ground truth)."""
    truth = GroundTruth(sim)
    labelled = {e for i in sim.incidents for e in i.event_ids}
    out = []
    for ev in sim.events:
        if ev["event_id"] in labelled or ev["customer_id"] is None:
            continue
        enriched = truth.enrich(Access.from_json(ev))
        if enriched.role == role:
            out.append((ev, enriched.assigned))
    return out


def _unassigned_share(sim: Simulation, role: str) -> float:
    evs = _role_events(sim, role)
    return sum(1 for _, assigned in evs if not assigned) / len(evs)


def _action_share(sim: Simulation, role: str, actions: set[str]) -> float:
    evs = _role_events(sim, role)
    return sum(1 for ev, _ in evs if ev["action"] in actions) / len(evs)


def _local(ev: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(ev["occurred_at"])


def _rises(metric: Callable[[Simulation], float], low: dict[str, Any], high: dict[str, Any]):
    a, b = metric(_sim(**low)), metric(_sim(**high))
    assert b > a, (low, a, high, b)


def test_more_legitimate_unassigned_lookups_raise_the_unassigned_share() -> None:
    _rises(
        lambda s: _unassigned_share(s, "customer_manager"),
        {"cm_unassigned_share": 0.02},
        {"cm_unassigned_share": 0.3},
    )
    _rises(
        lambda s: _unassigned_share(s, "loan_officer"),
        {"lo_unassigned_share": 0.05},
        {"lo_unassigned_share": 0.4},
    )
    _rises(
        lambda s: _unassigned_share(s, "branch_manager"),
        {"bm_unassigned_share": 0.1},
        {"bm_unassigned_share": 0.6},
    )


def test_walk_ins_at_customer_managers_raise_their_unassigned_share() -> None:
    _rises(
        lambda s: _unassigned_share(s, "customer_manager"),
        {"cm_walk_in_share": 0.0},
        {"cm_walk_in_share": 0.5},
    )
    credit = {"credit_report_query"}
    _rises(
        lambda s: _action_share(s, "loan_officer", credit) * _unassigned_share(s, "loan_officer"),
        {"lo_walk_in_share": 0.0},
        {"lo_walk_in_share": 0.3},
    )


def test_walk_ins_from_other_branches() -> None:
    def other_branch(sim: Simulation) -> float:
        home = {
            r.key: r.value["home_branch_id"]
            for r in sim.reference
            if r.topic == "customer-profiles" and r.value is not None
        }
        evs = _role_events(sim, "teller")
        return sum(1 for ev, _ in evs if home[ev["customer_id"]] != ev["branch_id"]) / len(evs)

    _rises(other_branch, {"walk_in_own_branch": 0.97}, {"walk_in_own_branch": 0.6})


def test_statement_and_credit_factors_raise_those_actions() -> None:
    prints = {"print_statement"}
    statements = {"print_statement", "export_statement"}
    credit = {"credit_report_query"}
    _rises(
        lambda s: _action_share(s, "teller", prints),
        {"teller_statement_factor": 0.3},
        {"teller_statement_factor": 3.0},
    )
    _rises(
        lambda s: _action_share(s, "customer_manager", statements),
        {"cm_statement_factor": 0.3},
        {"cm_statement_factor": 3.0},
    )
    _rises(
        lambda s: _action_share(s, "loan_officer", credit),
        {"lo_credit_factor": 0.5},
        {"lo_credit_factor": 2.0},
    )
    _rises(
        lambda s: _action_share(s, "customer_manager", credit),
        {"cm_credit_factor": 0.5},
        {"cm_credit_factor": 2.0},
    )


def test_missing_authorizations_are_labelled_benign() -> None:
    sim = _sim(credit_authorized_share=0.9)
    labelled = {e: i for i in sim.incidents for e in i.event_ids}
    missing = [
        ev
        for ev in sim.events
        if ev["action"] == "credit_report_query" and not ev["authorization_ref"]
    ]
    ordinary = [ev for ev in missing if labelled[ev["event_id"]].kind == "authorization_on_file"]
    assert ordinary, "no ordinary credit query lacked its reference"
    assert all(labelled[ev["event_id"]].benign for ev in ordinary)
    assert not any(i.kind == "authorization_on_file" for i in _sim().incidents), (
        "the default profile authorizes every ordinary credit query"
    )


def test_shift_parameters_move_working_hours() -> None:
    def teller_first_hour(sim: Simulation) -> float:
        first: dict[tuple[str, str], float] = {}
        for ev, _ in _role_events(sim, "teller"):
            t = _local(ev)
            key = (ev["staff_id"], t.date().isoformat())
            first.setdefault(key, t.hour + t.minute / 60)
        return statistics.mean(first.values())

    def evening_share(sim: Simulation) -> float:
        evs = _role_events(sim, "teller")
        return sum(1 for ev, _ in evs if _local(ev).hour >= 18) / len(evs)

    def afternoon_gap(sim: Simulation) -> float:
        evs = _role_events(sim, "teller") + _role_events(sim, "customer_manager")
        return -sum(1 for ev, _ in evs if 13 <= _local(ev).hour < 15) / len(evs)

    _rises(teller_first_hour, {"shift_offset_min": -60}, {"shift_offset_min": 60})
    _rises(evening_share, {"teller_late_share": 0.0}, {"teller_late_share": 0.8})
    _rises(afternoon_gap, {"split_share": 0.0}, {"split_share": 0.6})


def test_weekend_work_parameters() -> None:
    def weekend_share(role: str) -> Callable[[Simulation], float]:
        def get(sim: Simulation) -> float:
            evs = _role_events(sim, role)
            return sum(1 for ev, _ in evs if _local(ev).weekday() >= 5) / len(evs)

        return get

    _rises(weekend_share("customer_manager"), {"cm_weekend_share": 0.0}, {"cm_weekend_share": 0.8})
    _rises(weekend_share("teller"), {"teller_saturday_rota": 0}, {"teller_saturday_rota": 1})
    assert weekend_share("teller")(_sim(teller_saturday_rota=0)) == 0.0


def test_branch_skew_and_timezones() -> None:
    def head_share(sim: Simulation) -> float:
        homes = Counter(
            r.value["home_branch_id"]
            for r in sim.reference
            if r.topic == "customer-profiles" and r.value is not None
        )
        return homes["BR01"] / sum(homes.values())

    _rises(head_share, {"head_branch_weight": 1.0}, {"head_branch_weight": 3.0})
    london = _sim(foreign_timezones=("Europe/London",))
    offsets = {ev["occurred_at"][-6:] for ev in london.events if ev["branch_id"] == "BR03"}
    assert offsets <= {"+00:00", "+01:00", "0.000Z"} | {
        ev["occurred_at"][-6:] for ev in london.events if ev["occurred_at"].endswith("Z")
    }
    assert "+00:00" in offsets
    zones = {
        r.value["timezone"]
        for r in london.reference
        if r.topic == "staff-directory" and r.value is not None
    }
    assert "Europe/London" in zones and "Asia/Tokyo" not in zones


def test_portfolio_volume_and_turnover_parameters() -> None:
    def rm_assignments(sim: Simulation) -> float:
        return sum(
            1
            for r in sim.reference
            if r.topic == "staff-assignments"
            and r.value is not None
            and r.value["relation"] == "relationship_manager"
        )

    def staff_status(status: str) -> Callable[[Simulation], float]:
        def get(sim: Simulation) -> float:
            return sum(
                1
                for r in sim.reference
                if r.topic == "staff-directory"
                and r.value is not None
                and r.value["status"] == status
            )

        return get

    def new_staff(sim: Simulation) -> float:
        first = {r.key for r in sim.reference[: SMALL["staff"]]}
        return len({r.key for r in sim.reference if r.topic == "staff-directory"} - first)

    def volume_spread(sim: Simulation) -> float:
        per = Counter(ev["staff_id"] for ev, _ in _role_events(sim, "teller"))
        return statistics.pstdev(per.values()) / statistics.mean(per.values())

    _rises(rm_assignments, {"rm_share": 0.3}, {"rm_share": 0.9})
    _rises(lambda s: float(len(s.events)), {"volume_factor": 0.6}, {"volume_factor": 1.5})
    _rises(
        volume_spread,
        {"volume_sigma": 0.05, "volume_min": 0.2, "volume_max": 4.0},
        {"volume_sigma": 0.7, "volume_min": 0.2, "volume_max": 4.0},
    )
    _rises(staff_status("terminated"), {"staff_per_leaver": 100.0}, {"staff_per_leaver": 15.0})
    _rises(new_staff, {"staff_per_hire": 100.0}, {"staff_per_hire": 15.0})


def test_it_lookups_and_searches() -> None:
    def it_views(sim: Simulation) -> float:
        return float(len(_role_events(sim, "it_support")))

    _rises(it_views, {"it_lookup_share": 0.1}, {"it_lookup_share": 0.6})
    _rises(
        lambda s: sum(
            1
            for ev in s.events
            if ev["action"] == "search_customers" and parse_ts(ev["occurred_at"]) > 0
        ),
        {"cm_search_share": 0.02},
        {"cm_search_share": 0.2},
    )
