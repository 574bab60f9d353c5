"""Everything one worker holds in memory, wired together (no Faust here)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pipeline.alerts.ids import Pseudonymizer
from pipeline.core.engine import Engine, StaffStore
from pipeline.observability.metrics import Metrics, worker_metrics
from pipeline.reference.state import ReferenceState
from pipeline.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    metrics: Metrics = field(default_factory=worker_metrics)
    reference: ReferenceState = field(default_factory=ReferenceState)
    joined: bool = False
    last_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    engine: Engine = field(init=False)
    reference_ready: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.engine = Engine(
            self.reference,
            Pseudonymizer(self.settings.pseudonym_key, raw=self.settings.raw_customer_ids),
            StaffStore(partitions=self.settings.partitions),
            namespace=self.settings.app_id,
        )

    @property
    def healthy(self) -> bool:
        return self.joined and self.reference_ready.is_set()
