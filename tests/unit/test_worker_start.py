"""``pipeline worker`` refuses development-only settings before touching any service."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.db.roles import RoleError, grant_statements, quote_role
from pipeline.errors import RetriableError
from pipeline.settings import Settings, SettingsError
from pipeline.worker import main as worker_main


def _worker(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "worker"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("key", [None, "change-me-in-production"])
def test_placeholder_or_empty_pseudonym_key_is_refused(key: str | None) -> None:
    env = {} if key is None else {"PIPELINE_PSEUDONYM_KEY": key}
    done = _worker(**env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("pipeline worker: PIPELINE_PSEUDONYM_KEY is empty or the")
    assert "PIPELINE_DEV_MODE=true" in lines[0]


def test_bad_kafka_security_settings_are_refused_in_one_line() -> None:
    done = _worker(
        PIPELINE_PSEUDONYM_KEY="k",
        PIPELINE_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        PIPELINE_KAFKA_SASL_USERNAME="svc",
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "pipeline worker: PIPELINE_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs "
        "PIPELINE_KAFKA_SASL_PASSWORD (or PIPELINE_KAFKA_SASL_PASSWORD_FILE)"
    )


def test_dev_mode_allows_the_placeholder_and_a_key_is_enough() -> None:
    Settings(dev_mode=True).check_production()
    Settings(pseudonym_key="a-real-secret").check_production()
    with pytest.raises(SettingsError):
        Settings(pseudonym_key="").check_production()


def test_worker_grants_are_exactly_the_documented_ones() -> None:
    sql = grant_statements("aw_worker")
    assert sql[0] == 'REVOKE ALL ON ALL TABLES IN SCHEMA "public" FROM "aw_worker"'
    grants = {s for s in sql if s.startswith("GRANT") and " ON SCHEMA " not in s}
    assert grants == {
        'GRANT SELECT ON "public"."schema_migrations" TO "aw_worker"',
        'GRANT SELECT, INSERT, UPDATE ON "public"."alerts" TO "aw_worker"',
        'GRANT SELECT, INSERT, UPDATE (routed_at) ON "public"."alert_feedback" TO "aw_worker"',
        'GRANT SELECT, INSERT, UPDATE ON "public"."alert_revisions" TO "aw_worker"',
        'GRANT SELECT, INSERT, UPDATE ON "public"."alert_evidence" TO "aw_worker"',
        'GRANT INSERT, SELECT (customer_ref) ON "public"."customer_reveal" TO "aw_worker"',
    }
    assert not any(word in " ".join(grants) for word in ("DELETE", "TRUNCATE", "ALL"))


@pytest.mark.parametrize("bad", ["", "x y", 'a"b', "1abc", "a" * 64, "role;drop"])
def test_role_names_are_plain_identifiers(bad: str) -> None:
    with pytest.raises(RoleError):
        quote_role(bad)


def test_a_nested_data_dir_is_created_with_its_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unreachable(settings: Settings) -> None:
        raise RetriableError("no broker here")

    monkeypatch.setattr(worker_main, "prepare", unreachable)
    nested = tmp_path / "a" / "b" / "worker-0"
    status = worker_main.run_worker(Settings(dev_mode=True, data_dir=nested))
    assert nested.is_dir()
    assert status == worker_main.EXIT_UNREACHABLE  # it got past the directory


def test_a_data_dir_that_cannot_be_created_is_refused_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    done = _worker(PIPELINE_DEV_MODE="true", PIPELINE_DATA_DIR=str(blocker / "worker-0"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("pipeline worker: cannot create PIPELINE_DATA_DIR")
