"""The one place that builds Kafka clients, with the security settings applied.

Every producer, consumer and admin client of the pipeline, of ``simbank`` and
of the tests comes from here, and so does the Faust app's broker
configuration, so that a bank's TLS/SASL settings reach all of them:

    PIPELINE_KAFKA_SECURITY_PROTOCOL   PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    PIPELINE_KAFKA_SASL_MECHANISM      PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    PIPELINE_KAFKA_SASL_USERNAME
    PIPELINE_KAFKA_SASL_PASSWORD       (or PIPELINE_KAFKA_SASL_PASSWORD_FILE)
    PIPELINE_KAFKA_SSL_CAFILE          PEM bundle of the CA(s) that signed the brokers'
                                       certificates; empty: the system's trust store
    PIPELINE_KAFKA_SSL_CERTFILE        client certificate (mutual TLS), PEM
    PIPELINE_KAFKA_SSL_KEYFILE         its private key, PEM (empty: in the cert file)
    PIPELINE_KAFKA_SSL_KEY_PASSWORD    (or ..._FILE) when that key is encrypted
    PIPELINE_KAFKA_SSL_CHECK_HOSTNAME  true: the broker's certificate must name the host

Wrong or incomplete settings raise :class:`KafkaSecurityError` (a
:class:`~pipeline.settings.SettingsError`) naming the variable, before any
connection is tried. A broker that refuses the client (untrusted certificate,
wrong password, mechanism not enabled) is reported by
:func:`check_connection` as :class:`KafkaAuthError`: not retriable, unlike an
unreachable broker (:class:`~pipeline.errors.RetriableError`).

aiokafka hides the cause of a failed bootstrap in a log line ("Unable to
bootstrap from ..."), so callers that get ``KafkaConnectionError`` ask
:func:`check_connection` for the reason.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from pipeline.errors import PipelineError, RetriableError
from pipeline.settings import Settings, SettingsError

SSL_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
_VAR = "PIPELINE_KAFKA_"
_HOSTNAME_MISMATCH = 62  # X509_V_ERR_HOSTNAME_MISMATCH


class KafkaSecurityError(SettingsError):
    """The Kafka security settings are incomplete, contradictory or name unusable files."""


class KafkaAuthError(PipelineError):
    """The broker refused this client (TLS or SASL); retrying with the same settings fails."""


# -- settings -> aiokafka keyword arguments -----------------------------------------


def bootstrap_servers(settings: Settings) -> list[str]:
    """``PIPELINE_KAFKA_BOOTSTRAP`` as a list of ``host:port``."""
    hosts = [h.strip() for h in settings.kafka_bootstrap.split(",") if h.strip()]
    if not hosts:
        raise KafkaSecurityError("PIPELINE_KAFKA_BOOTSTRAP names no broker")
    return hosts


def _validate(settings: Settings) -> None:
    proto = settings.kafka_security_protocol
    if proto in SASL_PROTOCOLS:
        if not settings.kafka_sasl_username:
            raise KafkaSecurityError(f"{_VAR}SECURITY_PROTOCOL={proto} needs {_VAR}SASL_USERNAME")
        if not settings.kafka_sasl_password:
            raise KafkaSecurityError(
                f"{_VAR}SECURITY_PROTOCOL={proto} needs {_VAR}SASL_PASSWORD "
                f"(or {_VAR}SASL_PASSWORD_FILE)"
            )
    else:
        for name in ("sasl_username", "sasl_password"):
            if getattr(settings, f"kafka_{name}"):
                raise KafkaSecurityError(
                    f"{_VAR}{name.upper()} is set but {_VAR}SECURITY_PROTOCOL={proto} "
                    "does not use SASL (SASL_SSL or SASL_PLAINTEXT do)"
                )
    if proto not in SSL_PROTOCOLS:
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password"):
            if getattr(settings, f"kafka_{name}"):
                raise KafkaSecurityError(
                    f"{_VAR}{name.upper()} is set but {_VAR}SECURITY_PROTOCOL={proto} "
                    "does not use TLS (SSL or SASL_SSL do)"
                )
        return
    if settings.kafka_ssl_keyfile and not settings.kafka_ssl_certfile:
        raise KafkaSecurityError(f"{_VAR}SSL_KEYFILE is set without {_VAR}SSL_CERTFILE")
    if settings.kafka_ssl_key_password and not settings.kafka_ssl_certfile:
        raise KafkaSecurityError(f"{_VAR}SSL_KEY_PASSWORD is set without {_VAR}SSL_CERTFILE")


def _readable(var: str, path: Path) -> str:
    if not path.exists():
        raise KafkaSecurityError(f"{_VAR}{var}: {path} does not exist")
    if not path.is_file():
        raise KafkaSecurityError(f"{_VAR}{var}: {path} is not a regular file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise KafkaSecurityError(f"{_VAR}{var}: cannot read {path}: {exc.strerror}") from None
    return str(path)


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL (None for the other protocols).

    Verifies the broker's certificate against ``kafka_ssl_cafile`` (or the system's
    trust store) and, unless ``kafka_ssl_check_hostname`` is false, that it names the
    host connected to. TLS 1.2 at least. A client certificate (mutual TLS) is loaded
    when ``kafka_ssl_certfile`` is set.
    """
    _validate(settings)
    if settings.kafka_security_protocol not in SSL_PROTOCOLS:
        return None
    cafile = (
        _readable("SSL_CAFILE", settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    )
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    except ssl.SSLError as exc:
        raise KafkaSecurityError(
            f"{_VAR}SSL_CAFILE: {cafile} holds no usable PEM certificate ({exc.reason or exc})"
        ) from None
    if cafile is not None and not ctx.get_ca_certs():
        raise KafkaSecurityError(f"{_VAR}SSL_CAFILE: {cafile} holds no CA certificate")
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = settings.kafka_ssl_check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    if settings.kafka_ssl_certfile:
        certfile = _readable("SSL_CERTFILE", settings.kafka_ssl_certfile)
        keyfile = (
            _readable("SSL_KEYFILE", settings.kafka_ssl_keyfile)
            if settings.kafka_ssl_keyfile
            else None
        )
        try:
            ctx.load_cert_chain(certfile, keyfile, password=settings.kafka_ssl_key_password)
        except ssl.SSLError as exc:
            raise KafkaSecurityError(
                f"{_VAR}SSL_CERTFILE/{_VAR}SSL_KEYFILE: cannot load the client certificate "
                f"and key ({exc.reason or exc}): not PEM, a key that does not match the "
                f"certificate, or a wrong/missing {_VAR}SSL_KEY_PASSWORD"
            ) from None
    return ctx


def security_kwargs(settings: Settings) -> dict[str, Any]:
    """aiokafka's security keyword arguments (the same for producer, consumer, admin)."""
    ctx = ssl_context(settings)  # validates
    out: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if ctx is not None:
        out["ssl_context"] = ctx
    if settings.kafka_security_protocol in SASL_PROTOCOLS:
        out["sasl_mechanism"] = settings.kafka_sasl_mechanism
        out["sasl_plain_username"] = settings.kafka_sasl_username
        out["sasl_plain_password"] = settings.kafka_sasl_password
    return out


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """``bootstrap_servers`` and the security arguments."""
    return {"bootstrap_servers": bootstrap_servers(settings), **security_kwargs(settings)}


def producer(settings: Settings, **options: Any) -> AIOKafkaProducer:
    """An (unstarted) aiokafka producer; ``options`` are AIOKafkaProducer's own."""
    return AIOKafkaProducer(**client_kwargs(settings), **options)


def consumer(settings: Settings, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """An (unstarted) aiokafka consumer; ``options`` are AIOKafkaConsumer's own."""
    return AIOKafkaConsumer(*topics, **client_kwargs(settings), **options)


def admin(settings: Settings, **options: Any) -> AIOKafkaAdminClient:
    """An (unstarted) aiokafka admin client."""
    return AIOKafkaAdminClient(**client_kwargs(settings), **options)


# -- topics --------------------------------------------------------------------------


def topic_config(settings: Settings, config: dict[str, str]) -> dict[str, str]:
    """``config`` plus ``min.insync.replicas`` when ``PIPELINE_MIN_INSYNC_REPLICAS`` is set."""
    out = dict(config)
    if settings.min_insync_replicas is not None:
        if settings.min_insync_replicas > settings.replication_factor:
            raise KafkaSecurityError(
                f"PIPELINE_MIN_INSYNC_REPLICAS={settings.min_insync_replicas} is more than "
                f"PIPELINE_REPLICATION_FACTOR={settings.replication_factor}: no write "
                "could ever be acknowledged"
            )
        out["min.insync.replicas"] = str(settings.min_insync_replicas)
    return out


def new_topic(settings: Settings, name: str, partitions: int, config: dict[str, str]) -> NewTopic:
    """A topic to create with the configured replication factor and min ISR."""
    return NewTopic(
        name=name,
        num_partitions=partitions,
        replication_factor=settings.replication_factor,
        topic_configs=topic_config(settings, config),
    )


# -- Faust ---------------------------------------------------------------------------


def faust_credentials(settings: Settings) -> faust.auth.Credentials | None:
    """Faust's ``broker_credentials`` for the configured protocol (None: PLAINTEXT)."""
    ctx = ssl_context(settings)  # validates
    proto = settings.kafka_security_protocol
    if proto == "PLAINTEXT":
        return None
    if proto == "SSL":
        return faust.SSLCredentials(ctx)
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password,
        ssl_context=ctx,  # None: SASL_PLAINTEXT, a context: SASL_SSL
        mechanism=settings.kafka_sasl_mechanism,
    )


def faust_broker_options(settings: Settings) -> dict[str, Any]:
    """The Faust App options that concern the broker: addresses, credentials, and the
    replication factor of the topics Faust creates itself (changelogs, leader topic)."""
    return {
        "broker": [f"kafka://{host}" for host in bootstrap_servers(settings)],
        "broker_credentials": faust_credentials(settings),
        "topic_replication_factor": settings.replication_factor,
    }


# -- diagnosis -------------------------------------------------------------------------


def _split(host: str) -> tuple[str, int]:
    name, _, port = host.rpartition(":")
    if not name or not port.isdigit():
        raise KafkaSecurityError(f"PIPELINE_KAFKA_BOOTSTRAP: {host!r} is not host:port")
    return name.strip("[]"), int(port)


async def check_connection(settings: Settings, timeout: float = 10.0) -> None:
    """Connect (and authenticate) to a bootstrap broker once, or say why not.

    Raises :class:`KafkaAuthError` when a broker refuses the TLS handshake or the
    SASL credentials, :class:`RetriableError` when no broker can be reached, and
    :class:`KafkaSecurityError` for unusable settings.
    """
    kwargs = security_kwargs(settings)
    proto = settings.kafka_security_protocol
    failures: list[str] = []
    for host in bootstrap_servers(settings):
        name, port = _split(host)
        try:
            conn = await asyncio.wait_for(
                create_conn(name, port, request_timeout_ms=int(timeout * 1000), **kwargs),
                timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            if exc.verify_code == _HOSTNAME_MISMATCH:
                fix = (
                    f"it does not name {name!r}: connect by a name the certificate holds "
                    f"(or, last resort, {_VAR}SSL_CHECK_HOSTNAME=false)"
                )
            else:
                fix = f"set {_VAR}SSL_CAFILE to the CA that signed it"
            raise KafkaAuthError(
                f"Kafka at {host}: the broker's TLS certificate was not accepted "
                f"({exc.verify_message}); {fix}"
            ) from None
        except ssl.SSLError as exc:
            raise KafkaAuthError(
                f"Kafka at {host}: TLS handshake failed ({exc.reason or exc}); does the "
                f"listener speak {proto}? (a client certificate may be required: "
                f"{_VAR}SSL_CERTFILE)"
            ) from None
        except (SaslAuthenticationFailed, IllegalSaslStateError) as exc:
            raise KafkaAuthError(
                f"Kafka at {host}: SASL authentication of user "
                f"{settings.kafka_sasl_username!r} with {settings.kafka_sasl_mechanism} was "
                f"refused ({_reason(exc)}); check {_VAR}SASL_USERNAME, the password and "
                f"{_VAR}SASL_MECHANISM"
            ) from None
        except UnsupportedSaslMechanismError as exc:
            raise KafkaAuthError(f"Kafka at {host}: {_reason(exc)}") from None
        except (OSError, KafkaError, TimeoutError) as exc:
            failures.append(f"{host}: {_reason(exc)}")
            continue
        conn.close()
        return
    if proto not in SSL_PROTOCOLS:
        hint = f" (if the listener uses TLS, set {_VAR}SECURITY_PROTOCOL to SSL or SASL_SSL)"
    elif not settings.kafka_ssl_certfile:
        hint = f" (if the listener requires a client certificate, set {_VAR}SSL_CERTFILE)"
    else:
        hint = ""
    raise RetriableError(f"cannot reach Kafka: {'; '.join(failures)}{hint}")


def _reason(exc: BaseException) -> str:
    name = type(exc).__name__
    text = str(exc).strip()
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"
