"""The worker's database role: exactly the privileges a worker needs, granted by the owner.

Two roles (docs/security.md, "Database roles"):

* the **owner** owns the schema and runs ``pipeline migrate``
  (``PIPELINE_MIGRATE_DATABASE_URL``);
* the **worker** role (``PIPELINE_DATABASE_URL`` of the workers, with
  ``PIPELINE_MIGRATE_ON_START=false``) may read and write alerts and insert the
  rest, and nothing else: no DDL, no DELETE, no TRUNCATE, and it cannot read the
  raw customer ids back out of ``customer_reveal``.

Roles are cluster objects: a DBA (a role with CREATEROLE) creates both login
roles once. The owner then runs ``pipeline migrate --grant-worker ROLE`` after
every migration: it revokes whatever the role held on the schema's tables and
grants :data:`WORKER_GRANTS` (an owner may grant on its own tables without any
cluster privilege). Tables added by later migrations get their line here.
"""

from __future__ import annotations

import re
from typing import Final

import asyncpg

from pipeline.errors import PipelineError

# table -> privileges of the worker role. Upserts need SELECT for their WHERE
# and for the columns of their ON CONFLICT target; customer_reveal is
# write-only for workers but for that target (the pseudonym, which alerts carry
# anyway): a worker cannot read a raw customer id back. A worker only marks a
# verdict as routed to the staff's worker (routed_at); verdicts stay as given.
WORKER_GRANTS: Final[dict[str, str]] = {
    "schema_migrations": "SELECT",
    "alerts": "SELECT, INSERT, UPDATE",
    "alert_feedback": "SELECT, INSERT, UPDATE (routed_at)",
    "alert_revisions": "SELECT, INSERT, UPDATE",
    "alert_evidence": "SELECT, INSERT, UPDATE",
    "customer_reveal": "INSERT, SELECT (customer_ref)",
}
_ROLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class RoleError(PipelineError):
    """The worker role cannot be granted its privileges (unknown role, not the owner)."""


def quote_role(role: str) -> str:
    """``role`` as a quoted SQL identifier; only plain names are accepted."""
    if not _ROLE.fullmatch(role):
        raise RoleError(f"role name {role!r}: use letters, digits and _ (at most 63)")
    return f'"{role}"'


def grant_statements(role: str, schema: str = "public") -> list[str]:
    """The SQL that gives ``role`` exactly the worker's privileges in ``schema``."""
    r = quote_role(role)
    s = quote_role(schema)
    out = [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {s} FROM {r}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {s} FROM {r}",
        f"REVOKE CREATE ON SCHEMA {s} FROM {r}",
        f"GRANT USAGE ON SCHEMA {s} TO {r}",
    ]
    out += [f"GRANT {privs} ON {s}.{quote_role(t)} TO {r}" for t, privs in WORKER_GRANTS.items()]
    return out


async def grant_worker(conn: asyncpg.Connection, role: str) -> list[str]:
    """Run :func:`grant_statements` in one transaction as the connected (owner) role."""
    statements = grant_statements(role)
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    if not exists:
        raise RoleError(
            f"role {role!r} does not exist; a DBA creates it once: "
            f"CREATE ROLE {quote_role(role)} LOGIN PASSWORD '...'"
        )
    try:
        async with conn.transaction():
            for sql in statements:
                await conn.execute(sql)
    except asyncpg.InsufficientPrivilegeError as exc:
        raise RoleError(
            f"cannot grant the worker's privileges to {role!r} ({exc}); run this as the role "
            "that owns the tables (the one `pipeline migrate` uses)"
        ) from None
    except asyncpg.UndefinedTableError as exc:
        raise RoleError(f"{exc}: run `pipeline migrate` first") from None
    return statements


async def grant_worker_url(database_url: str, role: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        return await grant_worker(conn, role)
    finally:
        await conn.close()
