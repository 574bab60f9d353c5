"""Decoded core state over a mapping of bytes, loaded on first use and written back by flush.

The worker's backing is the Faust table (``pipeline.worker.services``), tests'
and offline runs' a dict. A value that cannot be read is replaced by a fresh
state and counted in :attr:`Store.resets` (kind, reason); it is never fatal.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, MutableMapping
from typing import Protocol

from pipeline.broker.partitioning import key_for_partition
from pipeline.core.state import (
    PartitionState,
    StaffState,
    StateError,
    decode_partition,
    decode_staff,
    encode,
)

log = logging.getLogger(__name__)


class Backing(Protocol):
    """Where states are read from (the worker's table; a dict offline)."""

    def get(self, key: str, /) -> bytes | None: ...


class Store:
    def __init__(self, backing: Backing, partitions: int) -> None:
        self.backing = backing
        self.partitions = partitions
        self._staff: dict[str, StaffState] = {}
        self._staff_partition: dict[str, int] = {}
        self._parts: dict[int, PartitionState] = {}
        self.dirty_staff: set[str] = set()
        self.dirty_parts: set[int] = set()
        self.resets: Counter[tuple[str, str]] = Counter()

    def partition_key(self, partition: int) -> str:
        return key_for_partition("partition", partition, self.partitions)

    def staff(self, staff_id: str, partition: int) -> StaffState:
        st = self._staff.get(staff_id)
        if st is None:
            raw = self.backing.get(staff_id)
            st = StaffState()
            if raw:
                try:
                    st = decode_staff(raw)
                except StateError as exc:
                    self.resets["staff", exc.reason] += 1
                    log.error("staff state reset (%s): %s", exc.reason, exc)
            self._staff[staff_id] = st
            self._staff_partition[staff_id] = partition
        self.dirty_staff.add(staff_id)
        return st

    def peek_staff(self, staff_id: str, partition: int) -> StaffState:
        """The state, without marking it to be written."""
        known = staff_id in self._staff
        st = self.staff(staff_id, partition)
        if not known:
            self.dirty_staff.discard(staff_id)
        return st

    def loaded_partition(self, partition: int) -> PartitionState | None:
        """The partition's state if it is in memory already (no read, nothing marked)."""
        return self._parts.get(partition)

    def partition(self, partition: int) -> PartitionState:
        ps = self._parts.get(partition)
        if ps is None:
            raw = self.backing.get(self.partition_key(partition))
            ps = PartitionState(partition=partition)
            if raw:
                try:
                    ps = decode_partition(raw)
                except StateError as exc:
                    self.resets["partition", exc.reason] += 1
                    log.error("partition %d state reset (%s): %s", partition, exc.reason, exc)
                    ps = PartitionState(partition=partition)
            self._parts[partition] = ps
        self.dirty_parts.add(partition)
        return ps

    def peek_partition(self, partition: int) -> PartitionState:
        """The partition's state for reading only (loaded if need be, not marked to be
        written: an idle partition's state is not rewritten on every cycle)."""
        ps = self._parts.get(partition)
        if ps is None:
            ps = self.partition(partition)
            self.dirty_parts.discard(partition)
        return ps

    def dirty(self) -> bool:
        """Whether any state changed since the last :meth:`pending_writes`."""
        return bool(self.dirty_staff or self.dirty_parts)

    def pending_writes(self) -> list[tuple[str, bytes]]:
        """Encoded dirty states (staff first, partitions last); clears the dirty marks."""
        out = [(sid, encode(self._staff[sid])) for sid in sorted(self.dirty_staff)]
        out += [(self.partition_key(p), encode(self._parts[p])) for p in sorted(self.dirty_parts)]
        self.dirty_staff.clear()
        self.dirty_parts.clear()
        return out

    def flush(self) -> int:
        """Write dirty states into a mapping backing (offline runs, tests); return how
        many. The worker writes :meth:`pending_writes` itself, awaiting the broker."""
        if not isinstance(self.backing, MutableMapping):
            raise TypeError(f"cannot flush into a {type(self.backing).__name__}")
        writes = self.pending_writes()
        self.backing.update(writes)
        return len(writes)

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop what is cached of these partitions (after a revoke the table is the truth)."""
        gone = set(partitions)
        for sid in [s for s, p in self._staff_partition.items() if p in gone]:
            del self._staff[sid]
            del self._staff_partition[sid]
            self.dirty_staff.discard(sid)
        for p in gone:
            self._parts.pop(p, None)
            self.dirty_parts.discard(p)

    def has_staff(self, staff_id: str) -> bool:
        """Whether the employee's state is in memory (read from the backing already)."""
        return staff_id in self._staff

    def cached_staff(self) -> int:
        return len(self._staff)
