"""One alert revision -> one OCSF Detection Finding (class_uid 2004). Pure, no I/O.

:func:`detection_finding` maps an Alert (the JSON object of
``schemas/alert.schema.json``, as it travels on ``{prefix}alerts``) to the
finding the worker writes to ``{prefix}alerts.ocsf`` under key ``alert_id``.
The result validates against ``schemas/ocsf/1.8.0/detection_finding.schema.json``
(``tests/unit/test_ocsf.py``); the same alert always gives the same finding,
so a replay re-emits identical bytes.

Mapping (OCSF 1.8.0; "rev" is the alert's ``revision``):

======================================  =========================================================
OCSF attribute                          from the alert
======================================  =========================================================
``class_uid`` / ``class_name``          2004 / "Detection Finding"
``category_uid`` / ``category_name``    2 / "Findings"
``activity_id`` / ``activity_name``     3 Close when ``status`` is ``"closed"``; else 1 Create
                                        for rev 1, 2 Update for later revisions
``type_uid`` / ``type_name``            200400 + activity_id / "Detection Finding: <activity>"
``time``                                ``created_at`` (epoch ms): when this revision was made
``timezone_offset``                     offset of ``created_at``, in minutes
``start_time`` / ``end_time``           ``first_event_at`` / ``last_event_at`` (epoch ms)
``duration``                            ``end_time - start_time`` (ms)
``count``                               ``event_count``
``message``                             ``summary``, else the reasons' summaries joined by "; "
``severity_id`` / ``severity``          low 2 Low, medium 3 Medium, high 4 High, critical 5 Critical
``risk_score``                          ``risk_score`` rounded half up (OCSF: an integer)
``risk_level_id`` / ``risk_level``      low 1 Low, medium 2 Medium, high 3 High, critical 4 Critical
``status_id`` / ``status``              no verdict 1 New (also once closed: nobody reviewed it);
                                        true_positive 2 In Progress; false_positive and
                                        benign_true_positive 3 Suppressed (see below)
``status_detail``                       the verdict code, when there is one
``verdict_id`` / ``verdict``            incident profile, only with a verdict: true_positive 2
                                        True Positive, false_positive 1 False Positive,
                                        benign_true_positive 5 Benign
``is_alert``                            true, except when closed or suppressed by a verdict
``finding_info.uid``                    ``alert_id``
``finding_info.title``                  catalogue title of the heaviest reason (its summary for a
                                        code outside the catalogue; a fixed title with no reason)
``finding_info.desc``                   as ``message``
``finding_info.types``                  the reason codes, heaviest first
``finding_info.created_time``           ``created_at``, on rev 1 only (later revisions do not
                                        carry the first one's time)
``finding_info.modified_time``          ``created_at``, on later revisions
``finding_info.first_seen_time``        ``first_event_at``
``finding_info.last_seen_time``         ``last_event_at``
``finding_info.related_events``         one ``{uid: event_id}`` per ``event_ids`` entry
``finding_info.related_events_count``   ``event_count`` (may exceed the listed ids)
``finding_info.analytic``               the heaviest reason: uid/name = code, desc = catalogue
                                        title, type_id by family (policy 1 Rule, soft and
                                        volume 2 Behavioral, model 4 Learning (ML/DL),
                                        unknown code 0 Unknown)
``finding_info.related_analytics``      the other reasons the same way, then the model (name,
                                        version, 4 Learning (ML/DL)) when there is one
``actor.user``                          uid = ``staff_id``, type_id 1 User,
                                        ``ldap_person.office_location`` = ``branch_id``,
                                        ``ldap_person.job_title`` = ``staff_role`` (if present);
                                        ``actor`` is the host profile's attribute
``observables``                         ``actor.user.uid`` (type_id 31 "User Object: uid")
``resources``                           one per ``customer_refs`` entry: uid = the ref, type
                                        "Customer", role_id 1 Target
``evidences``                           one per reason: name = code, data = {code, summary,
                                        weight}, user = the staff member; then, when the alert
                                        names customers, one with name "customers" and the
                                        same resources
``anomaly_analyses``                    with a model and top features: one analysis, target the
                                        staff member ("User Account"); per feature an anomaly
                                        (observed value) and a baseline (the usual value)
``metadata.product``                    name and vendor_name "access-watch", version =
                                        ``product_version``
``metadata.version``                    :data:`OCSF_VERSION`
``metadata.uid``                        ``"<alert_id>:<revision>"``: one id per revision
``metadata.correlation_uid``            ``alert_id`` (all revisions of one incident)
``metadata.sequence``                   ``revision``: a consumer keeps the highest per uid
``metadata.profiles``                   ["host"], plus "incident" with a verdict
``unmapped``                            ``schema_version``, the exact ``risk_score``, the model's
                                        ``score`` and ``threshold``, and any alert field this
                                        mapping does not know (a later optional field)
======================================  =========================================================

Verdicts and finding status. OCSF's finding statuses are New, In Progress,
Suppressed ("reviewed, determined to be benign or a false positive and is now
suppressed"), Resolved ("reviewed, remediated"), Archived and Deleted. A
``false_positive`` or ``benign_true_positive`` verdict is exactly Suppressed's
case; the two stay apart in ``verdict_id`` (False Positive / Benign) and
``status_detail``. A ``true_positive`` verdict confirms misuse but remediates
nothing -- an insider case goes on to HR or an investigation the pipeline does
not see -- so it is In Progress, not Resolved. The pipeline closing an
incident (no new evidence) is a producer event, carried by activity Close; it
does not change the review status, so a closed, unreviewed finding stays New.

Customer references are copied as the alert has them: pseudonyms (keyed hash)
unless the deployment set ``PIPELINE_RAW_CUSTOMER_IDS``; this module never sees
raw ids otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

from pipeline.contract.records import VERDICTS
from pipeline.detect.catalogue import CATALOGUE
from pipeline.timeutil import TimestampError, parse_ts

OCSF_VERSION: Final = "1.8.0"
PRODUCT_NAME: Final = "access-watch"
VENDOR_NAME: Final = "access-watch"

CLASS_UID: Final = 2004
CATEGORY_UID: Final = 2
ACTIVITY_CREATE, ACTIVITY_UPDATE, ACTIVITY_CLOSE = 1, 2, 3
_ACTIVITIES: Final = {ACTIVITY_CREATE: "Create", ACTIVITY_UPDATE: "Update", ACTIVITY_CLOSE: "Close"}
# alert severity -> (severity_id, severity), (risk_level_id, risk_level)
_SEVERITY: Final = {
    "low": ((2, "Low"), (1, "Low")),
    "medium": ((3, "Medium"), (2, "Medium")),
    "high": ((4, "High"), (3, "High")),
    "critical": ((5, "Critical"), (4, "Critical")),
}
STATUS_NEW: Final = (1, "New")
# verdict -> (status_id, status), (verdict_id, verdict)
_VERDICT: Final = {
    "true_positive": ((2, "In Progress"), (2, "True Positive")),
    "false_positive": ((3, "Suppressed"), (1, "False Positive")),
    "benign_true_positive": ((3, "Suppressed"), (5, "Benign")),
}
_SUPPRESSING: Final = frozenset({"false_positive", "benign_true_positive"})
# catalogue family -> analytic (type_id, type)
_ANALYTIC_TYPE: Final = {
    "policy": (1, "Rule"),
    "soft": (2, "Behavioral"),
    "volume": (2, "Behavioral"),
    "model": (4, "Learning (ML/DL)"),
}
_UNKNOWN_ANALYTIC: Final = (0, "Unknown")
USER_UID_OBSERVABLE: Final = (31, "User Object: uid")
DEFAULT_TITLE: Final = "Suspicious access to customer data"
# Alert fields that have a home in the finding (everything else goes to unmapped).
_MAPPED: Final = frozenset(
    {
        "alert_id",
        "revision",
        "schema_version",
        "created_at",
        "first_event_at",
        "last_event_at",
        "staff_id",
        "branch_id",
        "severity",
        "risk_score",
        "reasons",
        "model",
        "event_ids",
        "event_count",
        "customer_refs",
        "summary",
        "status",
        "staff_role",
    }
)
_UNIX_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _package_version() -> str:
    try:
        return version("pipeline")
    except PackageNotFoundError:
        return "0+unknown"


PRODUCT_VERSION: Final = _package_version()


class OcsfMappingError(ValueError):
    """The alert lacks a field the finding needs, or has one of the wrong type."""


def detection_finding(
    alert: Mapping[str, Any],
    *,
    verdict: str | None = None,
    product_version: str = PRODUCT_VERSION,
) -> dict[str, Any]:
    """The OCSF Detection Finding for one alert revision (see the module's mapping table).

    ``verdict`` is the analyst's latest verdict on the alert (``true_positive``,
    ``false_positive``, ``benign_true_positive``) or None. Raises
    :class:`OcsfMappingError` naming the field when ``alert`` is not an Alert.

    >>> f = detection_finding({
    ...     "alert_id": "al-1", "revision": 1, "schema_version": 1,
    ...     "created_at": "2026-03-02T01:31:02.417Z",
    ...     "first_event_at": "2026-03-02T00:58:10Z", "last_event_at": "2026-03-02T01:30:15Z",
    ...     "staff_id": "S1", "branch_id": "B1", "severity": "high", "risk_score": 82.5,
    ...     "reasons": [], "model": None, "event_ids": ["e1"], "event_count": 1,
    ...     "customer_refs": []})
    >>> f["class_uid"], f["type_uid"], f["activity_name"], f["status"], f["risk_score"]
    (2004, 200401, 'Create', 'New', 83)
    >>> f["finding_info"]["uid"], f["time"], f["metadata"]["uid"]
    ('al-1', 1772415062417, 'al-1:1')
    """
    alert_id = _text(alert, "alert_id")
    revision = _integer(alert, "revision", minimum=1)
    staff_id = _text(alert, "staff_id")
    branch_id = _text(alert, "branch_id")
    severity = _text(alert, "severity")
    if severity not in _SEVERITY:
        raise OcsfMappingError(f"alert field 'severity' has unknown value {severity!r}")
    (severity_id, severity_name), (risk_level_id, risk_level) = _SEVERITY[severity]
    risk = _number(alert, "risk_score")
    created_text = _text(alert, "created_at")
    created = _epoch_ms("created_at", created_text)
    start = _epoch_ms("first_event_at", _text(alert, "first_event_at"))
    end = _epoch_ms("last_event_at", _text(alert, "last_event_at"))
    event_count = _integer(alert, "event_count", minimum=1)
    event_ids = [_str_item("event_ids", i, v) for i, v in enumerate(_list(alert, "event_ids"))]
    customer_refs = [
        _str_item("customer_refs", i, v) for i, v in enumerate(_list(alert, "customer_refs"))
    ]
    reasons = _reasons(alert)
    model = _model(alert)
    summary = _optional_text(alert, "summary")
    staff_role = _optional_text(alert, "staff_role")
    status = alert.get("status", "open")
    if status not in ("open", "closed"):
        raise OcsfMappingError(f"alert field 'status' must be 'open' or 'closed', got {status!r}")
    if verdict is not None and verdict not in VERDICTS:
        raise OcsfMappingError(f"unknown verdict {verdict!r}; expected one of {sorted(VERDICTS)}")

    if status == "closed":
        activity_id = ACTIVITY_CLOSE
    else:
        activity_id = ACTIVITY_CREATE if revision == 1 else ACTIVITY_UPDATE
    activity = _ACTIVITIES[activity_id]
    status_id, status_name = _VERDICT[verdict][0] if verdict else STATUS_NEW
    ranked = sorted(reasons, key=lambda r: -r["weight"])  # stable: ties keep alert order
    message = summary or "; ".join(r["summary"] for r in ranked if r["summary"]) or DEFAULT_TITLE
    user = _user(staff_id, branch_id, staff_role)
    resources = [
        {"uid": ref, "type": "Customer", "role_id": 1, "role": "Target"} for ref in customer_refs
    ]

    finding_info: dict[str, Any] = {
        "uid": alert_id,
        "title": _title(ranked),
        "desc": message,
        "types": list(dict.fromkeys(r["code"] for r in ranked)),
        "first_seen_time": start,
        "last_seen_time": end,
        "related_events": [{"uid": event_id} for event_id in event_ids],
        "related_events_count": event_count,
    }
    if revision == 1:
        finding_info["created_time"] = created
    else:
        finding_info["modified_time"] = created
    analytics = [_analytic(r["code"]) for r in ranked]
    if model is not None:
        analytics.append(
            {
                "uid": model["name"],
                "name": model["name"],
                "version": model["version"],
                "type_id": 4,
                "type": "Learning (ML/DL)",
            }
        )
    if analytics:
        finding_info["analytic"] = analytics[0]
    if len(analytics) > 1:
        finding_info["related_analytics"] = analytics[1:]

    evidences: list[dict[str, Any]] = [
        {
            "name": r["code"],
            "data": {"code": r["code"], "summary": r["summary"], "weight": r["weight"]},
            "user": {"uid": staff_id},
        }
        for r in ranked
    ]
    if resources:
        evidences.append({"name": "customers", "resources": resources})

    profiles = ["host"]
    finding: dict[str, Any] = {
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": CLASS_UID * 100 + activity_id,
        "type_name": f"Detection Finding: {activity}",
        "time": created,
        "timezone_offset": _offset_minutes(created_text),
        "start_time": start,
        "end_time": end,
        "duration": end - start,
        "count": event_count,
        "message": message,
        "severity_id": severity_id,
        "severity": severity_name,
        "risk_score": math.floor(risk + 0.5),
        "risk_level_id": risk_level_id,
        "risk_level": risk_level,
        "status_id": status_id,
        "status": status_name,
        "is_alert": status != "closed" and verdict not in _SUPPRESSING,
        "finding_info": finding_info,
        "actor": {"user": user},
        "observables": [
            {
                "name": "actor.user.uid",
                "type_id": USER_UID_OBSERVABLE[0],
                "type": USER_UID_OBSERVABLE[1],
                "value": staff_id,
            }
        ],
    }
    if verdict is not None:
        (verdict_id, verdict_name) = _VERDICT[verdict][1]
        finding["status_detail"] = verdict
        finding["verdict_id"] = verdict_id
        finding["verdict"] = verdict_name
        profiles.append("incident")
    if evidences:
        finding["evidences"] = evidences
    if resources:
        finding["resources"] = resources
    analyses = _anomaly_analyses(staff_id, model)
    if analyses:
        finding["anomaly_analyses"] = analyses
    finding["metadata"] = {
        "version": OCSF_VERSION,
        "product": {"name": PRODUCT_NAME, "vendor_name": VENDOR_NAME, "version": product_version},
        "uid": f"{alert_id}:{revision}",
        "correlation_uid": alert_id,
        "sequence": revision,
        "profiles": profiles,
    }
    finding["unmapped"] = _unmapped(alert, risk, model)
    return finding


# --- pieces ----------------------------------------------------------------------------


def _user(staff_id: str, branch_id: str, staff_role: str | None) -> dict[str, Any]:
    person: dict[str, Any] = {"office_location": branch_id}
    if staff_role:
        person["job_title"] = staff_role
    return {"uid": staff_id, "type_id": 1, "type": "User", "ldap_person": person}


def _title(ranked: Sequence[Mapping[str, Any]]) -> str:
    if not ranked:
        return DEFAULT_TITLE
    top = ranked[0]
    spec = CATALOGUE.get(top["code"])
    title: str = spec.title if spec is not None else (top["summary"] or top["code"])
    return title


def _analytic(code: str) -> dict[str, Any]:
    spec = CATALOGUE.get(code)
    type_id, type_name = (
        _ANALYTIC_TYPE.get(spec.family, _UNKNOWN_ANALYTIC) if spec else _UNKNOWN_ANALYTIC
    )
    analytic: dict[str, Any] = {"uid": code, "name": code, "type_id": type_id, "type": type_name}
    if spec is not None:
        analytic["desc"] = spec.title
    return analytic


def _anomaly_analyses(staff_id: str, model: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if model is None or not model["top_features"]:
        return []
    anomalies = []
    baselines = []
    for f in model["top_features"]:
        value, baseline = _num_text(f["value"]), _num_text(f["baseline"])
        anomalies.append(
            {
                "observation_parameter": f["feature"],
                "observation_type": "Observed value",
                "observations": [{"value": value}],
                "observed_pattern": (
                    f"{value} against a usual {baseline} "
                    f"(share of the model score {_num_text(f['contribution'])})"
                ),
            }
        )
        baselines.append(
            {
                "observation_parameter": f["feature"],
                "observation_type": "Baseline",
                "observations": [{"value": baseline}],
            }
        )
    return [
        {
            "analysis_targets": [{"name": staff_id, "type": "User Account"}],
            "anomalies": anomalies,
            "baselines": baselines,
        }
    ]


def _unmapped(
    alert: Mapping[str, Any], risk: float, model: Mapping[str, Any] | None
) -> dict[str, Any]:
    out: dict[str, Any] = {"schema_version": alert.get("schema_version"), "risk_score": risk}
    if model is not None:
        out["model_score"] = model["score"]
        out["model_threshold"] = model["threshold"]
    for key in sorted(alert):
        if key not in _MAPPED:
            out[key] = alert[key]
    return out


def _num_text(value: float) -> str:
    """A number as OCSF observation text: ``142`` for 142.0, else the shortest repr."""
    as_float = float(value)
    return str(int(as_float)) if as_float.is_integer() else repr(as_float)


def _offset_minutes(text: str) -> int:
    if text[-1] in "Zz":
        return 0
    sign = -1 if text[-6] == "-" else 1
    return sign * (int(text[-5:-3]) * 60 + int(text[-2:]))


def _epoch_ms(name: str, text: str) -> int:
    """RFC 3339 -> integer epoch milliseconds, exactly (sub-millisecond digits truncated)."""
    try:
        parse_ts(text)  # the contract's format check
    except TimestampError as exc:
        raise OcsfMappingError(f"alert field {name!r}: {exc}") from None
    norm = text.replace("z", "Z").replace("t", "T").replace(" ", "T")
    moment = datetime.fromisoformat(norm[:-1] + "+00:00" if norm.endswith("Z") else norm)
    return (moment - _UNIX_EPOCH) // timedelta(milliseconds=1)


# --- field access with clear errors -------------------------------------------------------


def _field(alert: Mapping[str, Any], name: str) -> Any:
    if name not in alert:
        raise OcsfMappingError(f"alert field {name!r} is missing")
    return alert[name]


def _text(alert: Mapping[str, Any], name: str) -> str:
    value = _field(alert, name)
    if not isinstance(value, str) or not value:
        raise OcsfMappingError(f"alert field {name!r} must be a non-empty string, got {value!r}")
    return value


def _optional_text(alert: Mapping[str, Any], name: str) -> str | None:
    value = alert.get(name)
    if value is not None and not isinstance(value, str):
        raise OcsfMappingError(f"alert field {name!r} must be a string, got {value!r}")
    return value or None


def _integer(alert: Mapping[str, Any], name: str, minimum: int) -> int:
    value = _field(alert, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OcsfMappingError(f"alert field {name!r} must be an integer >= {minimum}")
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(alert: Mapping[str, Any], name: str) -> float:
    value = _field(alert, name)
    if not _is_number(value):
        raise OcsfMappingError(f"alert field {name!r} must be a number, got {value!r}")
    return float(value)


def _list(alert: Mapping[str, Any], name: str) -> list[Any]:
    value = _field(alert, name)
    if not isinstance(value, list):
        raise OcsfMappingError(f"alert field {name!r} must be a list")
    return value


def _str_item(name: str, index: int, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise OcsfMappingError(f"alert field {name}[{index}] must be a non-empty string")
    return value


def _reasons(alert: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for i, item in enumerate(_list(alert, "reasons")):
        if not isinstance(item, Mapping):
            raise OcsfMappingError(f"alert field reasons[{i}] must be an object")
        code, summary, weight = item.get("code"), item.get("summary"), item.get("weight")
        if not isinstance(code, str) or not code:
            raise OcsfMappingError(f"alert field reasons[{i}].code must be a non-empty string")
        if not isinstance(summary, str):
            raise OcsfMappingError(f"alert field reasons[{i}].summary must be a string")
        if not _is_number(weight):
            raise OcsfMappingError(f"alert field reasons[{i}].weight must be a number")
        out.append({"code": code, "summary": summary, "weight": weight})
    return out


def _model(alert: Mapping[str, Any]) -> dict[str, Any] | None:
    model = _field(alert, "model")
    if model is None:
        return None
    if not isinstance(model, Mapping):
        raise OcsfMappingError("alert field 'model' must be an object or null")
    for name in ("name", "version"):
        if not isinstance(model.get(name), str):
            raise OcsfMappingError(f"alert field model.{name} must be a string")
    for name in ("score", "threshold"):
        if not _is_number(model.get(name)):
            raise OcsfMappingError(f"alert field model.{name} must be a number")
    features = model.get("top_features")
    if not isinstance(features, list):
        raise OcsfMappingError("alert field model.top_features must be a list")
    for i, f in enumerate(features):
        if not isinstance(f, Mapping) or not isinstance(f.get("feature"), str):
            raise OcsfMappingError(f"alert field model.top_features[{i}].feature must be a string")
        for name in ("value", "baseline", "contribution"):
            if not _is_number(f.get(name)):
                raise OcsfMappingError(
                    f"alert field model.top_features[{i}].{name} must be a number"
                )
    return dict(model)
