"""What ``GET /health`` and ``GET /live`` say: ready, and every agent alive and making progress.

200 once the worker has joined its group and loaded the reference tables and
the peer statistics, while every agent is up and none has stalled; 503
otherwise, with a body saying which. An agent has *stalled* when, for more
than ``STALL_S`` seconds,

- it holds input it has not finished without making progress (the access
  agent's records at the day barrier; a reader whose loop stopped turning),
- or it has been inside one batch (a sink retrying, a lock never released),
- or it has read nothing from partitions that have records for it (a consumer
  that stopped fetching).

An agent is *down* after it failed (it is also counted in
``pipeline_batches_dropped_total``, which must stay 0).

``/live`` (the liveness probe) answers 503 only for what a restart can mend:
an agent down, or a stall of the access path. A batch of an agent that writes
to Postgres (``EXTERNAL``) held for long is Postgres away while the store
retries: a restart would not bring it back, and would stop the alerts on the
topic while the worker bootstraps again. ``/health`` (startup, readiness)
reports it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

STALL_S: Final = 120.0
# Agents whose batches wait on Postgres (retried until it answers).
EXTERNAL: Final = frozenset({"store-alerts", "store-evidence", "apply-feedback"})


@dataclass
class AgentHealth:
    up: bool = True
    failures: int = 0
    last_progress: float = field(default_factory=time.monotonic)
    holding: int = 0  # input records taken but not finished
    batches: list[float] = field(default_factory=list)  # monotonic starts of batches in hand
    starved: tuple[int, ...] = ()  # partitions with records it has not read for STALL_S


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

    def busy(self, name: str, at: float | None = None) -> float:
        """``name`` started a batch (monotonic ``at``; default now); returns its token for
        :meth:`idle` (an agent's batch and its timer's cycle may overlap)."""
        token = time.monotonic() if at is None else at
        self.agent(name).batches.append(token)
        return token

    def idle(self, name: str, token: float) -> None:
        """``name`` finished (or gave up) the batch it started with ``token``."""
        self.agent(name).batches.remove(token)

    def starving(self, name: str, partitions: tuple[int, ...]) -> None:
        """``partitions`` have records ``name`` has read nothing of for ``STALL_S``."""
        self.agent(name).starved = partitions

    def failed(self, name: str) -> None:
        a = self.agent(name)
        a.up = False
        a.failures += 1

    def problems(self, now: float | None = None, live: bool = False) -> list[str]:
        """What is wrong; ``live``: only what a restart can mend (see the module)."""
        now = time.monotonic() if now is None else now
        out = []
        if not self.joined and not live:
            out.append("not joined the consumer group yet")
        if not self.reference_ready and not live:
            out.append("reference data not loaded yet")
        if not self.peers_ready and not live:
            out.append("peer statistics not loaded yet")
        for name, a in sorted(self.agents.items()):
            if not a.up:
                out.append(f"agent {name} is down ({a.failures} failures)")
                continue
            if a.holding and now - a.last_progress > STALL_S:
                out.append(f"agent {name} made no progress for {now - a.last_progress:.0f} s")
            if a.batches and now - min(a.batches) > STALL_S and not (live and name in EXTERNAL):
                out.append(f"agent {name} has been in one batch for {now - min(a.batches):.0f} s")
            if a.starved:
                parts = ", ".join(str(p) for p in a.starved)
                out.append(
                    f"agent {name} read nothing for {STALL_S:.0f} s from partitions with "
                    f"records: {parts}"
                )
        return out

    def report(self, live: bool = False) -> tuple[int, dict[str, Any]]:
        problems = self.problems(live=live)
        body: dict[str, Any] = {
            "ok": not problems,
            "joined": self.joined,
            "reference_loaded": self.reference_ready,
            "peers_loaded": self.peers_ready,
            "problems": problems,
        }
        return (200 if not problems else 503), body
