"""The two database roles on the real Postgres: the owner migrates, the worker only writes.

Each test gets a throwaway database owned by the dev role ``pipeline`` (the
owner here) and a throwaway login role granted the worker's privileges with
``pipeline migrate --grant-worker``, as docs/security.md tells an operator to.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from msgspec.structs import replace

from pipeline.contract.decode import decode_alert
from pipeline.db.migrate import (
    SchemaBehindError,
    migrate_url,
    migration_files,
    prepare_schema,
)
from pipeline.db.roles import RoleError, grant_worker_url
from pipeline.settings import Settings
from pipeline.sinks.postgres import PostgresSink
from tests.integration.kit import (
    BOOTSTRAP,
    DATABASE_URL,
    ROOT,
    Roles,
    free_port,
    migrate_as_owner,
)

MINIMAL_ALERT = ROOT / "schemas" / "examples" / "alert" / "valid" / "minimal.json"


async def test_owner_migrates_and_grants_the_worker_role(roles: Roles) -> None:
    done = migrate_as_owner(roles, "--grant-worker", roles.worker_role)
    assert done.returncode == 0, done.stderr
    names = [name for _, name, _ in migration_files()]
    assert done.stdout.splitlines()[0] == "applied: " + ", ".join(names)
    assert f"granted the worker's privileges to {roles.worker_role}" in done.stdout

    again = migrate_as_owner(roles, "--grant-worker", roles.worker_role)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("applied: nothing (up to date)")

    conn = await asyncpg.connect(roles.owner_url)
    try:
        owners = {
            r["tableowner"]
            for r in await conn.fetch("SELECT tableowner FROM pg_tables WHERE schemaname='public'")
        }
    finally:
        await conn.close()
    assert owners == {urlsplit(DATABASE_URL).username}


async def test_worker_role_writes_alerts_and_nothing_more(roles: Roles) -> None:
    assert migrate_as_owner(roles, "--grant-worker", roles.worker_role).returncode == 0
    alert = decode_alert(MINIMAL_ALERT.read_bytes())
    sink = await PostgresSink.connect(roles.worker_url)
    try:
        assert (await sink.write_alerts([alert])).written == 1
        newer = replace(alert, revision=alert.revision + 1)
        assert (await sink.write_alerts([newer])).written == 1
        verdict = {
            "alert_id": alert.alert_id,
            "verdict": "true_positive",
            "analyst_id": "soc-1",
            "comment": None,
            "decided_at": datetime(2026, 2, 2, tzinfo=UTC),
        }
        assert await sink.store_feedback([verdict]) == 1
        routed = await sink.unrouted([alert.alert_id])
        assert [(a, v, s) for a, v, s, _ in routed] == [
            (alert.alert_id, "true_positive", alert.staff_id)
        ]
        await sink.mark_routed([alert.alert_id])
        assert await sink.unrouted([alert.alert_id]) == []
        stored = await sink.latest([alert.alert_id])
        assert [a.revision for a in stored] == [newer.revision]
    finally:
        await sink.close()

    conn = await asyncpg.connect(roles.worker_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(
            migration_files()
        )
        # Revisions, evidence and the pseudonym -> customer id map can be written ...
        await conn.execute(
            "INSERT INTO alert_revisions (alert_id, revision, severity, risk_score, "
            "event_count, reason_codes, payload, created_at) "
            "VALUES ('a1', 1, 'low', 10, 1, '{}', '{}'::jsonb, now())"
        )
        await conn.execute(
            "INSERT INTO alert_evidence (alert_id, event_id, occurred_at, staff_id, action, "
            "channel, branch_id, customer_ref, record_count, outcome, reason_codes, "
            "first_revision) VALUES ('a1', 'e1', now(), 'S1', 'view_profile', 'api', 'BR1', "
            "'cref-x', 1, 'success', '{}', 1)"
        )
        await conn.execute(
            "INSERT INTO customer_reveal (customer_ref, customer_id) VALUES ('cref-x', 'C-1') "
            "ON CONFLICT (customer_ref) DO NOTHING"
        )
        # ... but raw customer ids cannot be read back, nothing can be deleted, and no DDL.
        denied = [
            "SELECT customer_id FROM customer_reveal",
            "DELETE FROM alerts",
            "DELETE FROM alert_evidence",
            "TRUNCATE alerts",
            "DROP TABLE alerts",
            "ALTER TABLE alerts ADD COLUMN x int",
            "CREATE TABLE sneaky (id int)",
            "CREATE INDEX sneaky_idx ON alerts (branch_id)",
            "UPDATE schema_migrations SET name = 'x'",
            "INSERT INTO schema_migrations (version, name) VALUES (9999, 'x')",
        ]
        for sql in denied:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(sql)
    finally:
        await conn.close()


async def test_worker_role_never_runs_ddl(roles: Roles) -> None:
    assert migrate_as_owner(roles, "--grant-worker", roles.worker_role).returncode == 0
    s = Settings(database_url=roles.worker_url, migrate_on_start=False)
    assert await prepare_schema(s) == []
    # Even the development path (migrate at start) costs no DDL on an up-to-date schema.
    assert await migrate_url(roles.worker_url) == []


async def test_schema_behind_is_refused_with_the_missing_migrations(roles: Roles) -> None:
    s = Settings(database_url=roles.owner_url, migrate_on_start=False)
    with pytest.raises(SchemaBehindError, match=r"0001_alerts\.sql, 0002_feedback\.sql") as err:
        await prepare_schema(s)
    assert "run `pipeline migrate`" in str(err.value)
    conn = await asyncpg.connect(roles.owner_url)
    try:  # checking created nothing
        assert await conn.fetchval("SELECT to_regclass('schema_migrations')") is None
    finally:
        await conn.close()


def test_worker_exits_3_while_the_schema_is_behind(roles: Roles, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "PIPELINE_DATABASE_URL": roles.owner_url,
        "PIPELINE_MIGRATE_ON_START": "false",
        "PIPELINE_KAFKA_BOOTSTRAP": BOOTSTRAP,
        "PIPELINE_TOPIC_PREFIX": f"roles{run}.",
        "PIPELINE_APP_ID": f"test-roles-{run}",
        "PIPELINE_PSEUDONYM_KEY": "test-key",
        "PIPELINE_WEB_PORT": str(free_port()),
        "PIPELINE_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert "the database schema is behind this worker" in done.stderr
    assert "Traceback" not in done.stderr


async def test_grant_needs_an_existing_role_and_the_owner(roles: Roles) -> None:
    await migrate_url(roles.owner_url)
    with pytest.raises(RoleError, match="does not exist; a DBA creates it once"):
        await grant_worker_url(roles.owner_url, "no_such_role_here")
    with pytest.raises(RoleError, match="letters, digits"):
        await grant_worker_url(roles.owner_url, 'x"; DROP TABLE alerts; --')
    with pytest.raises(RoleError, match="run this as the role that owns the tables"):
        await grant_worker_url(roles.worker_url, roles.worker_role)
