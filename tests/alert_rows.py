"""Synthetic alerts written to Postgres the way the pipeline's alert sink writes them.

For the console's tests, its benchmark and its screenshots: contract-shaped
Alert payloads (``schemas/alert.schema.json``) with their revisions, the
access events they cover (``alert_evidence``, customers pseudonymized with
the pipeline's keyed hash) and the pseudonym -> id rows of
``customer_reveal``. Deterministic for a seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from pipeline.alerts.ids import Pseudonymizer
from pipeline.detect.behaviour import FEATURES
from pipeline.detect.catalogue import CATALOGUE
from pipeline.timeutil import format_ts

SEVERITIES = ("low", "medium", "high", "critical")
ROLES = ("customer_manager", "teller", "loan_officer", "operations", "branch_manager")
ACTIONS = (
    "view_profile",
    "view_balance",
    "view_transactions",
    "export_statement",
    "print_statement",
    "credit_report_query",
    "view_id_document",
)
CHANNELS = ("branch_terminal", "crm_web", "mobile_crm")


@dataclass
class SyntheticAlert:
    """One alert's revisions (payloads, lowest first), its evidence and its customers."""

    revisions: list[dict[str, Any]]
    staff_role: str
    evidence: list[dict[str, Any]] = field(default_factory=list)
    customers: dict[str, str] = field(default_factory=dict)  # pseudonym -> raw id

    @property
    def latest(self) -> dict[str, Any]:
        return self.revisions[-1]


def _severity(risk: float) -> str:
    return "critical" if risk >= 80 else "high" if risk >= 55 else "medium" if risk >= 30 else "low"


def make_alert(
    i: int,
    rng: random.Random,
    start: datetime,
    key: str = "test-key",
    revisions: int = 2,
    events: int = 12,
    staff: int = 400,
    branches: int = 20,
    severity: str | None = None,
) -> SyntheticAlert:
    """Alert number ``i``: ``revisions`` payloads of a growing incident."""
    pseudo = Pseudonymizer(key)
    staff_no = rng.randrange(staff)
    staff_id = f"S{10000 + staff_no}"
    branch_id = f"BR-{staff_no % branches:03d}"
    role = ROLES[staff_no % len(ROLES)]
    first = start + timedelta(minutes=rng.randrange(60 * 24 * 30))
    codes = rng.sample(sorted(CATALOGUE), k=rng.randint(1, 3))
    customers: dict[str, str] = {}
    evidence: list[dict[str, Any]] = []
    for n in range(events):
        cust = f"C{rng.randrange(10**7):07d}"
        ref = pseudo.ref(cust)
        customers[ref] = cust
        evidence.append(
            {
                "event_id": f"ev-{i}-{n}",
                "occurred_at": first + timedelta(minutes=3 * n),
                "staff_id": staff_id,
                "action": rng.choice(ACTIONS),
                "channel": rng.choice(CHANNELS),
                "branch_id": branch_id,
                "customer_ref": ref,
                "record_count": rng.choice((1, 1, 1, 5, 40)),
                "outcome": "denied" if rng.random() < 0.05 else "success",
                "reason_codes": [rng.choice(codes)],
                "first_revision": 1 + n * revisions // events,
            }
        )
    base_risk = rng.uniform(10, 95)
    payloads: list[dict[str, Any]] = []
    for rev in range(1, revisions + 1):
        upto = max(1, events * rev // revisions)
        risk = min(100.0, round(base_risk * (0.7 + 0.3 * rev / revisions), 1))
        sev = severity if severity is not None and rev == revisions else _severity(risk)
        covered = evidence[:upto]
        model = None
        if "behaviour_anomaly" in codes or rng.random() < 0.4:
            feats = rng.sample(FEATURES, k=3)
            model = {
                "name": "half_space_trees",
                "version": "1",
                "score": round(rng.uniform(0.7, 0.99), 3),
                "threshold": 0.65,
                "top_features": [
                    {
                        "feature": f,
                        "value": float(rng.randint(8, 120)),
                        "baseline": round(rng.uniform(0.5, 8), 2),
                        "own_baseline": round(rng.uniform(0.5, 6), 2),
                        "contribution": round(c, 3),
                    }
                    for f, c in zip(feats, (0.55, 0.3, 0.15), strict=True)
                ],
            }
        payloads.append(
            {
                "alert_id": f"al-{i:012d}",
                "revision": rev,
                "schema_version": 1,
                "created_at": format_ts(
                    (covered[-1]["occurred_at"] + timedelta(seconds=5)).timestamp()
                ),
                "first_event_at": format_ts(first.timestamp()),
                "last_event_at": format_ts(covered[-1]["occurred_at"].timestamp()),
                "staff_id": staff_id,
                "branch_id": branch_id,
                "staff_role": role,
                "severity": sev,
                "risk_score": risk,
                "reasons": [
                    {
                        "code": c,
                        "summary": CATALOGUE[c].title,
                        "weight": round(risk / len(codes), 1),
                    }
                    for c in codes
                ],
                "model": model,
                "event_ids": [e["event_id"] for e in covered],
                "event_count": upto,
                "customer_refs": sorted({e["customer_ref"] for e in covered}),
                "summary": f"{staff_id}: {', '.join(codes)} on {upto} accesses",
            }
        )
    return SyntheticAlert(payloads, role, evidence, customers)


def make_alerts(
    n: int, seed: int = 7, start: datetime | None = None, **kwargs: Any
) -> list[SyntheticAlert]:
    rng = random.Random(seed)
    t0 = start or datetime(2026, 3, 1, tzinfo=UTC)
    return [make_alert(i, rng, t0, **kwargs) for i in range(n)]


UPSERT = """
INSERT INTO alerts (alert_id, revision, staff_id, branch_id, severity, risk_score,
                    first_event_at, last_event_at, event_ids, event_count, reason_codes,
                    payload, created_at, staff_role)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14)
ON CONFLICT (alert_id) DO UPDATE SET
    revision = EXCLUDED.revision, severity = EXCLUDED.severity,
    risk_score = EXCLUDED.risk_score, last_event_at = EXCLUDED.last_event_at,
    event_ids = EXCLUDED.event_ids, event_count = EXCLUDED.event_count,
    reason_codes = EXCLUDED.reason_codes, payload = EXCLUDED.payload,
    created_at = EXCLUDED.created_at, staff_role = EXCLUDED.staff_role, updated_at = now()
WHERE alerts.revision < EXCLUDED.revision
"""


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def alert_args(p: dict[str, Any]) -> tuple[Any, ...]:
    return (
        p["alert_id"],
        p["revision"],
        p["staff_id"],
        p["branch_id"],
        p["severity"],
        float(p["risk_score"]),
        _ts(p["first_event_at"]),
        _ts(p["last_event_at"]),
        list(p["event_ids"]),
        p["event_count"],
        [r["code"] for r in p["reasons"]],
        orjson.dumps(p).decode(),
        _ts(p["created_at"]),
        p.get("staff_role"),
    )


def revision_args(p: dict[str, Any]) -> tuple[Any, ...]:
    return (
        p["alert_id"],
        p["revision"],
        p["severity"],
        float(p["risk_score"]),
        p.get("status", "open"),
        p["event_count"],
        [r["code"] for r in p["reasons"]],
        orjson.dumps(p).decode(),
        _ts(p["created_at"]),
    )


async def write_revision(conn: asyncpg.Connection, payload: dict[str, Any]) -> None:
    """Store one revision as the sink does: every revision kept, the highest in alerts."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO alert_revisions (alert_id, revision, severity, risk_score, status,"
            " event_count, reason_codes, payload, created_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9) ON CONFLICT DO NOTHING",
            *revision_args(payload),
        )
        await conn.execute(UPSERT, *alert_args(payload))


async def write_alerts(
    conn: asyncpg.Connection, alerts: Sequence[SyntheticAlert], bulk: bool = False
) -> None:
    """Every revision, evidence row and reveal row of ``alerts``. ``bulk`` uses COPY
    (the benchmark); otherwise revisions go in order through the sink's upsert."""
    evidence_rows = [
        (
            a.latest["alert_id"],
            e["event_id"],
            e["occurred_at"],
            e["staff_id"],
            e["action"],
            e["channel"],
            e["branch_id"],
            e["customer_ref"],
            e["record_count"],
            e["outcome"],
            e["reason_codes"],
            e["first_revision"],
        )
        for a in alerts
        for e in a.evidence
    ]
    reveal_rows = sorted({(ref, raw) for a in alerts for ref, raw in a.customers.items()})
    if bulk:
        rows = []
        for a in alerts:
            *head, payload, created, role = alert_args(a.latest)
            rows.append((*head, payload, created, role))
        await conn.copy_records_to_table(
            "alerts",
            records=rows,
            columns=[
                "alert_id",
                "revision",
                "staff_id",
                "branch_id",
                "severity",
                "risk_score",
                "first_event_at",
                "last_event_at",
                "event_ids",
                "event_count",
                "reason_codes",
                "payload",
                "created_at",
                "staff_role",
            ],
        )
        await conn.copy_records_to_table(
            "alert_revisions",
            records=[revision_args(p) for a in alerts for p in a.revisions],
            columns=[
                "alert_id",
                "revision",
                "severity",
                "risk_score",
                "status",
                "event_count",
                "reason_codes",
                "payload",
                "created_at",
            ],
        )
        await conn.copy_records_to_table(
            "alert_evidence",
            records=evidence_rows,
            columns=[
                "alert_id",
                "event_id",
                "occurred_at",
                "staff_id",
                "action",
                "channel",
                "branch_id",
                "customer_ref",
                "record_count",
                "outcome",
                "reason_codes",
                "first_revision",
            ],
        )
        await conn.execute(
            "INSERT INTO customer_reveal (customer_ref, customer_id)"
            " SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
            [r for r, _ in reveal_rows],
            [c for _, c in reveal_rows],
        )
        return
    for a in alerts:
        for p in a.revisions:
            await write_revision(conn, p)
    await conn.executemany(
        "INSERT INTO alert_evidence (alert_id, event_id, occurred_at, staff_id, action, channel,"
        " branch_id, customer_ref, record_count, outcome, reason_codes, first_revision)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING",
        evidence_rows,
    )
    await conn.executemany(
        "INSERT INTO customer_reveal (customer_ref, customer_id) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING",
        reveal_rows,
    )
