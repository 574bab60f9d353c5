"""Starting and stopping real ``pipeline worker`` subprocesses (demo, evaluation, tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from pipeline.settings import Settings


def worker_env(
    s: Settings, web_port: int | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a worker process: this process's, with every setting of ``s``,
    then ``extra`` (e.g. ``PIPELINE_KAFKA_SASL_PASSWORD_FILE``: a ``*_FILE`` variable
    there replaces its plain twin, which is removed)."""
    env = dict(os.environ)
    for name, value in s.model_dump().items():
        var = f"PIPELINE_{name.upper()}"
        env.pop(f"{var}_FILE", None)
        if value is None:
            env[var] = ""
        elif isinstance(value, bool):
            env[var] = "true" if value else "false"
        elif isinstance(value, datetime):
            env[var] = value.isoformat()
        else:
            env[var] = str(value)
    if web_port is not None:
        env["PIPELINE_WEB_PORT"] = str(web_port)
    for var, value in (extra or {}).items():
        if var.endswith("_FILE"):
            env.pop(var.removesuffix("_FILE"), None)
        env[var] = value
    return env


class WorkerProcess:
    """A real ``python -m pipeline worker`` subprocess with its log in a file."""

    def __init__(
        self,
        s: Settings,
        log_path: Path,
        web_port: int | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = web_port or s.web_port
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "worker"],
            env=worker_env(s, self.port, extra_env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def _get(self, path: str) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return int(r.status), r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            return 0, b""

    def health(self) -> tuple[int, bytes]:
        return self._get("/health")

    def live(self) -> tuple[int, bytes]:
        """The liveness page: what a restart could mend."""
        return self._get("/live")

    def metrics(self) -> str:
        return self._get("/metrics")[1].decode()

    def metric(self, name: str) -> float:
        """Sum of a metric's samples (all label sets)."""
        total = 0.0
        for line in self.metrics().splitlines():
            if line.startswith(name) and line[len(name)] in " {":
                total += float(line.rsplit(" ", 1)[1])
        return total

    def wait_healthy(self, timeout: float = 120.0) -> float:
        """Seconds until GET /health answered 200; raises with the log tail otherwise."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early; log:\n{self.tail()}")
            if self.health()[0] == 200:
                return time.monotonic() - start
            time.sleep(0.25)
        raise RuntimeError(f"worker not healthy after {timeout}s; log:\n{self.tail()}")

    def tail(self, n: int = 60) -> str:
        if not self._log.closed:
            self._log.flush()
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return int(self.proc.returncode)
