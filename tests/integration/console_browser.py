"""Running the console as a process and driving it with Debian's Chromium (Playwright).

Used by the browser tests and by ``docs/console/screenshots.py``. The
browser is ``/usr/bin/chromium`` (``infra/chromium.sh`` installs it);
Playwright never downloads one. The tests play the reverse proxy: each
browser context sends the identity and roles headers itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("PIPELINE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECRET = "browser-test-secret-0123456789"


class ConsoleProcess:
    """``python -m pipeline console`` with the given settings, its output in a file."""

    def __init__(self, env: Mapping[str, str], port: int, log_path: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        full = {**os.environ, **env, "PIPELINE_CONSOLE_PORT": str(port)}
        full.setdefault("PIPELINE_CONSOLE_SECRET", SECRET)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "console"],
            env=full,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"console exited:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"console not ready after {timeout} s:\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        self._log.flush()
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return int(self.proc.returncode or 0)


async def launch_browser(playwright: Any, headers: Mapping[str, str] | None = None) -> Any:
    """A Chromium context with a fresh profile; ``headers`` play the reverse proxy."""
    profile = tempfile.mkdtemp(prefix="aw-chromium-")
    return await playwright.chromium.launch_persistent_context(
        profile,
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        headless=True,
        viewport={"width": 1400, "height": 1000},
        extra_http_headers=dict(headers or {}),
    )
