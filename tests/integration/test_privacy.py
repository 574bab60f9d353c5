"""A production-shaped worker: least-privilege database role, no DDL at start, loopback
web port without Faust's own views, and no raw customer id in its log at debug level."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from pipeline.settings import Settings
from simbank.workers import WorkerProcess
from tests.integration.kit import Roles, migrate_as_owner, read_topic, send_json, wait_for

# Distinctive ids: any of them in the log is a leak.
C_ASSIGNED, C_OTHER, C_VIP = "CUSTSECRET-A1", "CUSTSECRET-B2", "CUSTSECRET-V3"
C_BAD_EVENT, C_BAD_PROFILE, C_MALFORMED = "CUSTSECRET-X4", "CUSTSECRET-Y5", "CUSTSECRET-Z6"
LEAK_MARK = "CUSTSECRET"


def _event(n: int, customer: str, action: str = "view_profile", **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"priv-{n}",
        "occurred_at": f"2026-03-02T10:{n:02d}:00+08:00",
        "staff_id": "S1",
        "customer_id": customer,
        "action": action,
        "channel": "branch_terminal",
        "branch_id": "BR01",
        **extra,
    }


def _profile(customer: str, sensitivity: str = "normal", **extra: Any) -> dict[str, Any]:
    return {
        "customer_id": customer,
        "home_branch_id": "BR02",
        "segment": "retail",
        "sensitivity": sensitivity,
        "related_staff_ids": [],
        "updated_at": "2026-03-02T09:00:00+08:00",
        **extra,
    }


async def _publish_reference(producer: AIOKafkaProducer, s: Settings) -> None:
    await send_json(
        producer,
        s.staff_topic,
        "S1",
        {
            "staff_id": "S1",
            "branch_id": "BR01",
            "role": "customer_manager",
            "status": "active",
            "effective_at": "2026-01-01T00:00:00+08:00",
        },
    )
    await send_json(
        producer,
        s.assignments_topic,
        f"S1:{C_ASSIGNED}",
        {
            "staff_id": "S1",
            "customer_id": C_ASSIGNED,
            "relation": "relationship_manager",
            "valid_from": "2026-01-01T00:00:00+08:00",
            "valid_to": None,
            "op": "assign",
        },
    )
    for cid, sens in ((C_ASSIGNED, "normal"), (C_OTHER, "normal"), (C_VIP, "vip")):
        await send_json(producer, s.profiles_topic, cid, _profile(cid, sens))
    # A profile the reader cannot use: dead-lettered (its customer id in the key and value).
    await send_json(producer, s.profiles_topic, C_BAD_PROFILE, _profile(C_BAD_PROFILE, "celebrity"))


def _listening_addresses(port: int) -> set[str]:
    out = subprocess.run(
        ["ss", "-H", "-ltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return {line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()}


async def test_least_privilege_worker_keeps_customer_ids_out_of_its_log(
    topics: Settings,
    roles: Roles,
    producer: AIOKafkaProducer,
    tmp_path: Path,
) -> None:
    granted = migrate_as_owner(roles, "--grant-worker", roles.worker_role)
    assert granted.returncode == 0, granted.stderr
    s = topics.replace(
        database_url=roles.worker_url,
        migrate_on_start=False,
        log_level="debug",
    )
    worker = WorkerProcess(s, tmp_path / "worker-debug.log")
    try:
        await _publish_reference(producer, s)
        worker.wait_healthy(180)
        await send_json(producer, s.access_topic, "S1", _event(1, C_ASSIGNED))
        await send_json(producer, s.access_topic, "S1", _event(2, C_OTHER))
        await send_json(producer, s.access_topic, "S1", _event(3, C_VIP))
        await send_json(
            producer, s.access_topic, "S1", _event(4, C_ASSIGNED, "credit_report_query")
        )
        bad = orjson.dumps({**_event(5, C_BAD_EVENT), "record_count": "many"})
        await send_json(producer, s.access_topic, "S1", bad, raw=True)
        malformed = b'{"event_id": "priv-6", "customer_id": "' + C_MALFORMED.encode() + b'", '
        await send_json(producer, s.access_topic, "S1", malformed, raw=True)

        alerts = await read_topic(s.alerts_topic, until=lambda recs: len(recs) >= 1)
        alert = orjson.loads(alerts[0][1] or b"")
        dlq = await read_topic(s.dlq_topic, until=lambda recs: len(recs) >= 3)
        codes = {orjson.loads(v or b"")["error"]["code"] for _, v in dlq}
        assert {"wrong_type", "malformed_json"} <= codes

        # The worker role wrote the alert (owner's view of the table).
        owner = await asyncpg.connect(roles.owner_url)
        try:

            async def stored() -> Any:
                return await owner.fetchval(
                    "SELECT payload FROM alerts WHERE alert_id = $1", alert["alert_id"]
                )

            payload = json.loads(await wait_for(stored))
            assert payload["alert_id"] == alert["alert_id"]
            ddl_by_worker = await owner.fetchval(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                "AND tableowner <> current_user"
            )
            assert ddl_by_worker == 0
        finally:
            await owner.close()
        assert not {C_ASSIGNED, C_OTHER, C_VIP} & set(alert["customer_refs"])

        # The web port: on loopback only; the pipeline's pages, none of Faust's own.
        assert _listening_addresses(worker.port) == {"127.0.0.1"}
        assert worker.health()[0] == 200
        assert "pipeline_events_in_total" in worker.metrics()
        for path in (
            "/router/",
            "/router/topics",
            "/table/",
            f"/table/{s.app_id}-staff-risk/",
            "/graph/",
            "/assignment/",
            "/performance/",
            "/stats/",
        ):
            status, _ = worker._get(path)
            assert status == 404, path
    finally:
        worker.stop()

    log = worker.log_path.read_text(errors="replace")
    assert log.count("[DEBUG]") > 100, "the worker logged at debug level"
    leaks = [line for line in log.splitlines() if LEAK_MARK in line]
    assert not leaks, "raw customer ids in the worker log:\n" + "\n".join(leaks[:20])
