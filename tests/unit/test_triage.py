# mypy: disable-error-code="import-untyped"
"""The simulated analyst's daily triage, offline through run_offline, and the banks of a
split."""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from pipeline.core.offline import run_offline
from pipeline.reference.state import ReferenceState
from pipeline.settings import Settings
from simbank.evaluate.analyst import SimulatedAnalyst
from simbank.evaluate.banks import SPLITS, SplitError, drawn_banks, profile_seeds
from simbank.evaluate.enrich import Access, GroundTruth
from simbank.evaluate.offline import access_records, reference_records, run_core
from simbank.evaluate.run import Variant, variants
from simbank.simulate import Incident, SimConfig, Simulation, generate

ROOT = Path(__file__).resolve().parents[2]
FEEDBACK_SCHEMA = Draft202012Validator(
    json.loads((ROOT / "schemas" / "alert-feedback.schema.json").read_text(encoding="utf-8"))
)
TINY = SimConfig(seed=11, branches=2, staff=30, customers=800, days=6)


@pytest.fixture(scope="module")
def tiny() -> Simulation:
    return generate(TINY)


def _inc(iid: str, benign: bool, ids: tuple[str, ...]) -> Incident:
    return Incident(iid, "new_hire" if benign else "bulk_harvest", benign, "S1", ids, 0, 1, True)


def _rev(alert_id: str, ids: list[str]) -> dict[str, Any]:
    return {"alert_id": alert_id, "event_ids": ids}


def test_verdicts_follow_the_labels_and_each_alert_is_reviewed_once() -> None:
    analyst = SimulatedAnalyst(
        [_inc("m", False, ("m1", "m2")), _inc("b", True, ("b1",))], timezone="Asia/Shanghai"
    )
    day1 = analyst.triage(
        "2026-03-02",
        [_rev("A", ["n1"]), _rev("A", ["m2"]), _rev("B", ["b1", "n2"]), _rev("C", ["n3"])],
    )
    records = [orjson.loads(v) for v in day1]
    assert {r["alert_id"]: r["verdict"] for r in records} == {
        "A": "true_positive",  # a later revision of the day named a malicious event
        "B": "benign_true_positive",
        "C": "false_positive",
    }
    for r in records:
        assert FEEDBACK_SCHEMA.is_valid(r), r
        assert r["decided_at"] == "2026-03-03T00:00:00+08:00"
    # revisions of already reviewed alerts on later days: no second verdict
    assert analyst.triage("2026-03-03", [_rev("A", ["n9"]), _rev("C", ["m1"])]) == []
    assert analyst.stats.reviewed == 3
    assert analyst.verdicts["C"] == "false_positive"


def test_unreviewed_share_and_error_rate_are_seeded() -> None:
    def run(seed: int) -> tuple[list[bytes], Any]:
        a = SimulatedAnalyst(
            [_inc("m", False, ("m1",))], unreviewed_share=0.3, error_rate=0.2, seed=seed
        )
        revs = [_rev(f"A{k:03d}", ["m1" if k % 4 == 0 else "n"]) for k in range(400)]
        return a.triage("2026-03-02", revs), a.stats

    out1, stats1 = run(1)
    out2, _ = run(1)
    assert out1 == out2
    assert run(2)[0] != out1
    assert 80 < stats1.unreviewed < 160
    assert 40 < stats1.wrong < 90
    assert stats1.reviewed == len(out1) == 400 - stats1.unreviewed
    with pytest.raises(ValueError):
        SimulatedAnalyst([], error_rate=1.5)


def test_offline_triage_reviews_each_day_before_the_next(tiny: Simulation) -> None:
    analyst = SimulatedAnalyst(tiny.incidents)
    days: list[str] = []
    real_triage = analyst.triage

    named: dict[str, set[str]] = {}  # what each alert named by the end of its first day

    def triage(day: str, revisions: list[dict[str, Any]]) -> list[bytes]:
        days.append(day)
        fresh = {r["alert_id"] for r in revisions} - set(named)
        for r in revisions:
            if r["alert_id"] in fresh:
                named.setdefault(r["alert_id"], set()).update(r["event_ids"])
        return real_triage(day, revisions)

    analyst.triage = triage  # type: ignore[method-assign]
    result = run_core(tiny, Settings(partitions=4, pseudonym_key="k"), analyst)
    assert days == sorted(days) and len(days) == len(set(days)) == TINY.days
    alert_ids = {a["alert_id"] for a in result.alerts}
    assert analyst.seen == alert_ids and alert_ids
    benign = sum(1 for v in analyst.verdicts.values() if v != "true_positive")
    assert result.meta["feedback_applied"] == benign
    # verdicts by the labels, on what the alert named when it was reviewed
    malicious = {e for i in tiny.incidents if not i.benign for e in i.event_ids}
    assert set(named) == alert_ids
    for alert_id, verdict in analyst.verdicts.items():
        assert (verdict == "true_positive") == bool(named[alert_id] & malicious)


def test_run_core_matches_run_offline_without_feedback(tiny: Simulation) -> None:
    s = Settings(partitions=4, pseudonym_key="k")
    direct = run_offline(reference_records(tiny), access_records(tiny), s)

    def stable(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in a.items() if k != "created_at"} for a in alerts]

    ours = run_core(tiny, s).alerts
    assert ours
    assert stable(ours) == stable(direct.alerts)


def test_simbank_enrichment_agrees_with_the_pipelines(tiny: Simulation) -> None:
    from pipeline.contract.decode import decode_access_event
    from pipeline.core.offline import load_reference

    state: ReferenceState = load_reference(reference_records(tiny))[0]
    truth = GroundTruth(tiny)
    for ev in tiny.events[::3]:
        ours = truth.enrich(Access.from_json(ev))
        event = decode_access_event(orjson.dumps(ev))
        theirs = state.enrich(event, event.occurred_at.timestamp())
        assert ours.assigned == theirs.assigned, ev
        assert ours.status == theirs.status, ev
        assert ours.staff_branch_id == theirs.staff_branch_id, ev
        assert ours.timezone == theirs.timezone, ev
        assert ours.sensitivity == theirs.sensitivity, ev
        assert ours.home_branch_id == theirs.home_branch_id, ev


def test_splits_are_disjoint_and_banks_reproducible() -> None:
    assert not set(SPLITS["tune"]) & set(SPLITS["report"])
    assert profile_seeds("tune", 3) == [1000, 1001, 1002]
    assert profile_seeds("report", 2, first=5998) == [5998, 5999]
    with pytest.raises(SplitError, match="leave the report range"):
        profile_seeds("report", 3, first=5998)
    with pytest.raises(SplitError, match="leave the tune range"):
        profile_seeds("tune", 2, first=5000)
    a = drawn_banks("report", 2, staff=60, days=10, start="2026-03-02")
    b = drawn_banks("report", 2, staff=60, days=10, start="2026-03-02")
    assert a == b
    assert [x.config.seed for x in a] == [105000, 105001]
    assert a[0].config.profile != a[1].config.profile
    assert a[0].config.profile.name == "random-5000"


def test_variants_from_the_flags() -> None:
    def ns(**kw: Any) -> argparse.Namespace:
        base = {"learn_days": 7, "compare_cold": False, "feedback": False}
        return argparse.Namespace(**{**base, "compare_feedback": False, **kw})

    assert variants(ns()) == [Variant(7, False)]
    assert [v.name for v in variants(ns(compare_cold=True, compare_feedback=True))] == [
        "pipeline learn 7d",
        "pipeline learn 7d +feedback",
        "pipeline cold start",
        "pipeline cold start +feedback",
    ]
    assert variants(ns(learn_days=0, compare_cold=True, feedback=True)) == [Variant(0, True)]


ALLOWED = {"pipeline.settings", "pipeline.core.offline", "pipeline.broker.clients"}


def test_simbank_imports_from_the_product_only_settings_offline_and_clients() -> None:
    bad: list[str] = []
    for path in sorted((ROOT / "simbank").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
                if node.module == "pipeline":
                    names = [f"pipeline.{a.name}" for a in node.names]
            for name in names:
                if (name == "pipeline" or name.startswith("pipeline.")) and name not in ALLOWED:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not bad, "\n".join(bad)
