"""Versioned SQL migrations, applied in order at worker start or by ``pipeline migrate``.

Each file ``NNNN_name.sql`` in ``migrations/`` runs once, in a transaction,
under an advisory lock so that workers starting together do not race.

Who runs them: ``pipeline migrate`` connects with ``settings.migration_url``
(``PIPELINE_MIGRATE_DATABASE_URL``, the schema owner; ``PIPELINE_DATABASE_URL``
when unset). A worker migrates at start only when ``PIPELINE_MIGRATE_ON_START``
is true (the development default); otherwise it only *reads*
``schema_migrations`` and refuses to start while a migration of its code is
not applied (:class:`SchemaBehindError`), so a worker role without DDL
rights never needs them. A schema that is up to date costs no DDL either way.
"""

from __future__ import annotations

import logging
from importlib import resources

import asyncpg

from pipeline.errors import PipelineError
from pipeline.settings import Settings

log = logging.getLogger(__name__)
_LOCK_ID = 0x5049504C  # "PIPL"


class SchemaBehindError(PipelineError):
    """The database lacks migrations this code needs, and this process may not apply them."""


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) sorted by version."""
    out = []
    folder = resources.files("pipeline.db").joinpath("migrations")
    for entry in folder.iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        version = int(name.split("_", 1)[0])
        out.append((version, name, entry.read_text(encoding="utf-8")))
    out.sort()
    versions = [v for v, _, _ in out]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return out


async def applied_versions(conn: asyncpg.Connection) -> set[int] | None:
    """Versions recorded in ``schema_migrations`` (None: the table does not exist). Reads only."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return None
    return {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}


async def pending_migrations(conn: asyncpg.Connection) -> list[str]:
    """Names of this code's migrations not applied in the database. Reads only."""
    done = await applied_versions(conn) or set()
    return [name for version, name, _ in migration_files() if version not in done]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; return the names applied (no DDL when none is pending)."""
    if not await pending_migrations(conn):
        return []
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
                )
            log.info("applied migration %s", name)
            applied.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    return applied


async def migrate_url(database_url: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


async def check_schema_url(database_url: str) -> None:
    """Raise :class:`SchemaBehindError` when a migration of this code is not applied."""
    conn = await asyncpg.connect(database_url)
    try:
        missing = await pending_migrations(conn)
    finally:
        await conn.close()
    if missing:
        raise SchemaBehindError(
            f"the database schema is behind this worker: {', '.join(missing)} not applied; "
            "run `pipeline migrate` with the owner role (PIPELINE_MIGRATE_DATABASE_URL), "
            "or set PIPELINE_MIGRATE_ON_START=true where the worker may run DDL"
        )


async def prepare_schema(settings: Settings) -> list[str]:
    """At worker start: migrate (``migrate_on_start``) or check that nothing is pending.

    Returns the migrations applied. Migrating at start uses ``migration_url`` (the
    owner role when ``PIPELINE_MIGRATE_DATABASE_URL`` is set, else the worker's own).
    """
    if settings.migrate_on_start:
        return await migrate_url(settings.migration_url)
    await check_schema_url(settings.database_url)
    return []
