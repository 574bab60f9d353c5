"""Every ``PIPELINE_*`` setting, typed and validated, declared once.

The contract fixes the first seven ("Running a worker"); the others have
defaults that work on one machine. The settings tables of the README and
docs/operations.md list them all, generated from the fields' docstrings
(``pipeline.settings_doc``; ``tests/unit/test_settings_doc.py`` keeps them current).

``Settings()`` is the defaults alone; :meth:`Settings.from_env` reads the
environment (or a given mapping). Secrets can come from files: for every
field in :data:`SECRET_FIELDS`, ``PIPELINE_<NAME>_FILE`` names a file whose
content (one trailing newline stripped) is the value, as Kubernetes and
Docker mount secrets. Setting both the variable and its ``_FILE`` twin is an
error. An empty variable means "use the default" (except the topic prefix,
for which empty is a valid value).
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUseDefault
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from pipeline.timeutil import TimestampError, parse_ts

ENV_PREFIX = "PIPELINE_"
# The compose file's and the README's example key: refused unless dev_mode.
PLACEHOLDER_PSEUDONYM_KEYS = frozenset({"", "change-me-in-production"})
SECRET_FIELDS = (
    "database_url",
    "migrate_database_url",
    "pseudonym_key",
    "kafka_sasl_password",
    "kafka_ssl_key_password",
    "console_secret",
)
# Fields for which an empty value is a value, not "use the default" (an empty
# console identity header selects the demo login).
_EMPTY_IS_VALUE = frozenset({"topic_prefix", "console_identity_header"})

_ENV: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "pipeline_settings_env", default=None
)


class SettingsError(ValueError):
    """An environment variable has a value the pipeline cannot use."""


class _MappingEnvSource(EnvSettingsSource):
    """``PIPELINE_*`` variables from the mapping given to ``from_env``."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        env = _ENV.get() or {}
        return {k.lower(): v for k, v in env.items()}


class _SecretFilesSource(PydanticBaseSettingsSource):
    """``PIPELINE_<NAME>_FILE`` for the fields in SECRET_FIELDS."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        env = _ENV.get() or {}
        out: dict[str, Any] = {}
        for name in SECRET_FIELDS:
            var = f"{ENV_PREFIX}{name.upper()}"
            path = env.get(f"{var}_FILE")
            if not path:
                continue
            if env.get(var):
                raise SettingsError(f"set {var} or {var}_FILE, not both")
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise SettingsError(f"{var}_FILE: cannot read {path}: {exc.strerror}") from None
            out[name] = text[:-1] if text.endswith("\n") else text
        return out


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="ignore",
        validate_default=False,
        # The docstring below each field is its description: docs/operations.md's
        # settings table is generated from them (pipeline.settings_doc).
        use_attribute_docstrings=True,
    )

    # -- the contract's table ---------------------------------------------
    kafka_bootstrap: str = "localhost:9092"
    """Kafka bootstrap servers, comma-separated `host:port`."""
    database_url: str = "postgresql://pipeline:pipeline@localhost:5432/pipeline"
    """Postgres DSN of the worker role (insert and update on the alert tables)."""
    topic_prefix: str = "bank."
    """Prefix of every contract topic (`{prefix}access-events`, ...); may be empty."""
    app_id: str = "access-watch"
    """Faust app id: the consumer group, and the prefix of internal topics and state."""
    web_port: int = 6066
    """HTTP port of the worker: `GET /health`, `GET /metrics`."""
    data_dir: Path = Path("./.pipeline-data")
    """Local state directory of the worker (rebuilt from changelog topics when lost)."""
    partitions: int = 8
    """Partition count of the topics the pipeline creates; at most this many workers share the
    work."""
    reference_snapshot_records: int = 100_000
    """Keep a snapshot of the reference data in the data directory, written once loaded and
    again after this many more reference records: a restarted worker loads it and reads only
    what came after (0: none; every start reads the reference topics from the beginning)."""
    scoring_process: bool = True
    """Score in a child process of the worker (the core, the reference data and the peer
    statistics live there; Faust's consuming, publishing and acks here): one worker then
    uses two cores. See docs/operations.md, "A scoring process"."""

    instance_id: str | None = None
    """Stable name of this worker in its consumer group (Kafka static membership): a worker
    restarted under the same name gets its partitions back at once, without a rebalance (a
    StatefulSet's pod name, a compose service replica); unset: dynamic membership."""
    session_timeout_s: float = 15.0
    """How long the group waits for a silent worker before giving its partitions to others."""
    standby_replicas: int = 0
    """Standby copies of each partition's per-employee state, kept up to date by other workers
    (Faust `table_standby_replicas`): a worker that takes over a dead worker's partitions has
    their state already; each copy costs its holder the memory of that state and reading every
    write to its changelog. 0: the new owner reads the state from the changelog."""

    # -- topics ------------------------------------------------------------
    # Replication of every topic the pipeline creates; 3 in production, with
    # min.insync.replicas 2 (set kafka_min_insync_replicas).
    replication_factor: int = 1
    """Replication factor of the topics the pipeline creates (3 in production)."""
    min_insync_replicas: int | None = None
    """`min.insync.replicas` of the topics the pipeline creates (2 in production); unset: the
    broker's default."""

    # -- Kafka security (one client factory: pipeline.broker.clients) -----
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """Kafka security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    """SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."""
    kafka_sasl_username: str | None = None
    """SASL user name."""
    kafka_sasl_password: str | None = None
    """SASL password."""
    kafka_ssl_cafile: Path | None = None
    """CA bundle (PEM) that signs the brokers' certificates."""
    kafka_ssl_certfile: Path | None = None
    """Client certificate (PEM) for mutual TLS."""
    kafka_ssl_keyfile: Path | None = None
    """Private key (PEM) of the client certificate."""
    kafka_ssl_key_password: str | None = None
    """Password of the client key."""
    kafka_ssl_check_hostname: bool = True
    """Check that the broker certificate names the host connected to."""

    # -- database ----------------------------------------------------------
    # Owner role for `pipeline migrate`; workers use database_url (insert and
    # update only). Empty: migrate with database_url.
    migrate_database_url: str | None = None
    """Postgres DSN of the owner role, used by `pipeline migrate`; unset:
    `PIPELINE_DATABASE_URL`."""
    # Workers migrate at start (development); off where the worker role cannot.
    migrate_on_start: bool = True
    """Workers create and migrate the schema at start (development); false where the worker role
    cannot."""

    # -- privacy -----------------------------------------------------------
    # Key of the keyed hash that pseudonymizes customer ids in alerts.
    pseudonym_key: str = "change-me-in-production"
    """Key of the keyed hash that pseudonymizes customer ids in alerts; the placeholder is refused
    unless dev mode."""
    # When true, alerts carry raw customer ids instead of pseudonyms.
    raw_customer_ids: bool = False
    """Alerts carry raw customer ids instead of pseudonyms."""
    # Allows the placeholder pseudonym key and other development shortcuts.
    dev_mode: bool = False
    """Allow the placeholder pseudonym key, local console login and other development shortcuts."""

    # -- web ---------------------------------------------------------------
    web_bind: str = "127.0.0.1"
    """Address the worker's HTTP server listens on (`0.0.0.0` in a container)."""

    # -- logging -----------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "warn", "error"] = "info"
    """Log level: debug, info, warning (or warn), error."""
    log_format: Literal["text", "json"] = "text"
    """Log format: `text` lines, or `json` (one object per line, with `alert_id`/`staff_id` when
    known)."""

    # -- metrics -----------------------------------------------------------
    faust_metrics: bool = False
    """Also export Faust's own Prometheus sensor (`faust_*` metrics) on `/metrics`; costs roughly
    25 µs per event."""

    # -- detection ---------------------------------------------------------
    # Learning period: accesses before this event time teach baselines but
    # raise only policy-violation alerts (RFC 3339; empty: no learning period).
    learn_until: datetime | None = None
    """End of the learning period (RFC 3339): earlier accesses teach baselines and raise only
    policy-violation alerts; unset: none."""
    # The bank's own timezone: the calendar of daily baselines and peer days.
    bank_timezone: str = "Asia/Shanghai"
    """The bank's IANA time zone: the calendar of daily baselines and peer days."""
    # An access more than this far ahead of its partition's event-time
    # watermark is dead-lettered (code clock_skew).
    max_event_skew_s: float = 7 * 86400.0
    """An access this many seconds ahead of both its partition's event-time watermark and the
    wall clock is dead-lettered (`clock_skew`): a typo'd year, not a quiet fortnight."""
    # How late (event time) an access may arrive and still count in its
    # day's peer statistics.
    allowed_lateness_s: float = 3600.0
    """How late (event time, seconds) an access may arrive and still count in its day's peer
    statistics."""

    # -- normalize ---------------------------------------------------------
    # `pipeline normalize`: the topic carrying core-banking CDC records (Debezium,
    # Kafka Connect or flat rows) and the mapping file (YAML or JSON, see
    # docs/ingestion.md) that turns them into AccessEvents.
    normalize_source_topic: str | None = None
    """`pipeline normalize`: the topic of core-banking CDC records to map onto access events."""
    normalize_mapping_file: Path | None = None
    """`pipeline normalize`: the mapping file (YAML or JSON, docs/ingestion.md)."""

    # -- console -----------------------------------------------------------
    console_port: int = 8080
    """HTTP port of the analyst console (`pipeline console`)."""
    console_bind: str = "127.0.0.1"
    """Address the console listens on (`0.0.0.0` in a container, behind the reverse proxy)."""
    # Header a trusted reverse proxy sets to the analyst's identity; empty:
    # local login (demo only, needs dev_mode).
    console_identity_header: str = "X-Forwarded-User"
    """Header in which the trusted reverse proxy names the analyst; empty: local login (demo only,
    needs dev mode)."""
    console_roles_header: str = "X-Forwarded-Groups"
    """Header in which the reverse proxy lists the analyst's groups."""
    console_reveal_role: str = "investigator"
    """Group allowed to reveal the raw customer ids behind pseudonyms in the console."""
    console_secret: str | None = None
    """Secret that signs console sessions and forms."""

    @field_validator("*", mode="before")
    @classmethod
    def _empty_means_default(cls, value: Any, info: Any) -> Any:
        if value == "" and info.field_name not in _EMPTY_IS_VALUE:
            raise PydanticUseDefault()
        if isinstance(value, str) and cls.model_fields[info.field_name].annotation is bool:
            low = value.strip().lower()
            if low in {"1", "true", "yes", "on"}:
                return True
            if low in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"must be true or false, got {value!r}")
        return value

    @field_validator("learn_until", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> Any:
        if value == "":
            raise PydanticUseDefault()
        if isinstance(value, str):
            try:
                return datetime.fromtimestamp(parse_ts(value.strip()), tz=UTC)
            except TimestampError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("web_port", "console_port")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError(f"must be between 1 and 65535, got {value}")
        return value

    @field_validator("partitions")
    @classmethod
    def _partitions(cls, value: int) -> int:
        if not 1 <= value <= 10_000:
            raise ValueError(f"must be between 1 and 10000, got {value}")
        return value

    @field_validator("replication_factor", "min_insync_replicas")
    @classmethod
    def _replicas(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 32:
            raise ValueError(f"must be between 1 and 32, got {value}")
        return value

    @field_validator("standby_replicas")
    @classmethod
    def _standbys(cls, value: int) -> int:
        if not 0 <= value <= 8:
            raise ValueError(f"must be between 0 and 8, got {value}")
        return value

    @field_validator("bank_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"is not an IANA time zone name: {value!r}") from None
        return value

    @field_validator("reference_snapshot_records")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"must be 0 (no snapshot) or a number of records, got {value}")
        return value

    @field_validator("max_event_skew_s", "allowed_lateness_s")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not value > 0:
            raise ValueError(f"must be a positive number of seconds, got {value}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if _ENV.get() is None:  # Settings(...): defaults and keywords only
            return (init_settings,)
        return (
            init_settings,
            _SecretFilesSource(settings_cls),
            _MappingEnvSource(settings_cls, case_sensitive=False, env_prefix=ENV_PREFIX),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``env`` (default ``os.environ``); raises SettingsError naming the
        variable."""
        import os

        mapping = dict(os.environ if env is None else env)
        token = _ENV.set(mapping)
        try:
            return cls()
        except ValidationError as exc:
            raise SettingsError(_describe(exc, mapping)) from None
        finally:
            _ENV.reset(token)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied and validated."""
        try:
            return type(self)(**{**self.model_dump(exclude_defaults=True), **changes})
        except ValidationError as exc:
            raise SettingsError(_describe(exc, {})) from None

    def check_production(self) -> None:
        """Refuse what is only fit for development unless ``dev_mode`` is set."""
        if self.dev_mode:
            return
        if self.pseudonym_key in PLACEHOLDER_PSEUDONYM_KEYS:
            raise SettingsError(
                "PIPELINE_PSEUDONYM_KEY is empty or the documented placeholder; set a secret "
                "key (or PIPELINE_PSEUDONYM_KEY_FILE), or PIPELINE_DEV_MODE=true for a demo"
            )

    # -- topic names ---------------------------------------------------
    @property
    def access_topic(self) -> str:
        return f"{self.topic_prefix}access-events"

    @property
    def staff_topic(self) -> str:
        return f"{self.topic_prefix}staff-directory"

    @property
    def assignments_topic(self) -> str:
        return f"{self.topic_prefix}staff-assignments"

    @property
    def profiles_topic(self) -> str:
        return f"{self.topic_prefix}customer-profiles"

    @property
    def feedback_topic(self) -> str:
        return f"{self.topic_prefix}alert-feedback"

    @property
    def alerts_topic(self) -> str:
        return f"{self.topic_prefix}alerts"

    @property
    def ocsf_topic(self) -> str:
        """OCSF Detection Findings, one per alert revision (contract v1.1)."""
        return f"{self.topic_prefix}alerts.ocsf"

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic_prefix}access-events.dlq"

    @property
    def staff_feedback_topic(self) -> str:
        """Internal: verdicts re-keyed by staff_id (co-partitioned with access events)."""
        return f"{self.app_id}-staff-feedback"

    @property
    def peer_days_topic(self) -> str:
        """Internal: each partition's daily peer statistics, read by every worker."""
        return f"{self.app_id}-peer-days"

    @property
    def evidence_topic(self) -> str:
        """Internal: the access events of each incident, for the alert store."""
        return f"{self.app_id}-evidence"

    @property
    def reference_topics(self) -> tuple[str, str, str]:
        return (self.staff_topic, self.assignments_topic, self.profiles_topic)

    @property
    def migration_url(self) -> str:
        return self.migrate_database_url or self.database_url


def _describe(exc: ValidationError, env: Mapping[str, str]) -> str:
    parts = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else "?"
        var = f"{ENV_PREFIX}{name.upper()}"
        raw = env.get(var, err.get("input"))
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{var} {msg} (got {raw!r})")
    return "; ".join(parts)
