"""What ``GET /health`` says: ready, and every agent alive and making progress.

200 once the worker has joined its group and loaded the reference tables and
the peer statistics, while every agent is up and none has stalled; 503
otherwise, with a body saying which. An agent has *stalled* when it holds
input it has not finished for more than ``STALL_S`` seconds without making
progress; an agent is *down* after it failed (it is also counted in
``pipeline_batches_dropped_total``, which must stay 0).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

STALL_S: Final = 120.0


@dataclass
class AgentHealth:
    up: bool = True
    failures: int = 0
    last_progress: float = field(default_factory=time.monotonic)
    holding: int = 0  # input records taken but not finished


@dataclass
class Health:
    joined: bool = False
    reference_ready: bool = False
    peers_ready: bool = False
    agents: dict[str, AgentHealth] = field(default_factory=dict)

    def agent(self, name: str) -> AgentHealth:
        a = self.agents.get(name)
        if a is None:
            a = self.agents[name] = AgentHealth()
        return a

    def progress(self, name: str, holding: int = 0, at: float | None = None) -> None:
        """``name`` last finished input at ``at`` (monotonic; default now) and holds
        ``holding`` records it has not finished."""
        a = self.agent(name)
        a.last_progress = time.monotonic() if at is None else at
        a.holding = holding

    def failed(self, name: str) -> None:
        a = self.agent(name)
        a.up = False
        a.failures += 1

    def problems(self, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        out = []
        if not self.joined:
            out.append("not joined the consumer group yet")
        if not self.reference_ready:
            out.append("reference data not loaded yet")
        if not self.peers_ready:
            out.append("peer statistics not loaded yet")
        for name, a in sorted(self.agents.items()):
            if not a.up:
                out.append(f"agent {name} is down ({a.failures} failures)")
            elif a.holding and now - a.last_progress > STALL_S:
                out.append(f"agent {name} made no progress for {now - a.last_progress:.0f} s")
        return out

    def report(self) -> tuple[int, dict[str, Any]]:
        problems = self.problems()
        body: dict[str, Any] = {
            "ok": not problems,
            "joined": self.joined,
            "reference_loaded": self.reference_ready,
            "peers_loaded": self.peers_ready,
            "problems": problems,
        }
        return (200 if not problems else 503), body
