"""The worker's view of Faust's consumer survives a rebalance that took a partition away."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.types import TP

from pipeline.worker.agents import FaustConsumer

TOPIC = "t.access-events"


class RevokingConsumer:
    """Behaves as aiokafka does: highwater of an unassigned partition is an assertion."""

    def __init__(self, assigned: set[int]) -> None:
        self.assigned = {TP(TOPIC, p) for p in assigned}
        self._committed_offset: dict[TP, int | None] = {TP(TOPIC, 0): 17, TP(TOPIC, 1): None}

    def assignment(self) -> set[Any]:
        return set(self.assigned)

    def highwater(self, tp: Any) -> int:
        assert tp in self.assigned, "Partition is not assigned"
        return 42


def test_highwater_of_a_revoked_partition_is_unknown_not_a_crash() -> None:
    consumer = RevokingConsumer({0, 1})
    view = FaustConsumer(SimpleNamespace(consumer=consumer), TOPIC)  # type: ignore[arg-type]
    assert view.highwater(0) == 42
    consumer.assigned.discard(TP(TOPIC, 0))
    assert view.highwater(0) is None
    assert view.highwater(1) == 42
    assert view.assigned() == {1}


def test_the_committed_offset_is_the_one_faust_resumed_from() -> None:
    view = FaustConsumer(SimpleNamespace(consumer=RevokingConsumer({0, 1})), TOPIC)  # type: ignore[arg-type]
    assert view.committed(0) == 17
    assert view.committed(1) == 0, "nothing committed yet"
    assert view.committed(2) == 0, "not assigned"
