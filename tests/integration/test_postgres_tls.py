"""Postgres over verified TLS (``sslmode=verify-full``): migrations and the alert sink.

The test makes a CA and a server certificate for localhost/127.0.0.1 and starts
its own PostgreSQL (``infra/postgres.sh`` with ``PIPELINE_PG_TLS_DIR``, its own
state dir, port 29110 or ``PIPELINE_PG_TLS_PORT``, below the ephemeral port range)
that rejects TCP without TLS.
The pipeline's DSN carries ``sslmode=verify-full&sslrootcert=<ca>``; a DSN naming
another CA is refused, by asyncpg and by the ``pipeline`` commands alike.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from msgspec.structs import replace

from pipeline.contract.decode import decode_alert
from pipeline.db.migrate import migrate_url, pending_migrations
from pipeline.sinks.postgres import PostgresSink
from tests.integration.kit import BOOTSTRAP, ROOT, free_port
from tests.tls import issue, make_ca

PORT = int(os.environ.get("PIPELINE_PG_TLS_PORT", "29110"))
MINIMAL_ALERT = ROOT / "schemas" / "examples" / "alert" / "valid" / "minimal.json"


def _script(action: str, state: Path, tls: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "INFRA_STATE_DIR": str(state),
        "PIPELINE_PG_PORT": str(PORT),
        "PIPELINE_PG_TLS_DIR": str(tls),
    }
    return subprocess.run(
        ["bash", str(ROOT / "infra" / "postgres.sh"), action],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tls = tmp_path_factory.mktemp("pg-tls")
    ca = make_ca(tls)
    issue(ca, tls, "server")  # server.crt, server.key: localhost and 127.0.0.1
    make_ca(tls, "other-ca")
    return tls


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tls_dir: Path) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("pg-state")
    try:
        started = _script("start", state, tls_dir)
        if started.returncode != 0:
            pytest.fail(f"TLS Postgres did not start:\n{started.stderr}")
        yield tls_dir
    finally:
        stopped = _script("stop", state, tls_dir)
        # Its files may live outside the state dir (see postgres.sh: resolve_root).
        root = (state / "postgres").resolve()
        shutil.rmtree(root, ignore_errors=True)
        assert stopped.returncode == 0, stopped.stderr


def dsn(ca: Path, mode: str = "verify-full", host: str = "localhost") -> str:
    return f"postgresql://pipeline:pipeline@{host}:{PORT}/pipeline?sslmode={mode}&sslrootcert={ca}"


async def test_migrations_and_sink_over_verify_full(server: Path) -> None:
    url = dsn(server / "ca.pem")
    await migrate_url(url)
    conn = await asyncpg.connect(url)
    try:
        assert await pending_migrations(conn) == []
        assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    finally:
        await conn.close()

    minimal = decode_alert(MINIMAL_ALERT.read_bytes())
    alert = replace(minimal, alert_id=f"tls-{uuid.uuid4().hex[:12]}")
    sink = await PostgresSink.connect(url)
    try:
        assert (await sink.write_alerts([alert])).written == 1
        stored = await sink.latest([alert.alert_id])
        assert [(a.alert_id, a.staff_id) for a in stored] == [(alert.alert_id, alert.staff_id)]
    finally:
        await sink.close()


async def test_ip_address_in_the_certificate_also_verifies(server: Path) -> None:
    conn = await asyncpg.connect(dsn(server / "ca.pem", host="127.0.0.1"))
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


async def test_another_ca_is_refused(server: Path) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        await asyncpg.connect(dsn(server / "other-ca.pem"))


async def test_plain_tcp_is_refused_by_the_server(server: Path) -> None:
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="no encryption"):
        await asyncpg.connect(dsn(server / "ca.pem", mode="disable"))


def _pipeline(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_pipeline_migrate_over_tls_and_its_refusal(server: Path) -> None:
    ok = _pipeline("migrate", PIPELINE_DATABASE_URL=dsn(server / "ca.pem"))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("applied: ")

    refused = _pipeline("migrate", PIPELINE_DATABASE_URL=dsn(server / "other-ca.pem"))
    assert refused.returncode == 2
    assert "certificate verify failed" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_worker_refuses_to_start_when_postgres_tls_fails(server: Path, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    done = _pipeline(
        "worker",
        PIPELINE_DATABASE_URL=dsn(server / "other-ca.pem"),
        PIPELINE_KAFKA_BOOTSTRAP=BOOTSTRAP,
        PIPELINE_TOPIC_PREFIX=f"pgtls{run}.",
        PIPELINE_APP_ID=f"test-pgtls-{run}",
        PIPELINE_PSEUDONYM_KEY="test-key",
        PIPELINE_WEB_PORT=str(free_port()),
        PIPELINE_DATA_DIR=str(tmp_path),
    )
    assert done.returncode == 2, done.stderr
    assert "pipeline worker: Postgres TLS:" in done.stderr
    assert "certificate verify failed" in done.stderr
    assert "Traceback" not in done.stderr
