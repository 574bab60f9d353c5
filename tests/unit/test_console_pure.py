"""The console's pure parts: filters and cursor, workflow rules, identity and CSRF, charts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import orjson
import pytest

from pipeline.console.charts import TimelinePoint, feature_bars, feature_chart, timeline_chart
from pipeline.console.filters import FilterError, QueueFilter, QueueKey
from pipeline.console.identity import (
    IdentityError,
    Signer,
    analyst_from_headers,
    parse_roles,
)
from pipeline.console.privacy import RefMasker, is_pseudonym
from pipeline.console.workflow import (
    InputError,
    WorkflowError,
    check_transition,
    feedback_for,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_filter_rejects_unknown_values_with_the_parameter_named() -> None:
    for params, word in (
        ({"state": ["pending"]}, "state"),
        ({"severity": ["urgent"]}, "severity"),
        ({"role": ["ceo"]}, "role"),
        ({"reason": ["DROP TABLE"]}, "reason"),
        ({"branch": ["a'b"]}, "branch"),
        ({"since": ["yesterday"]}, "since"),
        ({"limit": ["7"]}, "limit"),
        ({"since": ["2026-03-05"], "until": ["2026-03-01"]}, "since must be before"),
    ):
        with pytest.raises(FilterError, match=word):
            QueueFilter.parse(params, "UTC")


def test_filter_days_are_bank_local_and_until_includes_its_day() -> None:
    f = QueueFilter.parse({"since": ["2026-03-02"], "until": ["2026-03-02"]}, "Asia/Shanghai")
    lo, hi = f.time_range()
    assert lo == datetime(2026, 3, 1, 16, tzinfo=UTC)
    assert hi == datetime(2026, 3, 2, 16, tzinfo=UTC)


def test_filter_round_trips_through_its_query_string() -> None:
    from urllib.parse import parse_qs

    f = QueueFilter.parse(
        {
            "state": ["closed"],
            "severity": ["critical", "low"],
            "role": ["teller"],
            "reason": ["bulk_access"],
            "assignee": ["me"],
            "limit": ["100"],
        },
        "UTC",
    )
    assert f.severities == ("low", "critical")
    assert QueueFilter.parse(parse_qs(f.query()), "UTC") == f
    assert f.states() == ("closed",)
    assert QueueFilter().states() == ("open", "acknowledged")
    assert QueueFilter(state="all").states() == ()


def test_cursor_round_trips_and_rejects_garbage() -> None:
    key = QueueKey(4, 93.5, datetime(2026, 3, 2, 1, 2, 3, 456000, tzinfo=UTC), "al-1")
    assert QueueKey.decode(key.encode()) == key
    for bad in ("", "!!!", "bm90IGpzb24", "WzEsMiwzXQ"):
        with pytest.raises(FilterError):
            QueueKey.decode(bad)


def test_workflow_transitions() -> None:
    assert check_transition("open", "acknowledge") == "acknowledged"
    assert check_transition("acknowledged", "close") == "closed"
    assert check_transition("closed", "reopen") == "open"
    assert check_transition("open", "assign") == "open"
    assert check_transition("closed", "comment") == "closed"
    for state, action in (("closed", "close"), ("acknowledged", "acknowledge"), ("open", "reopen")):
        with pytest.raises(WorkflowError):
            check_transition(state, action)
    with pytest.raises(InputError):
        check_transition("open", "delete")


def test_feedback_record_matches_the_contract_schema() -> None:
    schema = orjson.loads((SCHEMAS / "alert-feedback.schema.json").read_bytes())
    at = datetime(2026, 3, 2, 9, 30, 0, 123456, tzinfo=UTC)
    fb = feedback_for("al-1", "benign_true_positive", "alice", "  ok  ", now=at)
    record = orjson.loads(fb.to_json())
    jsonschema.validate(record, schema)
    assert record == {
        "alert_id": "al-1",
        "verdict": "benign_true_positive",
        "analyst_id": "alice",
        "decided_at": "2026-03-02T09:30:00.123Z",
        "comment": "ok",
    }
    assert fb.decided_at.microsecond == 123000
    assert "comment" not in orjson.loads(feedback_for("al-1", "true_positive", "a", "").to_json())
    with pytest.raises(InputError, match="verdict"):
        feedback_for("al-1", "maybe", "alice", None)
    with pytest.raises(InputError, match="at most"):
        feedback_for("al-1", "true_positive", "alice", "x" * 5000)


def test_signer_refuses_tampered_tokens_and_other_purposes() -> None:
    s = Signer("a-secret-of-enough-length")
    token = s.sign("session", {"n": "alice"})
    assert s.unsign("session", token) == {"n": "alice"}
    body, mac = token.split(".")
    with pytest.raises(IdentityError):
        s.unsign("session", body + "x." + mac)
    with pytest.raises(IdentityError):
        s.unsign("other", token)
    with pytest.raises(IdentityError):
        Signer("another-secret-of-length").unsign("session", token)
    with pytest.raises(ValueError, match="16"):
        Signer("short")


def test_csrf_token_is_bound_to_browser_seed_and_analyst() -> None:
    s = Signer("a-secret-of-enough-length")
    t = s.csrf_token("seed1", "alice")
    assert s.check_csrf("seed1", "alice", t)
    assert not s.check_csrf("seed2", "alice", t)
    assert not s.check_csrf("seed1", "bob", t)
    assert not s.check_csrf(None, "alice", t)
    assert not s.check_csrf("seed1", "alice", None)


def test_identity_from_headers() -> None:
    a = analyst_from_headers({"X-User": " alice ", "X-G": "soc,investigator"}, "X-User", "X-G")
    assert a.name == "alice" and a.has_role("investigator") and not a.has_role("admin")
    with pytest.raises(IdentityError, match="X-User"):
        analyst_from_headers({}, "X-User", "X-G")
    with pytest.raises(IdentityError):
        analyst_from_headers({"X-User": "bad\x00name"}, "X-User", "X-G")
    assert parse_roles("ok, <script>") == frozenset({"ok"})


def test_masker_keeps_pseudonyms_and_hashes_anything_else() -> None:
    m = RefMasker("k")
    ref = "cref-0123456789abcdef0123"
    assert m(ref) == ref
    hashed = m("C0001234")
    assert hashed is not None and is_pseudonym(hashed) and "C0001234" not in hashed
    assert m(None) is None


def test_feature_chart_escapes_and_draws_the_employees_bars_only_when_known() -> None:
    bars = feature_bars(
        [
            {"feature": "<b>events</b>", "value": 40, "baseline": 4, "contribution": 0.6},
            {"feature": "x", "value": "n/a", "baseline": 1},
        ]
    )
    assert len(bars) == 1 and bars[0].peer_baseline == 4 and bars[0].baseline is None
    svg = str(feature_chart(bars))
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    assert "bar-staff" not in svg and "bar-peer" in svg
    with_own = str(
        feature_chart(
            feature_bars([{"feature": "e", "value": 5, "baseline": 1, "own_baseline": 2}])
        )
    )
    assert "employee&#39;s usual" in with_own or "employee's usual" in with_own
    assert "bar-staff" in with_own and "bar-peer" in with_own
    assert str(feature_chart([])) == ""


def test_timeline_places_points_in_time_order() -> None:
    t0, t1 = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 11, tzinfo=UTC)
    svg = str(
        timeline_chart([TimelinePoint(datetime(2026, 3, 6, tzinfo=UTC), "high", 50, "a<b")], t0, t1)
    )
    assert 'class="sev-high"' in svg and "a&lt;b" in svg
    assert 'cx="' in svg
