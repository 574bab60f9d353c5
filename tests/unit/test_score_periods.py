"""Scoring over a learning period: windows, severity bands, weekly rates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest

from simbank.evaluate.report import BankResult, evaluation_markdown, missed_targets, spread
from simbank.evaluate.score import Period, score
from simbank.timestamps import format_ts, local_midnight, parse_ts

START = date(2026, 3, 2)  # a Monday
PERIOD = Period(START, 21, learn_days=7)  # learn_until 2026-03-09T00:00+08:00
DAY = 86400.0


@dataclass(frozen=True)
class Inc:
    incident_id: str
    kind: str
    benign: bool
    staff_id: str
    event_ids: tuple[str, ...]
    start: float
    end: float
    within_session: bool


def at(day: int, hour: float = 10.0) -> float:
    """Epoch seconds of ``hour`` o'clock (Asia/Shanghai) on simulated day ``day``."""
    return local_midnight(START + timedelta(days=day), "Asia/Shanghai") + hour * 3600


def inc(iid: str, kind: str, day: int, *, benign: bool = False) -> Inc:
    return Inc(iid, kind, benign, "S1", (f"{iid}-e0", f"{iid}-e1"), at(day), at(day) + 60, True)


def alert(
    alert_id: str,
    event_ids: list[str],
    first: float,
    last: float | None = None,
    *,
    severity: str = "medium",
    revision: int = 1,
) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "revision": revision,
        "staff_id": "S1",
        "event_ids": event_ids,
        "first_event_at": format_ts(first),
        "last_event_at": format_ts(last if last is not None else first),
        "severity": severity,
        "reasons": [{"code": "r", "summary": "r", "weight": 1.0}],
    }


# staff-days: 10 per day
BY_DATE = {START + timedelta(days=d): 10 for d in range(21)}

INCIDENTS = [
    inc("early-policy", "unauthorized_credit_query", 3),  # during learning, policy
    inc("early-behaviour", "bulk_harvest", 4),  # during learning, behaviour-only
    inc("late-1", "bulk_harvest", 9),
    inc("late-2", "sensitive_snooping", 15),
    inc("late-benign", "new_hire", 10, benign=True),
]


def test_period_learn_until_is_local_midnight_in_the_bank_timezone() -> None:
    assert PERIOD.learn_until == parse_ts("2026-03-09T00:00:00+08:00")
    assert PERIOD.learn_until_rfc3339 == "2026-03-09T00:00:00+08:00"
    tokyo = Period(START, 21, 7, "Asia/Tokyo")
    assert tokyo.learn_until == parse_ts("2026-03-09T00:00:00+09:00")
    assert Period(START, 21).learn_days == 0
    with pytest.raises(ValueError, match="learn_days"):
        Period(START, 7, learn_days=7)


def test_learning_period_windows() -> None:
    alerts = [
        # opened during learning, names the policy incident: reported under learning
        alert("a-policy", ["early-policy-e0"], at(3), severity="high"),
        # opened during learning, false, critical
        alert("a-early-false", ["n1"], at(5), severity="critical"),
        # opened during learning but a later revision names a scored incident: detects it,
        # yet the alert itself belongs to the learning period
        alert("a-bridge", ["n2"], at(6), severity="low"),
        alert("a-bridge", ["late-1-e1"], at(6), at(9, 11), severity="high", revision=2),
        # after learning
        alert("a-late-2", ["late-2-e0"], at(15), severity="critical"),
        alert("a-false-1", ["n3"], at(12), severity="medium"),
        alert("a-false-2", ["late-benign-e0"], at(10), severity="low"),
        alert("a-false-3", ["n4"], at(16)),
        alert("a-false-3", ["n5"], at(16), severity="high", revision=2),
    ]
    sc = score("p", INCIDENTS, alerts, BY_DATE, PERIOD)
    # recall over incidents starting after learn_until only
    assert sc.malicious_incidents == 2
    assert sc.detected_incidents == 2
    assert sc.incident_recall == 1.0
    assert sc.per_kind["bulk_harvest"].injected == 1
    assert sc.per_kind["unauthorized_credit_query"].injected == 0
    assert (sc.kinds_found, sc.kinds_scored) == (2, 2)
    # TTD of late-1: detected by the bridging alert's revision 2 at 11:00 on day 9
    assert sc.per_kind["bulk_harvest"].median_ttd_seconds == pytest.approx(3600.0)
    # alerts: first event at or after learn_until
    assert sc.alerts == 4
    assert sc.true_alerts == 1
    assert sc.false_alerts == 3
    assert sc.alert_precision == pytest.approx(0.25)
    # staff-days from day 7 on: 14 days x 10
    assert sc.active_staff_days == 140
    assert sc.false_alerts_per_100_staff_days == pytest.approx(300 / 140)
    assert sc.false_alerts_on_benign == {"new_hire": 1}
    # severity: the highest of any revision
    bands = sc.by_severity
    assert (bands["critical"].alerts, bands["critical"].true_alerts) == (1, 1)
    assert bands["critical"].precision == 1.0
    assert (bands["high"].alerts, bands["high"].false_alerts) == (1, 1)
    assert bands["high"].precision == 0.0
    assert (bands["medium"].alerts, bands["low"].alerts) == (1, 1)
    assert sc.false_alerts_above_medium == 1
    # the learning period, separately
    learning = sc.learning
    assert (learning["alerts"], learning["true_alerts"], learning["false_alerts"]) == (3, 2, 1)
    assert learning["false_alerts_above_medium"] == 1
    assert (learning["policy_incidents"], learning["policy_detected"]) == (1, 1)
    assert learning["policy_recall"] == 1.0
    assert (learning["behaviour_incidents"], learning["behaviour_detected"]) == (1, 0)
    assert sc.learn_until == "2026-03-09T00:00:00+08:00"


def test_weekly_rows_count_every_alert_by_its_first_day() -> None:
    alerts = [
        alert("w1-false", ["n1"], at(2)),
        alert("w1-true", ["early-policy-e0"], at(3)),
        alert("w2-false-a", ["n2"], at(8)),
        alert("w2-false-b", ["n3"], at(13, 23.5)),  # 23:30 local, still week 2
        alert("w3-false", ["n4"], at(14, 0.1)),  # 00:06 on day 14: week 3
    ]
    sc = score("p", INCIDENTS, alerts, BY_DATE, PERIOD)
    rows = [(w.week, w.first_day, w.learning_days, w.alerts, w.false_alerts) for w in sc.weekly]
    assert rows == [
        (0, "2026-03-02", 7, 2, 1),
        (1, "2026-03-09", 0, 2, 2),
        (2, "2026-03-16", 0, 1, 1),
    ]
    assert [w.staff_days for w in sc.weekly] == [70, 70, 70]
    assert sc.weekly[1].false_per_100_staff_days == pytest.approx(200 / 70)


def test_cold_start_scores_the_whole_period() -> None:
    cold = Period(START, 21, learn_days=0)
    alerts = [alert("x", ["early-policy-e0"], at(3)), alert("y", ["n1"], at(4))]
    sc = score("cold", INCIDENTS, alerts, BY_DATE, cold)
    assert sc.malicious_incidents == 4
    assert sc.alerts == 2
    assert sc.active_staff_days == 210
    assert sc.learning == {}
    assert sc.learn_until is None
    assert sc.weekly[0].learning_days == 0


def test_a_period_needs_staff_days_per_date_and_an_unknown_severity_is_an_error() -> None:
    with pytest.raises(ValueError, match="per date"):
        score("p", INCIDENTS, [], 100, PERIOD)
    with pytest.raises(ValueError, match="unknown severity"):
        score("p", INCIDENTS, [alert("x", ["n"], at(9), severity="urgent")], BY_DATE, PERIOD)


def test_spread_and_targets() -> None:
    assert spread([None, None]) is None
    assert spread([3.0]) == {"median": 3.0, "min": 3.0, "max": 3.0, "banks": 1}
    perfect = [alert(f"a-{i.incident_id}", list(i.event_ids), i.start) for i in INCIDENTS[2:4]]
    good = score("p", INCIDENTS, perfect, BY_DATE, PERIOD)
    assert missed_targets(good) == []
    noisy = score(
        "p",
        INCIDENTS,
        [*perfect, *(alert(f"f{k}", ["n"], at(10), severity="high") for k in range(3))],
        BY_DATE,
        PERIOD,
    )
    assert missed_targets(noisy) == [
        "precision >= 0.6",
        "<= 0.5 false / 100 staff-days",
        "no false alert above medium",
    ]
    info = {
        "label": "profile 1000",
        "profile": {"name": "random-1000"},
        "simulation_seed": 101000,
        "size": {"branches": 3, "staff": 40, "customers": 2000, "days": 21, "start": "x"},
        "events": 10,
        "incidents": 4,
        "benign_lookalikes": 1,
        "active_staff_days": 210,
    }
    md = evaluation_markdown(
        [BankResult(info, [good]), BankResult({**info, "label": "profile 1001"}, [noisy])], {}
    )
    assert "| banks meeting every target | 1/2 |" in md
    assert "| 1 (7 d learning) | 2026-03-02 |" in md
    assert "| alert precision | 0.70 [0.40-1.00] |" in md
