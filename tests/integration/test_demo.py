"""``simbank demo``, the README's first command after set-up, on the real broker and database.

A small bank (the flags make it smaller than the default), the console served for a
few seconds: the demo must finish, print alerts, the Postgres table and the
console's address, and the console must have answered while it ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from tests.integration.kit import BOOTSTRAP, DATABASE_URL, ROOT, free_port


def _poll(url: str, seen: list[int], stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                seen.append(int(r.status))
                return
        except OSError:
            time.sleep(0.5)


def test_demo_runs_a_bank_shows_alerts_and_serves_the_console(tmp_path: Path) -> None:
    console_port, web_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")},
        "PIPELINE_KAFKA_BOOTSTRAP": BOOTSTRAP,
        "PIPELINE_DATABASE_URL": DATABASE_URL,
        "PIPELINE_CONSOLE_PORT": str(console_port),
        "PIPELINE_WEB_PORT": str(web_port),
    }
    seen: list[int] = []
    stop = threading.Event()
    poller = threading.Thread(
        target=_poll, args=(f"http://127.0.0.1:{console_port}/healthz", seen, stop)
    )
    poller.start()
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "simbank",
                "demo",
                "--branches",
                "2",
                "--staff",
                "30",
                "--days",
                "5",
                "--customers",
                "1500",
                "--idle",
                "4",
                "--console-seconds",
                "8",
                "--log-dir",
                str(tmp_path),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        stop.set()
        poller.join()
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "worker healthy after" in out
    assert "planted incidents caught" in out
    assert "Postgres table `alerts` for this run:" in out
    assert f"http://127.0.0.1:{console_port}/queue" in out + done.stderr
    assert seen == [200], "the console answered while the demo served it"
