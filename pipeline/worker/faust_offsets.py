"""A repair of faust-streaming's choice of the offset to commit (``Consumer._new_offset``).

Faust commits, per partition, the end of the first run of consecutive offsets in
its list of acknowledged offsets (``_acked``), after filling in the offsets it
saw missing from the fetched records (``_gap``). Gap offsets are added to that
list without its index, so an offset that is both in a gap and acknowledged
later is in the list twice. A duplicate breaks every run: ``[5, 5, 6, 7]`` gives
the run ``[5]``, so each commit moves the partition's offset by one record,
while the records themselves go on being processed. ``bench/recovery.py`` saw
it after a takeover: three of the four partitions a surviving worker took over
committed one record per second from then on (robinhood/faust#625 reports the
same duplicate).

:func:`install` replaces the method with one that drops duplicates; it is
otherwise the same computation (gap filling, no commit while the list starts
beyond the committed offset by more than one, the end of the first run).

Faust's other known weakness here, committing over a single unacknowledged
offset at the head of the list (faust-streaming/faust#606), the pipeline avoids
by acknowledging each partition's records in offset order
(:mod:`pipeline.worker.access`).
"""

from __future__ import annotations

from typing import Any

from faust.transport.consumer import Consumer
from faust.utils.functional import consecutive_numbers

_INSTALLED = "_pipeline_dedup_new_offset"
FAUST_NEW_OFFSET = Consumer._new_offset  # Faust's own, kept for the tests that compare


def new_offset(self: Any, tp: Any) -> int | None:
    """The offset to commit for ``tp`` (None: nothing new), from ``self._acked[tp]``."""
    acked: list[int] = self._acked[tp]
    if not acked:
        return None
    gaps = self._gap[tp]
    if gaps:
        highest = max(acked)
        spans = sorted(gaps.overlap(0, highest), key=lambda iv: iv.begin)
        if spans:
            filled = [o for iv in spans for o in range(iv.begin, iv.end)]
            acked.extend(filled)
            gaps.chop(0, max(filled[-1], highest + 1))
    acked[:] = sorted(set(acked))
    committed = self._committed_offset[tp]
    if committed and acked[0] - committed > 1:
        return None
    run = next(consecutive_numbers(acked))
    del acked[: len(run)]
    self._acked_index[tp].difference_update(run)
    return int(run[-1]) + 1


def install() -> None:
    """Use :func:`new_offset` in every Faust consumer of this process (idempotent)."""
    if getattr(Consumer, _INSTALLED, False):
        return
    Consumer._new_offset = new_offset  # type: ignore[method-assign]
    setattr(Consumer, _INSTALLED, True)
