"""The repaired choice of Faust's commit offset (pipeline.worker.faust_offsets)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from faust.transport.consumer import Consumer
from intervaltree import IntervalTree

from pipeline.worker import faust_offsets
from pipeline.worker.faust_offsets import FAUST_NEW_OFFSET, new_offset

TP = ("access", 0)


class Offsets:
    """The four structures ``Consumer._new_offset`` reads, and nothing else."""

    def __init__(self, acked: list[int], committed: int | None, gap: tuple[int, int] | None):
        self._acked: dict[Any, list[int]] = {TP: list(acked)}
        self._acked_index: dict[Any, set[int]] = {TP: set(acked)}
        self._committed_offset: dict[Any, int | None] = {TP: committed}
        self._gap: defaultdict[Any, IntervalTree] = defaultdict(IntervalTree)
        if gap is not None:
            self._gap[TP].addi(*gap)


def test_a_duplicate_acked_offset_no_longer_slows_commits_to_one_record() -> None:
    # Faust's own method commits 6 here, then 7, ...: one offset per commit.
    state = Offsets([5, 5, 6, 7, 8], committed=5, gap=None)
    assert FAUST_NEW_OFFSET(state, TP) == 6  # type: ignore[arg-type]
    state = Offsets([5, 5, 6, 7, 8], committed=5, gap=None)
    assert new_offset(state, TP) == 9
    assert state._acked[TP] == []


def test_gap_offsets_that_were_also_acked_are_counted_once() -> None:
    # offsets 11 and 12 were seen missing (a gap) and acked later as well
    state = Offsets([10, 11, 12, 14], committed=10, gap=(11, 14))
    assert new_offset(state, TP) == 15
    assert not state._gap[TP]


def test_it_still_stops_at_the_first_hole_and_waits_for_a_late_head() -> None:
    state = Offsets([3, 4, 7, 8], committed=3, gap=None)
    assert new_offset(state, TP) == 5
    assert state._acked[TP] == [7, 8], "what lies beyond the hole waits"
    assert new_offset(Offsets([9, 10], committed=5, gap=None), TP) is None
    assert new_offset(Offsets([], committed=5, gap=None), TP) is None


def test_install_replaces_the_method_once() -> None:
    faust_offsets.install()
    faust_offsets.install()
    assert Consumer._new_offset is new_offset
