"""Static checks of docker-compose.yml and the Dockerfile (no Docker needed)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.settings import SECRET_FIELDS, Settings

ROOT = Path(__file__).resolve().parents[2]
KAFKA_BOOTSTRAP = "kafka:9092"
DATABASE_URL = "postgresql://pipeline:pipeline@postgres:5432/pipeline"


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(compose, dict)
    found = compose["services"]
    assert isinstance(found, dict)
    return found


INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def _env(service: dict[str, Any]) -> dict[str, str]:
    """Environment of a service, whether written as a mapping or a list."""
    raw = service.get("environment", {})
    if isinstance(raw, list):
        return dict(item.split("=", 1) for item in raw)
    return {key: str(value) for key, value in raw.items()}


def _resolved_env(service: dict[str, Any]) -> dict[str, str]:
    """The environment with ``${VAR:-default}`` resolved as compose does when VAR is unset."""
    return {k: INTERPOLATION.sub(lambda m: m.group(2) or "", v) for k, v in _env(service).items()}


def _command(value: str | list[str]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    pairs = []
    for entry in logical:
        keyword, _, args = entry.partition(" ")
        pairs.append((keyword.upper(), args.strip()))
    return pairs


def _exec_form(args: str) -> list[str]:
    parsed = json.loads(args) if args.startswith("[") else shlex.split(args)
    assert isinstance(parsed, list)
    return [str(p) for p in parsed]


def test_the_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert {"kafka", "postgres", "worker", "console", "simulator"} <= services.keys()


def test_the_simulator_runs_only_on_request(services: dict[str, dict[str, Any]]) -> None:
    assert services["simulator"]["profiles"] == ["simulator"]
    # `docker compose up` starts everything else.
    for name in ("kafka", "postgres", "worker", "console"):
        assert "profiles" not in services[name], name
    assert services["simulator"]["restart"] == "no"


def test_every_pipeline_variable_is_a_setting(services: dict[str, dict[str, Any]]) -> None:
    known = {f"PIPELINE_{name.upper()}" for name in Settings.model_fields}
    known |= {f"PIPELINE_{name.upper()}_FILE" for name in SECRET_FIELDS}
    for name, service in services.items():
        for var in _env(service):
            if var.startswith("PIPELINE_"):
                assert var in known, f"{name}: {var} is not a setting"


def test_worker_and_console_settings_are_accepted(services: dict[str, dict[str, Any]]) -> None:
    for name in ("worker", "console"):
        settings = Settings.from_env(_resolved_env(services[name]))
        # The placeholder key is allowed only because the demo sets dev mode.
        settings.check_production()
        assert settings.dev_mode, name
    worker = Settings.from_env(_resolved_env(services["worker"]))
    assert worker.web_bind == "0.0.0.0"  # reachable from the other containers
    assert worker.web_port == 6066
    assert worker.data_dir.is_absolute()


def test_console_is_published_on_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    console = services["console"]
    assert _command(console["command"]) == ["pipeline", "console"]
    env = _resolved_env(console)
    settings = Settings.from_env(env)
    assert settings.console_bind == "0.0.0.0"
    assert console["ports"] == [f"127.0.0.1:{settings.console_port}:{settings.console_port}"]
    # Empty identity header: the demo's local login (the console refuses it without dev mode).
    assert env["PIPELINE_CONSOLE_IDENTITY_HEADER"] == ""
    assert console["image"] == services["worker"]["image"]
    for dep in ("kafka", "postgres"):
        assert console["depends_on"][dep]["condition"] == "service_healthy"


def test_host_ports_are_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_worker_can_be_scaled(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    # A published host port would clash between replicas; `expose` is fine.
    assert not worker.get("ports")


def test_worker_and_simulator_point_at_compose_services(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("worker", "console", "simulator"):
        env = _env(services[name])
        assert env["PIPELINE_KAFKA_BOOTSTRAP"] == KAFKA_BOOTSTRAP, name
        assert env["PIPELINE_DATABASE_URL"] == DATABASE_URL, name


def test_commands(services: dict[str, dict[str, Any]]) -> None:
    assert _command(services["worker"]["command"]) == ["pipeline", "worker"]
    assert _command(services["simulator"]["command"]) == [
        "simbank",
        "simulate",
        "--output",
        "kafka",
    ]


def test_worker_waits_for_healthy_dependencies(services: dict[str, dict[str, Any]]) -> None:
    depends = services["worker"]["depends_on"]
    for dep in ("kafka", "postgres"):
        assert depends[dep]["condition"] == "service_healthy"
        assert services[dep].get("healthcheck", {}).get("test"), dep


def test_kafka_advertises_its_service_name(services: dict[str, dict[str, Any]]) -> None:
    env = _env(services["kafka"])
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert f"PLAINTEXT://{KAFKA_BOOTSTRAP}" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_postgres_credentials_match_the_dsn(services: dict[str, dict[str, Any]]) -> None:
    env = _env(services["postgres"])
    assert services["postgres"]["image"] == "postgres:16"
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]) == (
        "pipeline",
        "pipeline",
        "pipeline",
    )


def test_dockerfile_runs_the_worker_as_non_root() -> None:
    instructions = _dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    entrypoint = [_exec_form(a) for k, a in instructions if k == "ENTRYPOINT"]
    cmd = [_exec_form(a) for k, a in instructions if k == "CMD"]
    # Only the last ENTRYPOINT/CMD count; together they form the command line.
    effective = (entrypoint[-1] if entrypoint else []) + (cmd[-1] if cmd else [])
    assert effective == ["pipeline", "worker"]
    users = [a for k, a in instructions if k == "USER"]
    assert users
    assert users[-1] not in {"root", "0"}
    assert ("EXPOSE", "6066") in instructions
    healthchecks = [a for k, a in instructions if k == "HEALTHCHECK"]
    assert healthchecks
    assert "localhost:6066/health" in healthchecks[-1]


def test_compose_worker_starts_only_because_it_is_a_dev_stack(
    services: dict[str, dict[str, Any]],
) -> None:
    from pipeline.settings import PLACEHOLDER_PSEUDONYM_KEYS, Settings, SettingsError

    env = _env(services["worker"])
    key = env["PIPELINE_PSEUDONYM_KEY"].removeprefix("${PIPELINE_PSEUDONYM_KEY:-").rstrip("}")
    assert key in PLACEHOLDER_PSEUDONYM_KEYS
    assert env["PIPELINE_DEV_MODE"] == "${PIPELINE_DEV_MODE:-true}"
    # The same key without the flag is refused.
    with pytest.raises(SettingsError, match="PIPELINE_PSEUDONYM_KEY"):
        Settings(pseudonym_key=key).check_production()
    assert env["PIPELINE_WEB_BIND"] == "0.0.0.0"


def test_dockerfile_sets_no_dev_mode_and_binds_the_container_interfaces() -> None:
    envs = " ".join(a for k, a in _dockerfile_instructions() if k == "ENV")
    assert "PIPELINE_DEV_MODE" not in envs
    assert "PIPELINE_PSEUDONYM_KEY" not in envs
    assert "PIPELINE_WEB_BIND=0.0.0.0" in envs
