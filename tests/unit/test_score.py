"""Scoring of alerts against labelled incidents, and the report files."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.timeutil import format_ts
from simbank.evaluate.report import format_console, write_report
from simbank.evaluate.score import Scorecard, score

T0 = 1_772_415_000.0  # 2026-03-02T01:30:00Z


@dataclass(frozen=True)
class Incident:
    incident_id: str
    kind: str
    benign: bool
    staff_id: str
    event_ids: tuple[str, ...]
    start: float
    end: float
    within_session: bool


def inc(
    iid: str, kind: str, n: int, start: float, *, benign: bool = False, session: bool = True
) -> Incident:
    ids = tuple(f"{iid}-e{i}" for i in range(n))
    return Incident(iid, kind, benign, f"S-{iid}", ids, start, start + 60.0 * n, session)


INCIDENTS = [
    inc("m1", "unassigned_lookup", 3, T0),
    inc("m2", "bulk_harvest", 5, T0 + 3600),
    inc("m3", "statement_exfiltration", 2, T0 + 7200),
    inc("m4", "low_and_slow", 4, T0, session=False),
    inc("b1", "covering_colleague", 2, T0, benign=True),
    inc("b2", "new_hire", 3, T0, benign=True),
]
NORMAL_EVENTS = [f"n{i}" for i in range(200)]
STAFF_DAYS = 250


def alert(
    alert_id: str,
    event_ids: list[str],
    last_at: float,
    *,
    revision: int = 1,
    reasons: tuple[str, ...] = ("rule",),
) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "revision": revision,
        "staff_id": "S",
        "event_ids": event_ids,
        "event_count": len(event_ids),
        "first_event_at": format_ts(last_at - 1.0),
        "last_event_at": format_ts(last_at),
        "reasons": [{"code": c, "summary": c, "weight": 1.0} for c in reasons],
        "severity": "high",
        "risk_score": 80.0,
    }


def perfect_alerts() -> list[dict[str, Any]]:
    return [
        alert(f"a-{i.incident_id}", list(i.event_ids), i.end, reasons=(i.kind,))
        for i in INCIDENTS
        if not i.benign
    ]


def test_perfect_detector_scores_full_recall_and_precision() -> None:
    sc = score("perfect", INCIDENTS, perfect_alerts(), STAFF_DAYS)
    assert sc.incident_recall == 1.0
    assert sc.alert_precision == 1.0
    assert sc.alerts == sc.true_alerts == 4
    assert sc.false_alerts == 0
    assert sc.false_alerts_per_100_staff_days == 0.0
    assert sc.false_alerts_on_benign == {"covering_colleague": 0, "new_hire": 0}
    assert set(sc.per_kind) == {
        "unassigned_lookup",
        "bulk_harvest",
        "statement_exfiltration",
        "low_and_slow",
    }
    for i in INCIDENTS:
        if not i.benign:
            res = sc.per_kind[i.kind]
            assert (res.injected, res.detected) == (1, 1)
            assert res.median_ttd_seconds == pytest.approx(i.end - i.start)
    assert sc.median_ttd_low_and_slow_seconds == pytest.approx(240.0)
    # within-session incidents: m1 (180 s), m2 (300 s), m3 (120 s)
    assert sc.median_ttd_within_session_seconds == pytest.approx(180.0)
    assert (sc.within_session_on_target, sc.within_session_incidents) == (3, 3)
    assert sc.alerts_by_reason == {k: 1 for k in sc.per_kind}


def test_noisy_detector_gives_expected_precision_and_false_alert_rate() -> None:
    rng = random.Random(3)
    b1, b2 = INCIDENTS[4], INCIDENTS[5]
    m1 = INCIDENTS[0]
    n_random = 7
    noise = [
        alert(f"noise-{k}", rng.sample(NORMAL_EVENTS, rng.randint(1, 5)), T0 + k)
        for k in range(n_random)
    ]
    noise += [
        # on a benign look-alike, mixed with normal events
        alert("fb-1", [b1.event_ids[0], "n1"], T0 + 10),
        # named in revision 1 only: the union over revisions still counts it
        alert("fb-2", [b1.event_ids[1]], T0 + 11, revision=1),
        alert("fb-2", ["n2"], T0 + 12, revision=2),
        # touching two benign kinds counts under both
        alert("fb-3", [b1.event_ids[0], b2.event_ids[2]], T0 + 13),
    ]
    # naming a benign and a malicious event: a true alert, not a benign false one
    mixed = alert("mixed", [b2.event_ids[0], m1.event_ids[1]], T0 + 14)
    alerts = [*perfect_alerts(), *noise, mixed]
    sc = score("noisy", INCIDENTS, alerts, STAFF_DAYS)

    false_alerts = n_random + 3
    assert sc.alerts == 4 + 1 + false_alerts
    assert sc.true_alerts == 5
    assert sc.false_alerts == false_alerts
    assert sc.alert_precision == pytest.approx(5 / (5 + false_alerts))
    assert sc.false_alerts_per_100_staff_days == pytest.approx(false_alerts * 100 / STAFF_DAYS)
    assert sc.false_alerts_on_benign == {"covering_colleague": 3, "new_hire": 1}
    assert sc.incident_recall == 1.0
    # the mixed alert detects m1 at T0 + 14, earlier than the perfect alert at m1.end
    assert sc.per_kind["unassigned_lookup"].median_ttd_seconds == pytest.approx(14.0)


def test_detection_at_the_first_revision_naming_an_incident_event() -> None:
    m1 = INCIDENTS[0]
    alerts = [
        # delivered out of order: revision 2 first
        alert("a", ["n5", m1.event_ids[2]], m1.start + 500, revision=2, reasons=("late",)),
        alert("a", ["n4"], m1.start + 100, revision=1, reasons=("early",)),
        alert("b", [m1.event_ids[0]], m1.start + 900),
    ]
    sc = score("revisions", INCIDENTS, alerts, STAFF_DAYS)
    res = sc.per_kind["unassigned_lookup"]
    assert res.detected == 1
    assert res.median_ttd_seconds == pytest.approx(500.0)
    assert sc.alerts == 2
    assert sc.true_alerts == 2
    # reasons come from the highest revision only
    assert sc.alerts_by_reason == {"late": 1, "rule": 1}


def test_time_to_detect_is_floored_at_zero() -> None:
    m2 = INCIDENTS[1]
    sc = score("early", INCIDENTS, [alert("x", [m2.event_ids[0]], m2.start - 30)], STAFF_DAYS)
    assert sc.per_kind["bulk_harvest"].median_ttd_seconds == 0.0


def test_undetected_kinds_have_zero_detections_and_no_ttd() -> None:
    m3 = INCIDENTS[2]
    sc = score("partial", INCIDENTS, [alert("only", [m3.event_ids[1]], m3.end)], STAFF_DAYS)
    assert sc.incident_recall == pytest.approx(1 / 4)
    assert sc.per_kind["statement_exfiltration"].detected == 1
    for kind in ("unassigned_lookup", "bulk_harvest", "low_and_slow"):
        res = sc.per_kind[kind]
        assert (res.injected, res.detected, res.median_ttd_seconds) == (1, 0, None)
    assert sc.median_ttd_low_and_slow_seconds is None


def test_no_alerts() -> None:
    sc = score("silent", INCIDENTS, [], STAFF_DAYS)
    assert (sc.alerts, sc.false_alerts, sc.incident_recall) == (0, 0, 0.0)
    assert sc.alert_precision == 1.0
    assert sc.median_ttd_within_session_seconds is None


def test_staff_days_must_be_positive() -> None:
    with pytest.raises(ValueError, match="active_staff_days"):
        score("x", INCIDENTS, [], 0)


def test_to_json_round_trips_through_json() -> None:
    sc = score("perfect", INCIDENTS, perfect_alerts(), STAFF_DAYS)
    doc = json.loads(json.dumps(sc.to_json()))
    assert doc["name"] == "perfect"
    assert doc["per_kind"]["bulk_harvest"]["recall"] == 1.0
    assert doc["false_alerts_on_benign"]["new_hire"] == 0


def _three_cards() -> list[Scorecard]:
    m1 = INCIDENTS[0]
    return [
        score("pipeline", INCIDENTS, perfect_alerts(), STAFF_DAYS),
        score("naive_rules", INCIDENTS, [alert("n", [m1.event_ids[0], "n1"], m1.end)], STAFF_DAYS),
        score("halfspacetrees", INCIDENTS, [], STAFF_DAYS),
    ]


def test_write_report_writes_three_files(tmp_path: Path) -> None:
    cards = _three_cards()
    meta = {"seed": 7, "size": "small", "events": 12345, "throughput_events_per_s": 5000.5}
    paths = write_report(cards, meta, tmp_path / "out")
    assert set(paths) == {"json", "markdown", "chart"}
    for path in paths.values():
        assert path.parent == tmp_path / "out"
        assert path.stat().st_size > 0
    assert paths["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert [c["name"] for c in doc["scorecards"]] == ["pipeline", "naive_rules", "halfspacetrees"]
    assert doc["meta"]["seed"] == 7
    md = paths["markdown"].read_text(encoding="utf-8")
    header = next(line for line in md.splitlines() if line.startswith("| metric"))
    for card in cards:
        assert card.name in header
    assert "| detected: unassigned_lookup | 1/1 | 1/1 | 0/1 |" in md
    assert "n/a (no alerts)" in md
    console = format_console(cards, meta)
    for card in cards:
        assert card.name in console
