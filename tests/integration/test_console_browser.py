"""End to end in headless Chromium: a console process on the real Postgres and broker.

The console runs as ``python -m pipeline console`` and logs in to Postgres as
a member of ``access_watch_console`` (so it can only do what that role may);
alerts, revisions and evidence are written as the pipeline's sink writes them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import jsonschema
import orjson
import pytest
from playwright.async_api import async_playwright, expect

from pipeline.broker.topics import ensure_topics
from pipeline.settings import Settings
from tests.alert_rows import SyntheticAlert, make_alerts, write_alerts, write_revision
from tests.integration.console_browser import ConsoleProcess, launch_browser
from tests.integration.kit import PARTITIONS, free_port, read_topic

pytestmark = pytest.mark.browser
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
ALICE = {"X-Forwarded-User": "alice", "X-Forwarded-Groups": "analyst"}
IVAN = {"X-Forwarded-User": "ivan", "X-Forwarded-Groups": "analyst investigator"}


@pytest.fixture
async def seeded(pg_schema: str) -> list[SyntheticAlert]:
    alerts = make_alerts(30, seed=21, revisions=3, events=8, staff=12, branches=3)
    conn = await asyncpg.connect(pg_schema)
    try:
        await write_alerts(conn, alerts)
    finally:
        await conn.close()
    return alerts


@pytest.fixture
async def console(
    settings: Settings, console_role_url: str, seeded: list[SyntheticAlert], tmp_path: Path
) -> AsyncIterator[ConsoleProcess]:
    await ensure_topics(settings, PARTITIONS)
    proc = ConsoleProcess(
        {
            "PIPELINE_DATABASE_URL": console_role_url,
            "PIPELINE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "PIPELINE_TOPIC_PREFIX": settings.topic_prefix,
            "PIPELINE_PSEUDONYM_KEY": "test-key",
            "PIPELINE_BANK_TIMEZONE": "UTC",
        },
        free_port(),
        tmp_path / "console.log",
    )
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def pw() -> AsyncIterator[Any]:
    async with async_playwright() as p:
        yield p


async def _workflow(url: str, aid: str) -> asyncpg.Record:
    conn = await asyncpg.connect(url)
    try:
        row: asyncpg.Record = await conn.fetchrow(
            "SELECT * FROM console_workflow WHERE alert_id = $1", aid
        )
        return row
    finally:
        await conn.close()


async def test_open_queue_open_alert_send_verdict_and_it_reaches_the_topic(
    console: ConsoleProcess, pw: Any, pg_schema: str, settings: Settings
) -> None:
    browser = await launch_browser(pw, ALICE)
    try:
        page = await browser.new_page()
        await page.goto(f"{console.url}/queue")
        rows = page.locator("table.queue tbody tr[data-alert]")
        await expect(rows).to_have_count(30)
        active_before = int(await page.locator('[data-count="active"]').inner_text())
        # keyboard: j selects the second row, Enter opens it
        second = await rows.nth(1).get_attribute("data-alert")
        await page.keyboard.press("j")
        await page.keyboard.press("Enter")
        await page.wait_for_url(re.compile(rf"/alerts/{second}"))
        assert second is not None
        await expect(page.locator("#reasons")).to_contain_text("Why: reasons")
        await expect(page.locator("#revisions")).to_contain_text("Revisions (3)")
        await expect(page.locator("#evidence tbody tr")).to_have_count(8)
        await page.check('input[name="verdict"][value="false_positive"]')
        await page.fill('#close-form textarea[name="comment"]', "Known batch job, approved")
        await page.click('#close-form button[type="submit"]')
        await expect(page.locator("#notice")).to_contain_text("The verdict was published")
        await expect(page.locator("#workflow-state")).to_contain_text("closed")
        # the row changed
        row = await _workflow(pg_schema, second)
        assert (row["state"], row["verdict"], row["closed_by"]) == (
            "closed",
            "false_positive",
            "alice",
        )
        await page.goto(f"{console.url}/queue")
        await expect(page.locator('[data-count="active"]')).to_have_text(str(active_before - 1))
        await expect(page.locator(f'tr[data-alert="{second}"]')).to_have_count(0)
        await page.goto(f"{console.url}/queue?state=closed")
        closed_row = page.locator(f'tr[data-alert="{second}"]')
        await expect(closed_row).to_contain_text("false_positive")
    finally:
        await browser.close()
    # the verdict arrived on the feedback topic, as the contract says
    records = await read_topic(settings.feedback_topic, lambda rs: len(rs) >= 1, timeout=30)
    key, value = records[0]
    assert key == second.encode()
    assert value is not None
    fb = orjson.loads(value)
    jsonschema.validate(fb, orjson.loads((SCHEMAS / "alert-feedback.schema.json").read_bytes()))
    assert (fb["alert_id"], fb["verdict"], fb["analyst_id"], fb["comment"]) == (
        second,
        "false_positive",
        "alice",
        "Known batch job, approved",
    )


async def test_reveal_is_refused_without_the_role_and_audited_with_it(
    console: ConsoleProcess, pw: Any, pg_schema: str, seeded: list[SyntheticAlert]
) -> None:
    a = seeded[0]
    aid = a.latest["alert_id"]
    ref = a.latest["customer_refs"][0]
    raw = a.customers[ref]
    alice = await launch_browser(pw, ALICE)
    ivan = await launch_browser(pw, IVAN)
    try:
        page = await alice.new_page()
        await page.goto(f"{console.url}/alerts/{aid}")
        await expect(page.locator("#customers")).to_contain_text(ref)
        await expect(page.locator(".reveal-form")).to_have_count(0)
        assert raw not in await page.content()
        token = await page.locator('input[name="csrf"]').first.get_attribute("value")
        r = await page.request.post(
            f"{console.url}/alerts/{aid}/reveal",
            form={"csrf": token or "", "ref": ref, "reason": "just curious"},
        )
        assert r.status == 403
        assert raw not in await r.text()

        page = await ivan.new_page()
        await page.goto(f"{console.url}/alerts/{aid}")
        form = page.locator(".reveal-form").filter(has=page.locator(f'input[value="{ref}"]'))
        await form.locator('input[name="reason"]').fill("case 2026-114: confirm identity")
        await form.locator("button").click()
        await expect(page.locator("#raw-id")).to_have_text(raw)
    finally:
        await alice.close()
        await ivan.close()
    conn = await asyncpg.connect(pg_schema)
    try:
        rows = await conn.fetch(
            "SELECT actor, action, subject, reason FROM console_audit"
            " WHERE action IN ('reveal', 'reveal_denied') ORDER BY id"
        )
    finally:
        await conn.close()
    assert [(r["actor"], r["action"], r["subject"]) for r in rows] == [
        ("alice", "reveal_denied", ref),
        ("ivan", "reveal", ref),
    ]
    assert rows[1]["reason"] == "case 2026-114: confirm identity"


async def test_forms_without_a_valid_csrf_token_are_refused(
    console: ConsoleProcess, pw: Any, pg_schema: str, seeded: list[SyntheticAlert]
) -> None:
    aid = seeded[0].latest["alert_id"]
    alice = await launch_browser(pw, ALICE)
    ivan = await launch_browser(pw, IVAN)
    try:
        page = await alice.new_page()
        await page.goto(f"{console.url}/alerts/{aid}")
        r = await page.request.post(
            f"{console.url}/alerts/{aid}/action", form={"action": "acknowledge"}
        )
        assert r.status == 403
        other = await ivan.new_page()
        await other.goto(f"{console.url}/alerts/{aid}")
        ivans = await other.locator('input[name="csrf"]').first.get_attribute("value")
        r = await page.request.post(
            f"{console.url}/alerts/{aid}/action",
            form={"action": "acknowledge", "csrf": ivans or ""},
        )
        assert r.status == 403
        assert (await _workflow(pg_schema, aid))["state"] == "open"
        # the page's own form works
        await page.click("#acknowledge button")
        await expect(page.locator("#workflow-state")).to_contain_text("acknowledged")
    finally:
        await alice.close()
        await ivan.close()
    assert (await _workflow(pg_schema, aid))["state"] == "acknowledged"


async def test_an_escalated_revision_reopens_the_closed_alert(
    console: ConsoleProcess, pw: Any, pg_schema: str, seeded: list[SyntheticAlert]
) -> None:
    a = next(x for x in seeded if x.latest["severity"] != "critical")
    aid = a.latest["alert_id"]
    browser = await launch_browser(pw, ALICE)
    try:
        page = await browser.new_page()
        await page.goto(f"{console.url}/alerts/{aid}")
        await page.check('input[name="verdict"][value="benign_true_positive"]')
        await page.click('#close-form button[type="submit"]')
        await expect(page.locator("#workflow-state")).to_contain_text("closed")
        # the pipeline emits a later, critical revision of the same incident
        conn = await asyncpg.connect(pg_schema)
        try:
            await write_revision(
                conn,
                dict(
                    a.latest,
                    revision=a.latest["revision"] + 1,
                    severity="critical",
                    risk_score=97.0,
                ),
            )
        finally:
            await conn.close()
        await page.reload()
        await expect(page.locator("#workflow-state")).to_contain_text("open")
        await expect(page.locator("#workflow-state")).to_contain_text("re-opened")
        await expect(page.locator("#activity")).to_contain_text("reopen")
        await page.goto(f"{console.url}/queue")
        first = page.locator("table.queue tbody tr[data-alert]").first
        await expect(first).to_have_attribute("data-alert", aid)  # 97 is the riskiest
    finally:
        await browser.close()


async def test_employee_page_and_keyboard_next_previous(
    console: ConsoleProcess, pw: Any, seeded: list[SyntheticAlert]
) -> None:
    browser = await launch_browser(pw, ALICE)
    try:
        page = await browser.new_page()
        await page.goto(f"{console.url}/queue?severity=critical&severity=high")
        ids = await page.locator("table.queue tbody tr[data-alert]").evaluate_all(
            "rows => rows.map(r => r.dataset.alert)"
        )
        assert len(ids) >= 3
        await page.keyboard.press("Enter")
        await page.wait_for_url(re.compile(rf"/alerts/{ids[0]}\?"))
        await page.keyboard.press("n")
        await page.wait_for_url(re.compile(rf"/alerts/{ids[1]}\?"))
        await page.keyboard.press("n")
        await page.wait_for_url(re.compile(rf"/alerts/{ids[2]}\?"))
        await page.keyboard.press("p")
        await page.wait_for_url(re.compile(rf"/alerts/{ids[1]}\?"))
        await page.click(".alert-head h1 a")
        await expect(page.locator("#incidents")).to_contain_text("Incidents over time")
        await expect(page.locator("#incidents svg circle").first).to_be_visible()
    finally:
        await browser.close()
