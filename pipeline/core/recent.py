"""An index of the newest event ids of the employees active lately (the redelivery check).

A producer that publishes an access again gives it a new offset and the same
``event_id``; each :class:`~pipeline.core.state.StaffState` keeps its newest
``RECENT_IDS`` ids (``StaffState.ids``, a list: it is part of the stored state) so that
such a replay changes nothing. Scanning that list for every access was the largest
single step of the core (~10 % of its time). :class:`RecentIds` keeps a set of the same
ids for the ``cap`` employees indexed most recently, built from the list on first use
and kept equal to it by :meth:`RecentIds.remember`; a set is ~2 KB, so the index is
bounded at a few MB whatever the number of staff. An evicted employee's set is built
again from their list when they are next seen (as dear as one scan).
"""

from __future__ import annotations

from typing import Final

from pipeline.core.state import RECENT_IDS, StaffState

INDEXED_STAFF: Final = 2048


class RecentIds:
    def __init__(self, cap: int = INDEXED_STAFF) -> None:
        if cap < 1:
            raise ValueError("cap must be at least 1")
        self.cap = cap
        self._sets: dict[str, tuple[StaffState, set[str]]] = {}

    def _index(self, staff_id: str, st: StaffState) -> set[str]:
        entry = self._sets.get(staff_id)
        if entry is not None and entry[0] is st:
            return entry[1]
        ids = set(st.ids)  # first use, or the state was replaced (restored, reset)
        self._sets[staff_id] = (st, ids)
        if len(self._sets) > self.cap:
            del self._sets[next(iter(self._sets))]  # the longest indexed
        return ids

    def seen(self, staff_id: str, st: StaffState, event_id: str) -> bool:
        """Whether ``event_id`` is among ``st``'s newest ids."""
        return event_id in self._index(staff_id, st)

    def remember(self, staff_id: str, st: StaffState, event_id: str) -> None:
        """Append ``event_id`` to ``st.ids`` (keeping the newest ``RECENT_IDS``)."""
        index = self._index(staff_id, st)
        ids = st.ids
        ids.append(event_id)
        index.add(event_id)
        if len(ids) > RECENT_IDS:
            if len(ids) == RECENT_IDS + 1:  # (nearly always: one in, one out)
                index.discard(ids.pop(0))
            else:
                index.difference_update(ids[:-RECENT_IDS])
                del ids[:-RECENT_IDS]
            if len(index) != len(ids):  # the list held an id twice: index it again
                self._sets[staff_id] = (st, set(ids))

    def clear(self) -> None:
        self._sets.clear()
