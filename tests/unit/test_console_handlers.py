"""The console's handlers, middlewares and templates, on an in-memory store."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from pipeline.console.app import create_app
from pipeline.console.feedback import FeedbackRelay
from pipeline.console.filters import QueueFilter
from pipeline.console.store import EvidenceRow
from pipeline.settings import Settings
from tests.alert_rows import make_alerts
from tests.unit.console_memory import MemoryStore

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
ANALYST = {"X-Forwarded-User": "alice", "X-Forwarded-Groups": "analyst"}
INVESTIGATOR = {"X-Forwarded-User": "ivan", "X-Forwarded-Groups": "analyst, investigator"}
SECRET = "unit-test-secret-0123456789"


class FakeSender:
    """Stands in for the Kafka producer (unit tests only; the e2e tests use the broker)."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.fail = fail

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> None:
        if self.fail:
            from aiokafka.errors import KafkaConnectionError

            raise KafkaConnectionError("broker down")
        self.sent.append((topic, key, value))


def _evidence(a: Any) -> list[EvidenceRow]:
    return [
        EvidenceRow(
            e["event_id"],
            e["occurred_at"],
            e["action"],
            e["channel"],
            e["branch_id"],
            e["customer_ref"],
            e["record_count"],
            e["outcome"],
            e["reason_codes"],
            e["first_revision"],
        )
        for e in a.evidence
    ]


@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore()
    for a in make_alerts(60, seed=3, revisions=2, events=6):
        for p in a.revisions:
            s.add(p)
        s.evidence_rows[a.latest["alert_id"]] = _evidence(a)
        s.reveal_table.update(a.customers)
    return s


@pytest.fixture
def sender() -> FakeSender:
    return FakeSender()


def _settings(**kw: Any) -> Settings:
    return Settings(topic_prefix="unit.", pseudonym_key="test-key", **kw)


async def _client(app: Any) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client(store: MemoryStore, sender: FakeSender) -> AsyncIterator[TestClient[Any, Any]]:
    relay = FeedbackRelay(store, lambda: sender)
    await relay.start()
    c = await _client(create_app(_settings(), store, relay, SECRET))
    yield c
    await c.close()
    await relay.stop()


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "page has no CSRF field"
    return m.group(1)


def _top(store: MemoryStore) -> str:
    return store._matching(QueueFilter(), "")[0].alert_id


async def test_no_identity_header_is_401(client: TestClient[Any, Any]) -> None:
    r = await client.get("/queue")
    assert r.status == 401
    assert "X-Forwarded-User" in await r.text()


async def test_queue_lists_open_alerts_by_severity_then_risk(
    client: TestClient[Any, Any], store: MemoryStore
) -> None:
    r = await client.get("/queue?limit=200", headers=ANALYST)
    assert r.status == 200
    html = await r.text()
    ids = re.findall(r'data-alert="([^"]+)"', html)
    assert len(ids) == 60
    keys = [store._row(i).key for i in ids]
    assert keys == sorted(keys, reverse=True)
    assert 'data-count="open">60<' in html


async def test_queue_paging_walks_every_row_once_both_ways(client: TestClient[Any, Any]) -> None:
    seen: list[str] = []
    url = "/queue?limit=25"
    pages = []
    while url:
        html = await (await client.get(url, headers=ANALYST)).text()
        ids = re.findall(r'data-alert="([^"]+)"', html)
        pages.append(ids)
        seen += ids
        m = re.search(r'href="(/queue\?[^"]*)" rel="next"', html)
        url = m.group(1).replace("&amp;", "&") if m else ""
    assert len(seen) == 60 and len(set(seen)) == 60
    # back from the last page
    m = re.search(r'href="(/queue\?[^"]*)" rel="prev"', html)
    assert m
    back = await (await client.get(m.group(1).replace("&amp;", "&"), headers=ANALYST)).text()
    assert re.findall(r'data-alert="([^"]+)"', back) == pages[-2]


async def test_queue_filters_by_severity_and_branch(
    client: TestClient[Any, Any], store: MemoryStore
) -> None:
    branch = next(iter(store.alerts.values()))["branch_id"]
    html = await (
        await client.get(f"/queue?severity=high&severity=critical&branch={branch}", headers=ANALYST)
    ).text()
    ids = re.findall(r'data-alert="([^"]+)"', html)
    expected = {
        a
        for a, p in store.alerts.items()
        if p["severity"] in ("high", "critical") and p["branch_id"] == branch
    }
    assert set(ids) == expected


async def test_queue_bad_filter_is_400_with_message(client: TestClient[Any, Any]) -> None:
    r = await client.get("/queue?severity=urgent", headers=ANALYST)
    assert r.status == 400
    assert "severity: one of" in await r.text()


async def test_alert_page_shows_reasons_revisions_and_pseudonyms_only(
    client: TestClient[Any, Any], store: MemoryStore
) -> None:
    aid = _top(store)
    r = await client.get(f"/alerts/{aid}", headers=ANALYST)
    html = await r.text()
    assert r.status == 200
    p = store.alerts[aid]
    for reason in p["reasons"]:
        assert reason["code"] in html
    assert "Revisions (2)" in html
    assert "cref-" in html
    for raw in store.reveal_table.values():
        assert raw not in html
    assert "Reveal</button>" not in html  # no reveal role
    assert r.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert any(a["action"] == "view_alert" for a in store.audit_log)


async def test_post_without_csrf_token_is_refused_and_changes_nothing(
    client: TestClient[Any, Any], store: MemoryStore
) -> None:
    aid = _top(store)
    await client.get(f"/alerts/{aid}", headers=ANALYST)  # gets the CSRF cookie
    r = await client.post(f"/alerts/{aid}/action", data={"action": "acknowledge"}, headers=ANALYST)
    assert r.status == 403
    assert store.workflows[aid].state == "open"
    assert store.audit_log[-1]["action"] == "csrf_refused"


async def test_csrf_token_of_another_analyst_is_refused(
    client: TestClient[Any, Any], store: MemoryStore
) -> None:
    aid = _top(store)
    token = _csrf(await (await client.get(f"/alerts/{aid}", headers=ANALYST)).text())
    r = await client.post(
        f"/alerts/{aid}/action",
        data={"action": "acknowledge", "csrf": token},
        headers=INVESTIGATOR,
    )
    assert r.status == 403
    assert store.workflows[aid].state == "open"


async def test_cross_site_post_is_refused(client: TestClient[Any, Any], store: MemoryStore) -> None:
    aid = _top(store)
    token = _csrf(await (await client.get(f"/alerts/{aid}", headers=ANALYST)).text())
    r = await client.post(
        f"/alerts/{aid}/action",
        data={"action": "acknowledge", "csrf": token},
        headers={**ANALYST, "Sec-Fetch-Site": "cross-site"},
    )
    assert r.status == 403
    assert store.workflows[aid].state == "open"


async def test_assign_acknowledge_close_publishes_the_verdict(
    client: TestClient[Any, Any], store: MemoryStore, sender: FakeSender
) -> None:
    aid = _top(store)
    token = _csrf(await (await client.get(f"/alerts/{aid}", headers=ANALYST)).text())
    for action in ("assign", "acknowledge"):
        r = await client.post(
            f"/alerts/{aid}/action",
            data={"action": action, "csrf": token},
            headers=ANALYST,
            allow_redirects=False,
        )
        assert r.status == 303
    assert store.workflows[aid].state == "acknowledged"
    assert store.workflows[aid].assignee == "alice"
    r = await client.post(
        f"/alerts/{aid}/action",
        data={
            "action": "close",
            "csrf": token,
            "verdict": "false_positive",
            "comment": "approved by branch manager",
            "revision": str(store.alerts[aid]["revision"]),
            "q": "severity=critical",
        },
        headers=ANALYST,
        allow_redirects=False,
    )
    assert r.status == 303
    assert r.headers["Location"] == f"/alerts/{aid}?severity=critical&done=closed"
    w = store.workflows[aid]
    assert (w.state, w.verdict, w.closed_by) == ("closed", "false_positive", "alice")
    assert len(sender.sent) == 1
    topic, key, value = sender.sent[0]
    assert (topic, key) == ("unit.alert-feedback", aid.encode())
    record = orjson.loads(value)
    schema = orjson.loads((SCHEMAS / "alert-feedback.schema.json").read_bytes())
    jsonschema.validate(record, schema)
    assert record["verdict"] == "false_positive" and record["analyst_id"] == "alice"
    assert record["comment"] == "approved by branch manager"
    assert record["decided_at"].endswith("Z")
    page = await (await client.get(r.headers["Location"], headers=ANALYST)).text()
    assert "The verdict was published" in page
    assert "state-closed" in page


async def test_close_while_the_broker_is_down_is_queued_then_published(
    store: MemoryStore,
) -> None:
    down = FakeSender(fail=True)
    relay = FeedbackRelay(store, lambda: down)
    await relay.start()
    client = await _client(create_app(_settings(), store, relay, SECRET))
    try:
        aid = _top(store)
        token = _csrf(await (await client.get(f"/alerts/{aid}", headers=ANALYST)).text())
        r = await client.post(
            f"/alerts/{aid}/action",
            data={
                "action": "close",
                "csrf": token,
                "verdict": "true_positive",
                "revision": str(store.alerts[aid]["revision"]),
            },
            headers=ANALYST,
            allow_redirects=False,
        )
        assert r.headers["Location"].endswith("done=closed_pending")
        assert store.workflows[aid].state == "closed"
        assert len(await store.outbox_pending(10)) == 1
        assert store.outbox_rows[0]["last_error"]
        down.fail = False
        assert await relay.publish_pending() == 1
        assert await store.outbox_pending(10) == []
        assert orjson.loads(down.sent[0][2])["verdict"] == "true_positive"
    finally:
        await client.close()
        await relay.stop()


async def test_close_against_an_older_revision_is_409(
    client: TestClient[Any, Any], store: MemoryStore, sender: FakeSender
) -> None:
    aid = _top(store)
    token = _csrf(await (await client.get(f"/alerts/{aid}", headers=ANALYST)).text())
    r = await client.post(
        f"/alerts/{aid}/action",
        data={"action": "close", "csrf": token, "verdict": "true_positive", "revision": "1"},
        headers=ANALYST,
    )
    assert r.status == 409
    assert "changed since you opened it" in await r.text()
    assert store.workflows[aid].state == "open" and sender.sent == []


async def test_close_without_a_verdict_is_400(
    client: TestClient[Any, Any], store: MemoryStore
) -> None:
    aid = _top(store)
    token = _csrf(await (await client.get(f"/alerts/{aid}", headers=ANALYST)).text())
    r = await client.post(
        f"/alerts/{aid}/action",
        data={"action": "close", "csrf": token, "revision": str(store.alerts[aid]["revision"])},
        headers=ANALYST,
    )
    assert r.status == 400
    assert store.workflows[aid].state == "open"


async def test_a_nul_character_in_a_form_is_400_and_changes_nothing(
    client: TestClient[Any, Any], store: MemoryStore, sender: FakeSender
) -> None:
    aid = _top(store)
    token = _csrf(await (await client.get(f"/alerts/{aid}", headers=ANALYST)).text())
    r = await client.post(
        f"/alerts/{aid}/action",
        data={
            "action": "close",
            "csrf": token,
            "verdict": "false_positive",
            "comment": "fine\x00",
            "revision": str(store.alerts[aid]["revision"]),
        },
        headers=ANALYST,
    )
    assert r.status == 400
    assert "NUL" in await r.text()
    assert store.workflows[aid].state == "open"


async def test_acknowledging_a_closed_alert_is_409(
    client: TestClient[Any, Any], store: MemoryStore
) -> None:
    aid = _top(store)
    token = _csrf(await (await client.get(f"/alerts/{aid}", headers=ANALYST)).text())
    await client.post(
        f"/alerts/{aid}/action",
        data={
            "action": "close",
            "csrf": token,
            "verdict": "benign_true_positive",
            "revision": str(store.alerts[aid]["revision"]),
        },
        headers=ANALYST,
    )
    r = await client.post(
        f"/alerts/{aid}/action", data={"action": "acknowledge", "csrf": token}, headers=ANALYST
    )
    assert r.status == 409


async def test_escalated_revision_reopens_in_the_queue(
    client: TestClient[Any, Any], store: MemoryStore
) -> None:
    aid = next(a for a, p in store.alerts.items() if p["severity"] in ("low", "medium"))
    token = _csrf(await (await client.get(f"/alerts/{aid}", headers=ANALYST)).text())
    rev = store.alerts[aid]["revision"]
    await client.post(
        f"/alerts/{aid}/action",
        data={"action": "close", "csrf": token, "verdict": "false_positive", "revision": str(rev)},
        headers=ANALYST,
    )
    active = await (await client.get("/queue?limit=200", headers=ANALYST)).text()
    assert f'data-alert="{aid}"' not in active
    store.escalate({**store.alerts[aid], "revision": rev + 1, "severity": "critical"})
    active = await (await client.get("/queue?limit=200", headers=ANALYST)).text()
    assert f'data-alert="{aid}"' in active
    assert "re-opened" in active


async def test_reveal_without_the_role_is_refused_and_audited(
    client: TestClient[Any, Any], store: MemoryStore
) -> None:
    aid = _top(store)
    token = _csrf(await (await client.get(f"/alerts/{aid}", headers=ANALYST)).text())
    ref = store.alerts[aid]["customer_refs"][0]
    r = await client.post(
        f"/alerts/{aid}/reveal",
        data={"csrf": token, "ref": ref, "reason": "case 123 review"},
        headers=ANALYST,
    )
    assert r.status == 403
    assert store.reveal_table[ref] not in await r.text()
    last = store.audit_log[-1]
    assert (last["action"], last["actor"], last["subject"]) == ("reveal_denied", "alice", ref)


async def test_reveal_with_the_role_shows_the_id_and_audits_who_why_which(
    client: TestClient[Any, Any], store: MemoryStore
) -> None:
    aid = _top(store)
    html = await (await client.get(f"/alerts/{aid}", headers=INVESTIGATOR)).text()
    assert "Reveal</button>" in html
    ref = store.alerts[aid]["customer_refs"][0]
    r = await client.post(
        f"/alerts/{aid}/reveal",
        data={"csrf": _csrf(html), "ref": ref, "reason": "case 123: call the customer"},
        headers=INVESTIGATOR,
    )
    assert r.status == 200
    assert store.reveal_table[ref] in await r.text()
    assert r.headers["Cache-Control"] == "no-store"
    last = store.audit_log[-1]
    assert (last["action"], last["actor"], last["subject"], last["reason"]) == (
        "reveal",
        "ivan",
        ref,
        "case 123: call the customer",
    )


async def test_reveal_needs_a_reason_and_a_customer_of_the_alert(
    client: TestClient[Any, Any], store: MemoryStore
) -> None:
    aid = _top(store)
    token = _csrf(await (await client.get(f"/alerts/{aid}", headers=INVESTIGATOR)).text())
    ref = store.alerts[aid]["customer_refs"][0]
    r = await client.post(
        f"/alerts/{aid}/reveal",
        data={"csrf": token, "ref": ref, "reason": "x"},
        headers=INVESTIGATOR,
    )
    assert r.status == 400
    other = next(
        r
        for a, p in store.alerts.items()
        if a != aid
        for r in p["customer_refs"]
        if r not in store.alerts[aid]["customer_refs"]
    )
    r = await client.post(
        f"/alerts/{aid}/reveal",
        data={"csrf": token, "ref": other, "reason": "fishing trip"},
        headers=INVESTIGATOR,
    )
    assert r.status == 404
    assert not any(a["action"] == "reveal" for a in store.audit_log)


async def test_raw_customer_ids_in_alerts_are_pseudonymized_on_the_page(
    client: TestClient[Any, Any], store: MemoryStore
) -> None:
    aid = _top(store)
    store.alerts[aid] = {**store.alerts[aid], "customer_refs": ["C0001234", "C0009999"]}
    html = await (await client.get(f"/alerts/{aid}", headers=ANALYST)).text()
    assert "C0001234" not in html and "C0009999" not in html


async def test_staff_page_shows_incidents_and_activity(
    client: TestClient[Any, Any], store: MemoryStore
) -> None:
    aid = _top(store)
    staff = store.alerts[aid]["staff_id"]
    r = await client.get(f"/staff/{staff}", headers=ANALYST)
    html = await r.text()
    assert r.status == 200
    assert html.count('data-href="/alerts/') == sum(
        1 for p in store.alerts.values() if p["staff_id"] == staff
    )
    assert "<svg" in html
    assert (await client.get("/staff/NOBODY", headers=ANALYST)).status == 404


async def test_unknown_alert_is_404(client: TestClient[Any, Any]) -> None:
    r = await client.get("/alerts/al-missing", headers=ANALYST)
    assert r.status == 404


async def test_next_and_previous_follow_the_queue_filter(
    client: TestClient[Any, Any], store: MemoryStore
) -> None:
    html = await (await client.get("/queue?severity=critical", headers=ANALYST)).text()
    ids = re.findall(r'data-alert="([^"]+)"', html)
    assert len(ids) >= 3
    page = await (await client.get(f"/alerts/{ids[1]}?severity=critical", headers=ANALYST)).text()
    assert f'href="/alerts/{ids[2]}?severity=critical" rel="next"' in page
    assert f'href="/alerts/{ids[0]}?severity=critical" rel="prev"' in page


async def test_login_mode_needs_dev_mode() -> None:
    from pipeline.settings import SettingsError

    with pytest.raises(SettingsError, match="DEV_MODE"):
        create_app(_settings(console_identity_header=""), MemoryStore(), None, SECRET)


async def test_login_mode_signs_in_with_a_cookie_and_audits(store: MemoryStore) -> None:
    app = create_app(_settings(console_identity_header="", dev_mode=True), store, None, SECRET)
    client = await _client(app)
    try:
        r = await client.get("/queue", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"].startswith("/login")
        html = await (await client.get("/login")).text()
        r = await client.post(
            "/login",
            data={"csrf": _csrf(html), "name": "dora", "reveal": "yes", "next": "/queue"},
            allow_redirects=False,
        )
        assert r.status == 303
        page = await (await client.get("/queue")).text()
        assert "dora" in page and "investigator" in page
        assert store.audit_log[-1]["action"] == "login"
        # a forged session cookie is not accepted
        client.session.cookie_jar.clear()
        client.session.cookie_jar.update_cookies({"aw_session": "e30.forged"})
        r = await client.get("/queue", allow_redirects=False)
        assert r.status == 303
    finally:
        await client.close()


async def test_a_session_older_than_its_lifetime_is_refused() -> None:
    from pipeline.console.identity import (
        SESSION_MAX_AGE,
        Analyst,
        IdentityError,
        Signer,
        analyst_from_session,
        session_token,
    )

    signer = Signer(SECRET)
    old = datetime.now(tz=UTC) - timedelta(seconds=SESSION_MAX_AGE + 5)
    token = session_token(signer, Analyst("a", frozenset(), "login"), now=old.timestamp())
    with pytest.raises(IdentityError, match="expired"):
        analyst_from_session(signer, token)


async def test_login_redirects_only_to_local_paths(store: MemoryStore) -> None:
    app = create_app(_settings(console_identity_header="", dev_mode=True), store, None, SECRET)
    client = await _client(app)
    try:
        html = await (await client.get("/login")).text()
        for target, expected in (
            ("/alerts/x?y=1", "/alerts/x?y=1"),
            ("//evil.example/", "/queue"),
            ("/\\evil.example", "/queue"),
            ("https://evil.example/", "/queue"),
        ):
            r = await client.post(
                "/login",
                data={"csrf": _csrf(html), "name": "dora", "next": target},
                allow_redirects=False,
            )
            assert r.headers["Location"] == expected
    finally:
        await client.close()


async def test_cookies_are_secure_behind_an_https_proxy(client: TestClient[Any, Any]) -> None:
    plain = await client.get("/queue", headers=ANALYST)
    assert "Secure" not in plain.headers["Set-Cookie"]
    client.session.cookie_jar.clear()
    r = await client.get("/queue", headers={**ANALYST, "X-Forwarded-Proto": "https"})
    cookie = r.headers["Set-Cookie"]
    assert "aw_csrf=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
