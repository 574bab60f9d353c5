"""The two baselines: naive rules and a plain HalfSpaceTrees (on simbank's own enrichment)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from simbank.evaluate.baselines import halfspacetrees, hst_features, naive_rules
from simbank.evaluate.enrich import Access, Enriched, GroundTruth
from simbank.evaluate.score import score
from simbank.simulate.model import RefRecord
from simbank.timestamps import parse_ts

EPOCH0 = "2026-01-01T00:00:00.000+08:00"


def reference() -> GroundTruth:
    recs = []
    for staff, branch in (("S1", "B1"), ("S2", "B2")):
        recs.append(
            RefRecord(
                "staff-directory",
                staff,
                {
                    "staff_id": staff,
                    "branch_id": branch,
                    "role": "customer_manager",
                    "status": "active",
                    "effective_at": EPOCH0,
                    "timezone": "Asia/Shanghai",
                },
            )
        )
    for staff, cust in (("S1", "C1"), ("S2", "C3"), ("S1", "C4")):  # C4: assigned, but a PEP
        recs.append(
            RefRecord(
                "staff-assignments",
                f"{staff}:{cust}",
                {"staff_id": staff, "customer_id": cust, "valid_from": EPOCH0, "valid_to": None},
            )
        )
    for cust, branch, sens in (
        ("C1", "B1", "normal"),
        ("C2", "B1", "vip"),
        ("C3", "B2", "normal"),
        ("C4", "B1", "pep"),
    ):
        recs.append(
            RefRecord(
                "customer-profiles",
                cust,
                {"customer_id": cust, "home_branch_id": branch, "sensitivity": sens},
            )
        )
    return GroundTruth(SimpleNamespace(reference=recs))  # type: ignore[arg-type]


def access(
    eid: str, at: str, staff: str, customer: str | None, action: str = "view_profile"
) -> Access:
    return Access(eid, parse_ts(at), staff, customer, action, "branch_terminal", "B1")


@dataclass(frozen=True)
class Label:
    incident_id: str
    kind: str
    benign: bool
    staff_id: str
    event_ids: tuple[str, ...]
    start: float
    end: float
    within_session: bool


def test_naive_rules_flag_unassigned_and_sensitive_per_staff_day() -> None:
    state = reference()
    events = [
        access("ok", "2026-03-02T09:00:00+08:00", "S1", "C1"),  # assigned, normal
        access("search", "2026-03-02T09:05:00+08:00", "S1", None, "search_customers"),
        access("vip", "2026-03-02T10:00:00+08:00", "S1", "C2"),  # unassigned + vip
        access("pep", "2026-03-02T11:00:00+08:00", "S1", "C4"),  # assigned, pep
        access("other", "2026-03-02T23:30:00+08:00", "S1", "C3"),  # unassigned
        # 16:30Z: same UTC day as the access above, but the next local day
        access("nextday", "2026-03-03T00:30:00+08:00", "S1", "C3"),
        access("s2", "2026-03-02T12:00:00+08:00", "S2", "C1"),  # unassigned for S2
        access("s2ok", "2026-03-02T12:05:00+08:00", "S2", "C3"),
    ]
    revisions = naive_rules(state.enrich(e) for e in events)

    top: dict[str, dict[str, Any]] = {}
    for rev in revisions:
        cur = top.get(rev["alert_id"])
        if cur is None or rev["revision"] > cur["revision"]:
            top[rev["alert_id"]] = rev
    assert set(top) == {"naive-S1-2026-03-02", "naive-S1-2026-03-03", "naive-S2-2026-03-02"}

    day = top["naive-S1-2026-03-02"]
    assert day["event_ids"] == ["vip", "pep", "other"]
    assert day["event_count"] == 3
    assert day["first_event_at"] == "2026-03-02T02:00:00.000Z"
    assert day["last_event_at"] == "2026-03-02T15:30:00.000Z"
    codes = {r["code"] for r in day["reasons"]}
    assert codes == {"unassigned_access", "sensitive_access"}
    assert top["naive-S1-2026-03-03"]["event_ids"] == ["nextday"]
    assert top["naive-S2-2026-03-02"]["event_ids"] == ["s2"]
    assert [r["code"] for r in top["naive-S2-2026-03-02"]["reasons"]] == ["unassigned_access"]

    # the alert fires at the first flagged access, and names each later one when it happens
    first = next(
        r for r in revisions if r["alert_id"] == "naive-S1-2026-03-02" and r["revision"] == 1
    )
    assert first["event_ids"] == ["vip"]
    assert first["last_event_at"] == "2026-03-02T02:00:00.000Z"
    labels = [
        Label(
            "i1",
            "sensitive_snooping",
            False,
            "S1",
            ("pep",),
            parse_ts("2026-03-02T10:59:00+08:00"),
            0.0,
            True,
        )
    ]
    sc = score("naive_rules", labels, revisions, active_staff_days=3)
    assert sc.per_kind["sensitive_snooping"].median_ttd_seconds == 60.0
    assert sc.alerts == 3
    assert sc.false_alerts == 2


def toy_stream(seed: int) -> tuple[list[Enriched], set[str]]:
    """Office-hours assigned views, with a burst of night-time bulk exports in the middle."""
    state = reference()
    rng = random.Random(seed)
    events: list[Access] = []
    burst: set[str] = set()
    t = parse_ts("2026-03-02T09:00:00+08:00")
    for i in range(3000):
        t += rng.uniform(5.0, 15.0)
        events.append(Access(f"n{i}", t, "S1", "C1", "view_profile", "branch_terminal", "B1"))
        if i == 2000:
            night = parse_ts("2026-03-03T03:00:00+08:00")
            for j in range(30):
                eid = f"x{j}"
                burst.add(eid)
                events.append(
                    Access(
                        eid,
                        night + j,
                        "S2",
                        "C2",
                        "export_statement",
                        "api",
                        "B9",
                        record_count=5000,
                    )
                )
    return [state.enrich(e) for e in events], burst


def test_hst_features_are_in_unit_range() -> None:
    stream, burst = toy_stream(1)
    for e in stream[:50] + [e for e in stream if e.event.event_id in burst]:
        feats = hst_features(e)
        assert len(feats) == 9
        assert all(0.0 <= v <= 1.0 for v in feats.values()), feats
    anomalous = hst_features(next(e for e in stream if e.event.event_id in burst))
    assert anomalous["unassigned"] == anomalous["sensitive"] == anomalous["export_print"] == 1.0
    assert anomalous["other_branch"] == 1.0
    assert anomalous["records"] > 0.9


def test_hst_is_deterministic_for_a_seed() -> None:
    stream, _ = toy_stream(2)
    assert halfspacetrees(stream, seed=5) == halfspacetrees(stream, seed=5)


def test_hst_flags_an_anomalous_burst_more_than_normal_events() -> None:
    stream, burst = toy_stream(3)
    flagged: set[str] = set()
    for rev in halfspacetrees(stream, threshold=0.8, seed=42):
        flagged.update(rev["event_ids"])
    burst_rate = len(flagged & burst) / len(burst)
    normal_rate = len(flagged - burst) / (len(stream) - len(burst))
    assert burst_rate > 0.5
    assert burst_rate > 10 * normal_rate
