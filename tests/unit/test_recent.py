from __future__ import annotations

import pytest

from pipeline.core.recent import RecentIds
from pipeline.core.state import RECENT_IDS, StaffState


def test_an_id_is_seen_once_remembered_and_the_list_keeps_the_newest() -> None:
    recent, st = RecentIds(), StaffState()
    assert not recent.seen("S1", st, "e0")
    for i in range(RECENT_IDS + 10):
        recent.remember("S1", st, f"e{i}")
    assert st.ids == [f"e{i}" for i in range(10, RECENT_IDS + 10)]
    assert not recent.seen("S1", st, "e9"), "older than the newest RECENT_IDS"
    assert recent.seen("S1", st, "e10") and recent.seen("S1", st, f"e{RECENT_IDS + 9}")


def test_a_state_restored_or_reset_is_indexed_from_its_own_list() -> None:
    recent, st = RecentIds(), StaffState()
    recent.remember("S1", st, "e1")
    restored = StaffState(ids=["e7"])
    assert recent.seen("S1", restored, "e7")
    assert not recent.seen("S1", restored, "e1"), "the earlier object's ids are not its"


def test_employees_beyond_the_cap_are_indexed_again_when_seen() -> None:
    recent = RecentIds(cap=2)
    states = {sid: StaffState() for sid in ("S1", "S2", "S3")}
    for sid, st in states.items():
        recent.remember(sid, st, f"{sid}-e")
    assert len(recent._sets) == 2
    assert recent.seen("S1", states["S1"], "S1-e"), "evicted, then built from the list"
    assert not recent.seen("S1", states["S1"], "S2-e")


def test_a_list_holding_an_id_twice_stays_right_when_trimmed() -> None:
    recent = RecentIds()
    st = StaffState(ids=["dup", *[f"e{i}" for i in range(RECENT_IDS - 2)], "dup"])
    recent.remember("S1", st, "new")  # trims the first "dup"; the second stays
    assert len(st.ids) == RECENT_IDS
    assert recent.seen("S1", st, "dup") and recent.seen("S1", st, "new")


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        RecentIds(cap=0)


def test_a_longer_list_of_an_earlier_state_is_trimmed_to_the_newest() -> None:
    recent = RecentIds()
    st = StaffState(ids=[f"e{i}" for i in range(RECENT_IDS + 5)])
    recent.remember("S1", st, "new")
    assert st.ids == [*[f"e{i}" for i in range(6, RECENT_IDS + 5)], "new"]
    assert not recent.seen("S1", st, "e5") and recent.seen("S1", st, "e6")
