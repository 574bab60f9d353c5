"""How fast is the console's queue page with 100,000 alerts in Postgres?

Creates a schema of its own (``bench_console_<pid>``) in the database of
``PIPELINE_DATABASE_URL``, applies the migrations, writes ``--alerts``
synthetic alerts (``tests.alert_rows``: latest revision in ``alerts``,
every revision in ``alert_revisions``, evidence, reveal rows) with COPY, so
the trigger fills ``console_workflow`` as the sink's writes would, runs
ANALYZE, then serves the real application (Postgres store, templates,
middlewares) on a loopback port and requests queue pages.

For each case it prints p50/p99/max of the server time (the app's own
``Server-Timing`` figure: handler, queries and template) and of the
client-side request time, over ``--requests`` requests. A fifth of the
alerts are closed and a tenth acknowledged, so the active queue is not all.
Nothing is asserted; the schema is dropped at the end (``--keep`` keeps it).

    PIPELINE_PG_PORT=... bash infra/with-services.sh .venv/bin/python bench/console_queue.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.console.app import create_app  # noqa: E402
from pipeline.console.pgstore import PostgresStore  # noqa: E402
from pipeline.db.migrate import migrate_url  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from tests.alert_rows import make_alerts, write_alerts  # noqa: E402

HEADERS = {"X-Forwarded-User": "bench", "X-Forwarded-Groups": "analyst"}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _seed(url: str, n: int, seed: int) -> float:
    t0 = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        chunk = 20_000
        for start in range(0, n, chunk):
            alerts = make_alerts(
                min(chunk, n - start),
                seed=seed + start,
                revisions=2,
                events=2,
                staff=20_000,
                branches=400,
            )
            for i, a in enumerate(alerts):  # unique ids across chunks
                for p in a.revisions:
                    p["alert_id"] = f"al-{start + i:012d}"
                for e in a.evidence:
                    e["event_id"] = f"ev-{start + i}-{e['event_id'].rsplit('-', 1)[1]}"
            await write_alerts(conn, alerts, bulk=True)
        rng = random.Random(seed)
        ids = [f"al-{i:012d}" for i in range(n)]
        closed = rng.sample(ids, n // 5)
        acked = rng.sample(sorted(set(ids) - set(closed)), n // 10)
        await conn.execute(
            "UPDATE console_workflow SET state = 'closed', verdict = 'false_positive',"
            " closed_by = 'bench', closed_at = now(), closed_revision = revision"
            " WHERE alert_id = ANY($1::text[])",
            closed,
        )
        await conn.execute(
            "UPDATE console_workflow SET state = 'acknowledged', assignee = 'bench',"
            " acknowledged_by = 'bench', acknowledged_at = now() WHERE alert_id = ANY($1::text[])",
            acked,
        )
        # as autovacuum would after a bulk load (visibility map, statistics)
        await conn.execute(
            "VACUUM ANALYZE alerts, console_workflow, alert_revisions, alert_evidence"
        )
    finally:
        await conn.close()
    return time.perf_counter() - t0


async def _time(
    session: aiohttp.ClientSession, url: str, requests: int
) -> tuple[list[float], list[float], str]:
    server, client = [], []
    body = ""
    for _ in range(requests):
        t0 = time.perf_counter()
        async with session.get(url, headers=HEADERS) as r:
            body = await r.text()
            if r.status != 200:
                raise RuntimeError(f"{url}: HTTP {r.status}: {body[:300]}")
            timing = r.headers["Server-Timing"]
        client.append((time.perf_counter() - t0) * 1000)
        server.append(float(timing.split("dur=")[1]))
    return server, client, body


async def _deep_url(session: aiohttp.ClientSession, base: str, pages: int) -> str:
    """The URL of page ``pages`` of the default queue, following its Next links."""
    import re

    url = f"{base}/queue"
    for _ in range(pages - 1):
        async with session.get(url, headers=HEADERS) as r:
            m = re.search(r'href="(/queue\?[^"]*)" rel="next"', await r.text())
        if m is None:
            break
        url = base + m.group(1).replace("&amp;", "&")
    return url


async def main(args: argparse.Namespace) -> dict[str, Any]:
    base_s = Settings.from_env()
    schema = args.schema or f"bench_console_{os.getpid()}"
    admin = await asyncpg.connect(base_s.database_url)
    reuse = args.schema is not None and await admin.fetchval(
        "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema
    )
    sep = "&" if "?" in base_s.database_url else "?"
    url = f"{base_s.database_url}{sep}search_path={schema}"
    try:
        if reuse:
            print(f"reusing the alerts in schema {schema}", flush=True)
        else:
            await admin.execute(f"CREATE SCHEMA {schema}")
            await migrate_url(url)
            seed_s = await _seed(url, args.alerts, args.seed)
            print(f"seeded {args.alerts:,} alerts in {seed_s:.1f} s (schema {schema})", flush=True)
        s = base_s.replace(pseudonym_key="bench-key", topic_prefix="bench.")
        store = await PostgresStore.connect(url, max_size=4)
        app = create_app(s, store, None, "bench-secret-0123456789abcdef")
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        conn = await asyncpg.connect(url)
        branch, role = await conn.fetchrow(
            "SELECT branch_id, staff_role FROM console_workflow GROUP BY 1, 2"
            " ORDER BY count(*) DESC LIMIT 1"
        )
        staff = await conn.fetchval("SELECT staff_id FROM console_workflow LIMIT 1")
        results: dict[str, Any] = {
            "alerts": await conn.fetchval("SELECT count(*) FROM console_workflow"),
            "requests": args.requests,
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
            "cases": {},
        }
        await conn.close()
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        async with aiohttp.ClientSession() as session:
            deep = await _deep_url(session, base, 20)
            cases = {
                "queue (active, first page of 50)": f"{base}/queue",
                "queue page 20 (keyset)": deep,
                "severity=critical": f"{base}/queue?severity=critical",
                f"branch + role ({branch}, {role})": f"{base}/queue?branch={branch}&role={role}",
                "reason=bulk_access": f"{base}/queue?reason=bulk_access",
                "time range (one week)": f"{base}/queue?since=2026-03-08&until=2026-03-14",
                "assignee=me": f"{base}/queue?assignee=me",
                "state=all, 200 rows": f"{base}/queue?state=all&limit=200",
                "employee page": f"{base}/staff/{staff}",
            }
            head = f"{'case':<42} {'server p50':>10} {'p99':>8} {'max':>8}"
            print(f"{head}   {'client p50':>10} {'p99':>8}")
            for name, case_url in cases.items():
                await _time(session, case_url, 3)  # warm caches and the pool
                server, client, _ = await _time(session, case_url, args.requests)
                row = {
                    "server_p50_ms": round(statistics.median(server), 2),
                    "server_p99_ms": round(_pct(server, 0.99), 2),
                    "server_max_ms": round(max(server), 2),
                    "client_p50_ms": round(statistics.median(client), 2),
                    "client_p99_ms": round(_pct(client, 0.99), 2),
                }
                results["cases"][name] = row
                print(
                    f"{name:<42} {row['server_p50_ms']:>8.1f}ms {row['server_p99_ms']:>6.1f}ms "
                    f"{row['server_max_ms']:>6.1f}ms   {row['client_p50_ms']:>8.1f}ms "
                    f"{row['client_p99_ms']:>6.1f}ms",
                    flush=True,
                )
        results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        await runner.cleanup()
        await store.close()
        return results
    finally:
        if not args.keep and not args.schema:
            await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    parser.add_argument(
        "--schema", help="use (and keep) this schema; seed it only if it does not exist yet"
    )
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/console_queue.json")
    ns = parser.parse_args()
    out = asyncio.run(main(ns))
    ns.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {ns.json}")
