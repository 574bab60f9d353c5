# mypy: disable-error-code="import-untyped"
"""Alerts map to OCSF Detection Findings that the shipped OCSF 1.8.0 schema accepts."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from pipeline.alerts.ocsf import OCSF_VERSION, OcsfMappingError, detection_finding
from pipeline.timeutil import parse_ts
from tests.unit.test_schemas import EcmaValidator

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "schemas" / "ocsf" / OCSF_VERSION / "detection_finding.schema.json"
ALERT_EXAMPLES = sorted((ROOT / "schemas" / "examples" / "alert" / "valid").glob("*.json"))
VERDICTS = (None, "true_positive", "false_positive", "benign_true_positive")
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
VALIDATOR = EcmaValidator(SCHEMA)

MODEL = {
    "name": "half_space_trees",
    "version": "2026.03.1",
    "score": 0.91,
    "threshold": 0.8,
    "top_features": [
        {"feature": "distinct_customers_1h", "value": 142.0, "baseline": 9.5, "contribution": 0.61},
        {"feature": "unassigned_ratio_1h", "value": 0.93, "baseline": 0.05, "contribution": 0.27},
    ],
}


def alert(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "alert_id": "al-0123456789abcdef01234567",
        "revision": 1,
        "schema_version": 1,
        "created_at": "2026-03-02T01:31:02.417Z",
        "first_event_at": "2026-03-02T00:58:10.000Z",
        "last_event_at": "2026-03-02T01:30:15.123Z",
        "staff_id": "S10234",
        "branch_id": "BR-SH-0012",
        "severity": "high",
        "risk_score": 82.5,
        "reasons": [
            {"code": "bulk_access", "summary": "142 unassigned customers in 1h", "weight": 40.0},
            {"code": "behaviour_anomaly", "summary": "Unusual hour", "weight": 20.0},
            {"code": "off_shift_access", "summary": "Outside shift", "weight": 8.0},
        ],
        "model": copy.deepcopy(MODEL),
        "event_ids": ["evt-1", "evt-2"],
        "event_count": 142,
        "customer_refs": ["cref-9f2b1c0e", "cref-77aa01d3"],
        "summary": "S10234 viewed 142 unassigned customers in 32 minutes",
    }
    base.update(changes)
    return base


def assert_valid(finding: dict[str, Any]) -> None:
    errors = sorted(VALIDATOR.iter_errors(finding), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{e.json_path}: {e.message[:300]}" for e in errors]
    assert_siblings(finding, SCHEMA)
    assert finding["type_uid"] == finding["class_uid"] * 100 + finding["activity_id"]


# --- the shipped schema -------------------------------------------------------------


def test_schema_is_draft_2020_12_for_the_version_the_mapping_claims() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["$id"].endswith(f"/ocsf/{OCSF_VERSION}/detection_finding.schema.json")
    assert f"OCSF {OCSF_VERSION} class detection_finding (class_uid 2004)" in SCHEMA["$comment"]
    assert "Apache License 2.0" in SCHEMA["$comment"]
    readme = (ROOT / "schemas" / "ocsf" / "README.md").read_text(encoding="utf-8")
    assert OCSF_VERSION in readme and "Apache License" in readme
    assert [m["const"] for m in SCHEMA["properties"]["class_uid"]["oneOf"]] == [2004]


def test_every_ref_in_the_schema_resolves() -> None:
    def refs(node: object) -> Iterator[str]:
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    names = {ref.removeprefix("#/$defs/") for ref in refs(SCHEMA)}
    assert names and names <= set(SCHEMA["$defs"])


def test_the_schema_rejects_what_ocsf_forbids() -> None:
    good = detection_finding(alert())
    assert_valid(good)
    broken = [
        {k: v for k, v in good.items() if k != "finding_info"},  # required
        {**good, "risk_score": 82.5},  # integer_t
        {**good, "severity_id": 7},  # not in the enum
        {**good, "activity": "Create"},  # not an attribute of the class
        {**good, "metadata": {**good["metadata"], "profiles": []}},  # actor needs host
        {**good, "verdict_id": 2},  # verdict_id needs the incident profile
        {**good, "finding_info": {**good["finding_info"], "uid": None}},
        {**good, "actor": {"user": {"type_id": 1}}},  # user needs account, name or uid
        {**good, "evidences": [{"name": "only a name"}]},  # evidences: at least one artifact
    ]
    for finding in broken:
        assert list(VALIDATOR.iter_errors(finding)), finding


# --- examples and constructed alerts ---------------------------------------------------


@pytest.mark.parametrize("path", ALERT_EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("verdict", VERDICTS)
@pytest.mark.parametrize("status", [None, "closed"])
def test_every_alert_example_maps_to_a_valid_finding(
    path: Path, verdict: str | None, status: str | None
) -> None:
    example = json.loads(path.read_text(encoding="utf-8"))
    if status is not None:
        example["status"] = status
    finding = detection_finding(example, verdict=verdict)
    assert_valid(finding)
    assert finding["finding_info"]["uid"] == example["alert_id"]
    assert finding["metadata"]["uid"] == f"{example['alert_id']}:{example['revision']}"
    assert finding["time"] == round(parse_ts(example["created_at"]) * 1000)
    assert finding["start_time"] == round(parse_ts(example["first_event_at"]) * 1000)
    assert finding["end_time"] == round(parse_ts(example["last_event_at"]) * 1000)
    assert finding["actor"]["user"]["uid"] == example["staff_id"]


@pytest.mark.parametrize(
    ("changes", "activity_id", "activity", "is_alert"),
    [
        ({"revision": 1}, 1, "Create", True),
        ({"revision": 2}, 2, "Update", True),
        ({"revision": 7}, 2, "Update", True),
        ({"revision": 8, "status": "closed"}, 3, "Close", False),
        ({"revision": 1, "status": "closed"}, 3, "Close", False),
        ({"revision": 2, "status": "open"}, 2, "Update", True),
    ],
)
def test_activity_follows_revision_and_closing(
    changes: dict[str, Any], activity_id: int, activity: str, is_alert: bool
) -> None:
    finding = detection_finding(alert(**changes))
    assert_valid(finding)
    assert (finding["activity_id"], finding["activity_name"]) == (activity_id, activity)
    assert finding["type_uid"] == 200400 + activity_id
    assert finding["type_name"] == f"Detection Finding: {activity}"
    assert finding["is_alert"] is is_alert
    assert finding["metadata"]["sequence"] == changes["revision"]
    assert finding["unmapped"]["schema_version"] == 1


def test_creation_time_on_the_first_revision_modification_time_on_later_ones() -> None:
    first = detection_finding(alert(revision=1))["finding_info"]
    later = detection_finding(alert(revision=2, created_at="2026-03-02T02:00:00Z"))["finding_info"]
    assert first["created_time"] == 1772415062417 and "modified_time" not in first
    assert later["modified_time"] == 1772416800000 and "created_time" not in later
    assert first["first_seen_time"] == later["first_seen_time"] == 1772413090000
    assert first["last_seen_time"] == 1772415015123


@pytest.mark.parametrize(
    ("verdict", "status_id", "status", "verdict_id", "verdict_name", "is_alert"),
    [
        (None, 1, "New", None, None, True),
        ("true_positive", 2, "In Progress", 2, "True Positive", True),
        ("false_positive", 3, "Suppressed", 1, "False Positive", False),
        ("benign_true_positive", 3, "Suppressed", 5, "Benign", False),
    ],
)
@pytest.mark.parametrize("closed", [False, True])
def test_verdicts_set_the_review_status(
    verdict: str | None,
    status_id: int,
    status: str,
    verdict_id: int | None,
    verdict_name: str | None,
    is_alert: bool,
    closed: bool,
) -> None:
    source = alert(revision=3, **({"status": "closed"} if closed else {}))
    finding = detection_finding(source, verdict=verdict)
    assert_valid(finding)
    assert (finding["status_id"], finding["status"]) == (status_id, status)
    assert finding.get("verdict_id") == verdict_id
    assert finding.get("verdict") == verdict_name
    assert finding.get("status_detail") == verdict
    assert finding["is_alert"] is (is_alert and not closed)
    profiles = finding["metadata"]["profiles"]
    assert profiles == (["host", "incident"] if verdict else ["host"])


def test_model_features_become_anomaly_analyses() -> None:
    finding = detection_finding(alert())
    assert_valid(finding)
    (analysis,) = finding["anomaly_analyses"]
    assert analysis["analysis_targets"] == [{"name": "S10234", "type": "User Account"}]
    observed = {
        a["observation_parameter"]: a["observations"][0]["value"] for a in analysis["anomalies"]
    }
    usual = {
        b["observation_parameter"]: b["observations"][0]["value"] for b in analysis["baselines"]
    }
    assert observed == {"distinct_customers_1h": "142", "unassigned_ratio_1h": "0.93"}
    assert usual == {"distinct_customers_1h": "9.5", "unassigned_ratio_1h": "0.05"}
    model_analytic = finding["finding_info"]["related_analytics"][-1]
    assert model_analytic == {
        "uid": "half_space_trees",
        "name": "half_space_trees",
        "version": "2026.03.1",
        "type_id": 4,
        "type": "Learning (ML/DL)",
    }
    assert finding["unmapped"]["model_score"] == 0.91
    assert finding["unmapped"]["model_threshold"] == 0.8


def test_without_a_model_there_is_no_anomaly_analysis() -> None:
    finding = detection_finding(alert(model=None))
    assert_valid(finding)
    assert "anomaly_analyses" not in finding
    assert "model_score" not in finding["unmapped"]
    assert all(a["uid"] != "half_space_trees" for a in finding["finding_info"]["related_analytics"])
    empty = detection_finding(alert(model={**MODEL, "top_features": []}))
    assert_valid(empty)
    assert "anomaly_analyses" not in empty


def test_reasons_become_types_analytics_and_evidences_heaviest_first() -> None:
    source = alert()
    source["reasons"].reverse()  # the mapping orders by weight, not by position
    finding = detection_finding(source)
    info = finding["finding_info"]
    assert info["types"] == ["bulk_access", "behaviour_anomaly", "off_shift_access"]
    assert info["title"].startswith("Many distinct unassigned customers")  # catalogue title
    assert info["analytic"]["uid"] == "bulk_access" and info["analytic"]["type_id"] == 2
    kinds = {a["uid"]: a["type_id"] for a in info["related_analytics"]}
    assert kinds == {"behaviour_anomaly": 4, "off_shift_access": 2, "half_space_trees": 4}
    names = [e["name"] for e in finding["evidences"]]
    assert names == ["bulk_access", "behaviour_anomaly", "off_shift_access", "customers"]
    assert finding["evidences"][0]["data"] == {
        "code": "bulk_access",
        "summary": "142 unassigned customers in 1h",
        "weight": 40.0,
    }
    refs = [r["uid"] for r in finding["evidences"][-1]["resources"]]
    assert refs == [r["uid"] for r in finding["resources"]] == source["customer_refs"]


def test_unknown_reason_codes_and_no_reasons_still_map() -> None:
    odd = detection_finding(alert(reasons=[{"code": "new_rule", "summary": "", "weight": 1}]))
    assert_valid(odd)
    assert odd["finding_info"]["title"] == "new_rule"
    assert odd["finding_info"]["analytic"]["type_id"] == 0
    bare = detection_finding(
        alert(reasons=[], model=None, customer_refs=[], summary=None, severity="low")
    )
    assert_valid(bare)
    assert bare["message"] == bare["finding_info"]["title"] == "Suspicious access to customer data"
    assert (
        "evidences" not in bare
        and "resources" not in bare
        and "analytic" not in bare["finding_info"]
    )


@pytest.mark.parametrize(
    ("severity", "severity_id", "risk_level_id"),
    [("low", 2, 1), ("medium", 3, 2), ("high", 4, 3), ("critical", 5, 4)],
)
def test_severity_and_risk_level(severity: str, severity_id: int, risk_level_id: int) -> None:
    finding = detection_finding(alert(severity=severity, risk_score=49.5))
    assert_valid(finding)
    assert finding["severity_id"] == severity_id
    assert finding["risk_level_id"] == risk_level_id
    assert finding["risk_score"] == 50 and finding["unmapped"]["risk_score"] == 49.5


def test_times_are_exact_milliseconds_whatever_the_offset() -> None:
    finding = detection_finding(
        alert(
            created_at="2026-03-02T09:31:02.417999+08:00",
            first_event_at="2026-03-02T00:58:10.0009Z",
            last_event_at="2026-03-01T20:30:15.123-05:00",
        )
    )
    assert_valid(finding)
    assert finding["time"] == 1772415062417  # truncated, not rounded
    assert finding["timezone_offset"] == 480
    assert finding["start_time"] == 1772413090000
    assert finding["end_time"] == 1772415015123
    assert finding["duration"] == 1772415015123 - 1772413090000


def test_staff_role_and_unknown_fields() -> None:
    finding = detection_finding(alert(staff_role="teller", future_field={"x": 1}))
    assert_valid(finding)
    user = finding["actor"]["user"]
    assert user["ldap_person"] == {"office_location": "BR-SH-0012", "job_title": "teller"}
    assert finding["unmapped"]["future_field"] == {"x": 1}
    assert finding["observables"] == [
        {"name": "actor.user.uid", "type_id": 31, "type": "User Object: uid", "value": "S10234"}
    ]


def test_deterministic_and_leaves_the_alert_alone() -> None:
    source = alert(revision=4)
    before = copy.deepcopy(source)
    first = orjson.dumps(detection_finding(source, verdict="true_positive", product_version="9"))
    second = orjson.dumps(
        detection_finding(copy.deepcopy(source), verdict="true_positive", product_version="9")
    )
    assert first == second
    assert source == before
    assert orjson.loads(first)["metadata"]["product"] == {
        "name": "access-watch",
        "vendor_name": "access-watch",
        "version": "9",
    }


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"alert_id": None}, "alert_id"),
        ({"revision": 0}, "revision"),
        ({"revision": True}, "revision"),
        ({"severity": "severe"}, "severity"),
        ({"created_at": "2026-03-02 01:31"}, "created_at"),
        ({"risk_score": "high"}, "risk_score"),
        ({"reasons": [{"code": "x", "summary": "y"}]}, "reasons[0].weight"),
        ({"model": {**MODEL, "top_features": [{"feature": "f"}]}}, "top_features[0].value"),
        ({"event_ids": [""]}, "event_ids[0]"),
        ({"status": "pending"}, "status"),
    ],
)
def test_a_malformed_alert_is_refused_naming_the_field(
    changes: dict[str, Any], needle: str
) -> None:
    with pytest.raises(OcsfMappingError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        detection_finding(alert(**changes))


def test_missing_field_and_unknown_verdict_are_refused() -> None:
    source = alert()
    del source["last_event_at"]
    with pytest.raises(OcsfMappingError, match="last_event_at"):
        detection_finding(source)
    with pytest.raises(OcsfMappingError, match="verdict"):
        detection_finding(alert(), verdict="maybe")


# --- OCSF conventions JSON Schema cannot express -----------------------------------------


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].removeprefix("#/$defs/")]
    return node


def assert_siblings(
    value: object, node: dict[str, Any], schema: dict[str, Any] | None = None
) -> None:
    """Every ``<x>_id`` with a defined (non-Other) value has its sibling ``<x>`` equal to the
    enum caption, wherever both are present (OCSF's sibling convention)."""
    schema = schema if schema is not None else node
    node = _resolve(schema, node)
    if isinstance(value, list) and "items" in node:
        for item in value:
            assert_siblings(item, node["items"], schema)
        return
    if not isinstance(value, dict):
        return
    props = node.get("properties", {})
    for key, item in value.items():
        if key not in props:
            continue  # open object (unmapped, evidences.data)
        prop = _resolve(schema, props[key])
        captions = {m["const"]: m["title"] for m in prop.get("oneOf", []) if "const" in m}
        stem = key.removesuffix("_id").removesuffix("_uid")
        siblings = [s for s in (stem, f"{stem}_name") if s != key and s in value]
        if captions and stem != key and item != 99:
            for sibling in siblings:
                assert value[sibling] == captions[item], (key, item, value[sibling])
        assert_siblings(item, prop, schema)


@pytest.mark.parametrize(
    ("path", "wrong"),
    [
        (("severity",), "Medium"),
        (("activity_name",), "Update"),
        (("class_name",), "Detection"),
        (("type_name",), "Detection Finding: Close"),
        (("status",), "Resolved"),
        (("actor", "user", "type"), "Admin"),
        (("observables", 0, "type"), "User Name"),
    ],
)
def test_the_sibling_check_catches_a_wrong_caption(path: tuple[Any, ...], wrong: str) -> None:
    finding = detection_finding(alert())
    target: Any = finding
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = wrong
    with pytest.raises(AssertionError):
        assert_siblings(finding, SCHEMA)
