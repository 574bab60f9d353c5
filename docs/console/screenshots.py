"""Screenshots of the console's three pages (queue, alert, employee) for docs/console/.

Writes synthetic alerts into a schema of its own in the database of
``PIPELINE_DATABASE_URL``, works a few of them (assigned, acknowledged,
closed), serves the real application on a loopback port and photographs it
with Debian's Chromium through Playwright. The schema is dropped afterwards.

    make screenshots        # or:
    PIPELINE_PG_PORT=... bash infra/with-services.sh .venv/bin/python docs/console/screenshots.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import asyncpg
from aiohttp import web
from playwright.async_api import async_playwright

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from pipeline.console.app import create_app  # noqa: E402
from pipeline.console.pgstore import PostgresStore  # noqa: E402
from pipeline.console.store import ActionRequest  # noqa: E402
from pipeline.console.workflow import feedback_for  # noqa: E402
from pipeline.db.migrate import migrate_url  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from tests.alert_rows import make_alerts, write_alerts  # noqa: E402
from tests.integration.console_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

HEADERS = {"X-Forwarded-User": "li.wei", "X-Forwarded-Groups": "soc-analyst investigator"}


async def main() -> None:
    base = Settings.from_env()
    schema = f"docs_console_{os.getpid()}"
    admin = await asyncpg.connect(base.database_url)
    await admin.execute(f"CREATE SCHEMA {schema}")
    url = f"{base.database_url}{'&' if '?' in base.database_url else '?'}search_path={schema}"
    try:
        await migrate_url(url)
        alerts = make_alerts(48, seed=4, revisions=3, events=14, staff=9, branches=3)
        conn = await asyncpg.connect(url)
        await write_alerts(conn, alerts)
        await conn.close()
        store = await PostgresStore.connect(url, max_size=2)
        by_risk = sorted(alerts, key=lambda a: -a.latest["risk_score"])
        await store.act(
            by_risk[1].latest["alert_id"], ActionRequest("acknowledge", "chen.jing", None)
        )
        await store.act(
            by_risk[3].latest["alert_id"],
            ActionRequest("assign", "li.wei", None, assignee="li.wei"),
        )
        closed = by_risk[5].latest
        fb = feedback_for(closed["alert_id"], "false_positive", "chen.jing", "approved batch")
        await store.act(
            closed["alert_id"],
            ActionRequest(
                "close",
                "chen.jing",
                None,
                comment=fb.comment,
                seen_revision=closed["revision"],
                feedback=fb,
                topic="docs.alert-feedback",
            ),
        )
        # the alert to photograph: a high-risk one with a model explanation
        shown = next(a for a in by_risk if a.latest["model"] is not None)
        aid = shown.latest["alert_id"]
        await store.act(aid, ActionRequest("assign", "li.wei", None, assignee="li.wei"))
        await store.act(
            aid,
            ActionRequest("comment", "li.wei", None, comment="Asked the branch for the case file."),
        )
        settings = base.replace(topic_prefix="docs.", pseudonym_key="test-key")
        app = create_app(settings, store, None, "screenshots-secret-0123456789")
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        origin = f"http://127.0.0.1:{port}"
        async with async_playwright() as p:
            ctx = await p.chromium.launch_persistent_context(
                tempfile.mkdtemp(prefix="aw-shots-"),
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1440, "height": 900},
                extra_http_headers=HEADERS,
            )
            page = await ctx.new_page()
            await page.goto(f"{origin}/queue?limit=25")
            await page.keyboard.press("j")
            await page.keyboard.press("j")
            await page.screenshot(path=str(HERE / "queue.png"), full_page=True)
            await page.goto(f"{origin}/alerts/{aid}")
            await page.screenshot(path=str(HERE / "alert.png"), full_page=True)
            await page.goto(f"{origin}/staff/{shown.latest['staff_id']}")
            await page.screenshot(path=str(HERE / "employee.png"), full_page=True)
            await ctx.close()
        await runner.cleanup()
        await store.close()
        print(
            f"wrote {', '.join(str(HERE / n) for n in ('queue.png', 'alert.png', 'employee.png'))}"
        )
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
