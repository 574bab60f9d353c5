"""The Kafka client factory: every protocol and mechanism, files, and clear errors."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from pipeline.broker import clients
from pipeline.broker.clients import KafkaAuthError, KafkaSecurityError
from pipeline.errors import RetriableError
from pipeline.settings import Settings, SettingsError
from tests.tls import CA, Issued, issue, make_ca

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("pki")
    ca = make_ca(d)
    other = make_ca(d, "other-ca")
    return {
        "dir": d,
        "ca": ca,
        "other": other,
        "server": issue(ca, d, "server"),
        "untrusted": issue(other, d, "untrusted"),
        "elsewhere": issue(ca, d, "elsewhere", hosts=("elsewhere.example",)),
        "client": issue(ca, d, "client", client=True),
        "locked": issue(ca, d, "locked", client=True, key_password="s3cret"),
    }


def secured(protocol: str, ca: CA | None = None, **changes: Any) -> Settings:
    fields: dict[str, Any] = {"kafka_security_protocol": protocol}
    if protocol.startswith("SASL"):
        fields |= {"kafka_sasl_username": "svc-watch", "kafka_sasl_password": "pw"}
    if ca is not None and protocol in clients.SSL_PROTOCOLS:
        fields["kafka_ssl_cafile"] = ca.path
    return Settings(**{**fields, **changes})


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_protocol_and_mechanism(protocol: str, mechanism: str, pki: dict[str, Any]) -> None:
    s = secured(protocol, pki["ca"], kafka_sasl_mechanism=mechanism)
    kw = clients.security_kwargs(s)
    assert kw["security_protocol"] == protocol
    tls = protocol in {"SSL", "SASL_SSL"}
    sasl = protocol.startswith("SASL")
    assert isinstance(kw.get("ssl_context"), ssl.SSLContext) is tls
    if sasl:
        assert (kw["sasl_mechanism"], kw["sasl_plain_username"], kw["sasl_plain_password"]) == (
            mechanism,
            "svc-watch",
            "pw",
        )
    else:
        assert not {"sasl_mechanism", "sasl_plain_username", "sasl_plain_password"} & kw.keys()

    # Faust gets the same: its own conversion of our credentials gives the same arguments.
    creds = clients.faust_credentials(s)
    if protocol == "PLAINTEXT":
        assert creds is None
        return
    faust_kw = credentials_to_aiokafka_auth(creds)
    assert faust_kw["security_protocol"] == protocol
    assert isinstance(faust_kw.get("ssl_context"), ssl.SSLContext) is tls
    if sasl:
        assert isinstance(creds, faust.SASLCredentials)
        assert faust_kw["sasl_mechanism"] == mechanism
        assert (faust_kw["sasl_plain_username"], faust_kw["sasl_plain_password"]) == (
            "svc-watch",
            "pw",
        )
    else:
        assert isinstance(creds, faust.SSLCredentials)


def test_tls_verifies_the_broker_and_its_host_name_by_default(pki: dict[str, Any]) -> None:
    ctx = clients.ssl_context(secured("SSL", pki["ca"]))
    assert ctx is not None
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname is True
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    subjects = [dict(x[0] for x in c["subject"]) for c in ctx.get_ca_certs()]
    assert {"commonName": "access-watch test CA ca", "organizationName": "access-watch tests"} in (
        subjects
    )


def test_host_name_check_can_be_turned_off_but_not_verification(pki: dict[str, Any]) -> None:
    ctx = clients.ssl_context(secured("SASL_SSL", pki["ca"], kafka_ssl_check_hostname=False))
    assert ctx is not None
    assert ctx.check_hostname is False
    assert ctx.verify_mode == ssl.CERT_REQUIRED


def test_without_a_ca_file_the_system_trust_store_is_used() -> None:
    ctx = clients.ssl_context(secured("SSL"))
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED


def test_plaintext_has_no_tls_context() -> None:
    assert clients.ssl_context(Settings()) is None
    assert clients.security_kwargs(Settings()) == {"security_protocol": "PLAINTEXT"}


async def _client_name_seen_by_server(client_ctx: ssl.SSLContext, pki: dict[str, Any]) -> str:
    """Handshake with a server that requires a client certificate of our CA; returns the
    common name of the certificate the client presented."""
    server: Issued = pki["server"]
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki["ca"].path))
    server_ctx.load_cert_chain(str(server.cert_path), str(server.key_path))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    seen: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        seen.set_result(dict(x[0] for x in peer["subject"])["commonName"])
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = srv.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"
        )
        name = await asyncio.wait_for(seen, 10)
        writer.close()
        return name
    finally:
        srv.close()
        await srv.wait_closed()


async def test_mutual_tls_client_certificate(pki: dict[str, Any]) -> None:
    c: Issued = pki["client"]
    ctx = clients.ssl_context(
        secured("SSL", pki["ca"], kafka_ssl_certfile=c.cert_path, kafka_ssl_keyfile=c.key_path)
    )
    assert ctx is not None
    assert await _client_name_seen_by_server(ctx, pki) == "client"


async def test_encrypted_client_key_with_its_password(pki: dict[str, Any]) -> None:
    c: Issued = pki["locked"]
    s = secured(
        "SASL_SSL",
        pki["ca"],
        kafka_ssl_certfile=c.cert_path,
        kafka_ssl_keyfile=c.key_path,
        kafka_ssl_key_password="s3cret",
    )
    ctx = clients.ssl_context(s)
    assert ctx is not None
    assert await _client_name_seen_by_server(ctx, pki) == "locked"
    with pytest.raises(KafkaSecurityError, match="PIPELINE_KAFKA_SSL_KEY_PASSWORD"):
        clients.ssl_context(s.replace(kafka_ssl_key_password="wrong"))


def test_a_key_that_does_not_match_the_certificate(pki: dict[str, Any]) -> None:
    s = secured(
        "SSL",
        pki["ca"],
        kafka_ssl_certfile=pki["client"].cert_path,
        kafka_ssl_keyfile=pki["server"].key_path,
    )
    with pytest.raises(KafkaSecurityError, match="cannot load the client certificate"):
        clients.ssl_context(s)


def test_password_and_key_password_from_files(tmp_path: Path, pki: dict[str, Any]) -> None:
    (tmp_path / "sasl").write_text("from-a-file\n")
    (tmp_path / "key").write_text("s3cret\n")
    c: Issued = pki["locked"]
    s = Settings.from_env(
        {
            "PIPELINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "PIPELINE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "PIPELINE_KAFKA_SASL_USERNAME": "svc-watch",
            "PIPELINE_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "sasl"),
            "PIPELINE_KAFKA_SSL_CAFILE": str(pki["ca"].path),
            "PIPELINE_KAFKA_SSL_CERTFILE": str(c.cert_path),
            "PIPELINE_KAFKA_SSL_KEYFILE": str(c.key_path),
            "PIPELINE_KAFKA_SSL_KEY_PASSWORD_FILE": str(tmp_path / "key"),
        }
    )
    kw = clients.security_kwargs(s)
    assert kw["sasl_plain_password"] == "from-a-file"
    assert kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert isinstance(kw["ssl_context"], ssl.SSLContext)


def test_the_password_does_not_show_in_faust_credentials() -> None:
    creds = clients.faust_credentials(secured("SASL_PLAINTEXT", kafka_sasl_password="hunter2"))
    assert "hunter2" not in repr(creds)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kafka_sasl_username": None}, "SASL_SSL needs PIPELINE_KAFKA_SASL_USERNAME"),
        ({"kafka_sasl_password": None}, "needs PIPELINE_KAFKA_SASL_PASSWORD .or .*_FILE"),
    ],
)
def test_sasl_needs_username_and_password(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(KafkaSecurityError, match=message):
        clients.security_kwargs(secured("SASL_SSL", **changes))


def test_missing_ca_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "ca.pem"
    with pytest.raises(KafkaSecurityError, match=rf"PIPELINE_KAFKA_SSL_CAFILE: {missing} does not"):
        clients.security_kwargs(secured("SASL_SSL", kafka_ssl_cafile=missing))


def test_ca_file_that_is_not_a_certificate(tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(KafkaSecurityError, match="holds no usable PEM certificate"):
        clients.ssl_context(secured("SSL", kafka_ssl_cafile=junk))
    with pytest.raises(KafkaSecurityError, match="not a regular file"):
        clients.ssl_context(secured("SSL", kafka_ssl_cafile=tmp_path))


def test_missing_client_certificate(tmp_path: Path, pki: dict[str, Any]) -> None:
    s = secured("SSL", pki["ca"], kafka_ssl_certfile=tmp_path / "client.crt")
    with pytest.raises(KafkaSecurityError, match=r"PIPELINE_KAFKA_SSL_CERTFILE: .* does not exist"):
        clients.ssl_context(s)


@pytest.mark.parametrize(
    ("protocol", "changes", "message"),
    [
        ("PLAINTEXT", {"kafka_sasl_username": "u"}, "SASL_USERNAME is set but .*PLAINTEXT"),
        ("SSL", {"kafka_sasl_password": "p"}, "SASL_PASSWORD is set but .*=SSL does not use SASL"),
        ("SASL_PLAINTEXT", {"kafka_ssl_cafile": Path("/ca")}, "SSL_CAFILE is set but .*TLS"),
        ("SSL", {"kafka_ssl_keyfile": Path("/k")}, "SSL_KEYFILE is set without .*CERTFILE"),
        ("SSL", {"kafka_ssl_key_password": "x"}, "SSL_KEY_PASSWORD is set without"),
    ],
)
def test_contradictory_settings(protocol: str, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(KafkaSecurityError, match=message):
        clients.security_kwargs(secured(protocol, **changes))


def test_security_errors_are_settings_errors() -> None:
    # so that the CLI reports them as it reports any bad setting: one line, exit 2
    assert issubclass(KafkaSecurityError, SettingsError)


def test_bootstrap_list() -> None:
    s = Settings(kafka_bootstrap=" k1:9093, k2:9093 ,")
    assert clients.bootstrap_servers(s) == ["k1:9093", "k2:9093"]
    assert clients.faust_broker_options(s)["broker"] == ["kafka://k1:9093", "kafka://k2:9093"]


def test_replication_and_min_insync_replicas() -> None:
    s = Settings(replication_factor=3, min_insync_replicas=2)
    topic = clients.new_topic(s, "x.alerts", 8, {"cleanup.policy": "delete"})
    assert (topic.name, topic.num_partitions, topic.replication_factor) == ("x.alerts", 8, 3)
    assert topic.topic_configs == {"cleanup.policy": "delete", "min.insync.replicas": "2"}
    assert clients.faust_broker_options(s)["topic_replication_factor"] == 3
    assert clients.topic_config(Settings(), {"a": "b"}) == {"a": "b"}
    with pytest.raises(KafkaSecurityError, match="MIN_INSYNC_REPLICAS=3 is more than"):
        clients.topic_config(Settings(replication_factor=2, min_insync_replicas=3), {})


async def test_clients_carry_the_settings(pki: dict[str, Any]) -> None:
    s = secured("SASL_SSL", pki["ca"], kafka_sasl_mechanism="SCRAM-SHA-256")
    producer = clients.producer(s, acks="all")
    consumer = clients.consumer(s, "t", group_id=None)
    admin = clients.admin(s)
    for client in (producer.client, consumer._client, admin._client):
        assert client._security_protocol == "SASL_SSL"
        assert client._sasl_mechanism == "SCRAM-SHA-256"
        assert client._sasl_plain_username == "svc-watch"
        assert isinstance(client._ssl_context, ssl.SSLContext)
    await admin.close()


# -- check_connection, against real sockets (no broker needed) --------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_nothing_listening_is_retriable() -> None:
    s = Settings(kafka_bootstrap=f"127.0.0.1:{_free_port()}")
    with pytest.raises(RetriableError, match=r"cannot reach Kafka: 127\.0\.0\.1"):
        await clients.check_connection(s, timeout=2)


@pytest.fixture(params=["untrusted", "elsewhere"])
async def tls_server(
    request: pytest.FixtureRequest, pki: dict[str, Any]
) -> AsyncIterator[tuple[int, str]]:
    """A TLS listener (it never answers Kafka) presenting a certificate of the other CA,
    or one of our CA that names another host."""
    cert: Issued = pki[request.param]
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert.cert_path), str(cert.key_path))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    yield port, request.param
    server.close()
    await server.wait_closed()


async def test_refused_broker_certificate_is_an_auth_error(
    tls_server: tuple[int, str], pki: dict[str, Any]
) -> None:
    port, kind = tls_server
    s = secured("SASL_SSL", pki["ca"], kafka_bootstrap=f"localhost:{port}")
    fix = "set PIPELINE_KAFKA_SSL_CAFILE" if kind == "untrusted" else "does not name 'localhost'"
    with pytest.raises(KafkaAuthError, match=rf"certificate was not accepted .*{fix}"):
        await clients.check_connection(s, timeout=5)
    if kind == "elsewhere":  # the host name check can be turned off; the CA still counts
        with pytest.raises((RetriableError, KafkaAuthError)) as after_tls:
            await clients.check_connection(s.replace(kafka_ssl_check_hostname=False), timeout=5)
        assert "certificate was not accepted" not in str(after_tls.value)
