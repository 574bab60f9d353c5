"""A worker through a secured broker: SASL_SSL with SCRAM-SHA-512, and mutual TLS.

The test makes its own CA and broker certificate, starts a second Kafka from the
same jars (``infra/kafka-secure.sh``, SCRAM users created when its storage is
formatted) on ports 29101-29103 (``PIPELINE_KAFKA_SECURE_*`` to move them; below
the kernel's ephemeral range, so no outgoing connection can hold them), runs a real
``pipeline worker`` that reads its password from ``PIPELINE_KAFKA_SASL_PASSWORD_FILE``,
and reads the alert back through the secured listener. Clients with a wrong password,
or without the CA, are refused with a message that says so.
The broker is stopped however the tests end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.broker import clients
from pipeline.broker.clients import KafkaAuthError
from pipeline.broker.topics import ensure_topics
from pipeline.errors import RetriableError
from pipeline.settings import Settings
from simbank.workers import WorkerProcess, worker_env
from tests.integration.kit import DATABASE_URL, PARTITIONS, ROOT, free_port, read_topic
from tests.integration.test_end_to_end import event, publish_reference
from tests.tls import issue, make_ca

SASL_PORT = int(os.environ.get("PIPELINE_KAFKA_SECURE_PORT", "29101"))
MTLS_PORT = int(os.environ.get("PIPELINE_KAFKA_MTLS_PORT", "29102"))
CONTROLLER_PORT = int(os.environ.get("PIPELINE_KAFKA_SECURE_CONTROLLER_PORT", "29103"))


@dataclass(frozen=True)
class SecureBroker:
    tls: Path
    password_file: Path

    @property
    def ca(self) -> Path:
        return self.tls / "ca.pem"

    def sasl(self, **changes: Any) -> Settings:
        """Settings of a client of the SASL_SSL listener (password as a value)."""
        return Settings(
            kafka_bootstrap=f"localhost:{SASL_PORT}",
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="pipeline",
            kafka_sasl_password=self.password_file.read_text(),
            kafka_ssl_cafile=self.ca,
        ).replace(**changes)

    def mtls(self, **changes: Any) -> Settings:
        return Settings(
            kafka_bootstrap=f"localhost:{MTLS_PORT}",
            kafka_security_protocol="SSL",
            kafka_ssl_cafile=self.ca,
            kafka_ssl_certfile=self.tls / "client.crt",
            kafka_ssl_keyfile=self.tls / "client.key",
            kafka_ssl_key_password="client-key-secret",
        ).replace(**changes)


def _script(action: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "INFRA_KAFKA_SECURE_DIR": str(home),
        "PIPELINE_KAFKA_SECURE_PORT": str(SASL_PORT),
        "PIPELINE_KAFKA_MTLS_PORT": str(MTLS_PORT),
        "PIPELINE_KAFKA_SECURE_CONTROLLER_PORT": str(CONTROLLER_PORT),
    }
    return subprocess.run(
        ["bash", str(ROOT / "infra" / "kafka-secure.sh"), action],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    home = tmp_path_factory.mktemp("kafka-secure")
    tls = home / "tls"
    ca = make_ca(tls)
    issue(ca, tls, "broker").bundle(tls / "broker.pem")
    issue(ca, tls, "client", client=True, key_password="client-key-secret")
    make_ca(tls, "other-ca")
    try:
        started = _script("start", home)
        if started.returncode != 0:
            pytest.fail(f"secure broker did not start:\n{started.stderr}")
        yield SecureBroker(tls, tls / "client.password")
    finally:
        stopped = _script("stop", home)
        assert stopped.returncode == 0, stopped.stderr


def _prefixed(s: Settings, tmp_path: Path) -> Settings:
    run = uuid.uuid4().hex[:10]
    return s.replace(
        database_url=DATABASE_URL,
        topic_prefix=f"sec{run}.",
        app_id=f"test-sec-{run}",
        web_port=free_port(),
        data_dir=tmp_path / "data",
        partitions=PARTITIONS,
        pseudonym_key="test-key",
    )


async def test_worker_through_sasl_ssl(broker: SecureBroker, tmp_path: Path) -> None:
    s = _prefixed(broker.sasl(), tmp_path)
    await ensure_topics(s, PARTITIONS)
    producer = clients.producer(s, linger_ms=5)
    await producer.start()
    try:
        await publish_reference(producer, s)
        # The worker's password comes from a file, not from its environment.
        worker = WorkerProcess(
            s.replace(kafka_sasl_password=None),
            tmp_path / "worker.log",
            extra_env={"PIPELINE_KAFKA_SASL_PASSWORD_FILE": str(broker.password_file)},
        )
        try:
            worker.wait_healthy(180)
            for n, customer, action in ((2, "C2", "view_profile"), (3, "C3", "view_profile")):
                await producer.send_and_wait(
                    s.access_topic, key=b"S1", value=orjson.dumps(event(n, customer, action))
                )
            # A credit report without the customer's authorization: an alert.
            await producer.send_and_wait(
                s.access_topic,
                key=b"S1",
                value=orjson.dumps(event(4, "C1", "credit_report_query")),
            )
            records = await read_topic(
                s.alerts_topic, until=lambda recs: len(recs) >= 1, settings=s
            )
        finally:
            worker.stop()
    finally:
        await producer.stop()
    alert = orjson.loads(records[0][1] or b"")
    assert alert["staff_id"] == "S1"
    assert "credit_report_without_authorization" in {r["code"] for r in alert["reasons"]}
    assert "e2e-4" in alert["event_ids"]
    log = worker.log_path.read_text(errors="replace")
    assert broker.password_file.read_text() not in log, "the SASL password is never logged"
    env = worker_env(
        s.replace(kafka_sasl_password=None), None, {"PIPELINE_KAFKA_SASL_PASSWORD_FILE": "x"}
    )
    assert "PIPELINE_KAFKA_SASL_PASSWORD" not in env


async def test_wrong_password_is_refused_clearly(broker: SecureBroker, tmp_path: Path) -> None:
    wrong = broker.sasl(kafka_sasl_password="not-the-password")
    with pytest.raises(KafkaAuthError, match=r"SASL authentication of user 'pipeline' .*refused"):
        await clients.check_connection(wrong)
    with pytest.raises(KafkaAuthError, match="SASL authentication"):
        await ensure_topics(_prefixed(wrong, tmp_path))

    # A worker says so in one line and exits 2, without a traceback.
    (tmp_path / "pw").write_text("not-the-password\n")
    env = worker_env(
        _prefixed(broker.sasl(kafka_sasl_password=None), tmp_path),
        None,
        {"PIPELINE_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "pw")},
    )
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "SASL authentication of user 'pipeline' with SCRAM-SHA-512 was refused" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("cafile", [None, "other-ca.pem"])
async def test_broker_certificate_not_trusted_without_its_ca(
    broker: SecureBroker, cafile: str | None
) -> None:
    s = broker.sasl(kafka_ssl_cafile=broker.tls / cafile if cafile else None)
    with pytest.raises(KafkaAuthError, match=r"TLS certificate was not accepted .*SSL_CAFILE"):
        await clients.check_connection(s)


async def test_mutual_tls(broker: SecureBroker, tmp_path: Path) -> None:
    s = _prefixed(broker.mtls(), tmp_path)
    created = await ensure_topics(s, 1)
    assert s.alerts_topic in created
    producer = clients.producer(s)
    await producer.start()
    try:
        await producer.send_and_wait(s.alerts_topic, key=b"k", value=b"{}")
    finally:
        await producer.stop()
    records = await read_topic(s.alerts_topic, until=lambda recs: len(recs) >= 1, settings=s)
    assert records == [(b"k", b"{}")]

    anonymous = s.replace(
        kafka_ssl_certfile=None, kafka_ssl_keyfile=None, kafka_ssl_key_password=None
    )
    # TLS 1.3 reports a missing client certificate after the handshake: the broker just
    # closes the connection, so this is not told apart from a broker going away.
    with pytest.raises((KafkaAuthError, RetriableError), match="client certificate"):
        await clients.check_connection(anonymous, timeout=5)
