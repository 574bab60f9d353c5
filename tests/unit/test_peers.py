"""Peer statistics: records, completeness across partitions, views, encoding."""

from __future__ import annotations

import msgspec
import pytest

from pipeline.peers import days
from pipeline.peers.book import WINDOW_DAYS, PeerBook
from pipeline.peers.days import GroupDay, PeerDay, Sample, Watermark

CODE = "unassigned_customer_access"


def day_record(partition: int, day: int, staff_days: int, total: float) -> PeerDay:
    g = GroupDay(staff_days, {CODE: total}, {CODE: total * 2})
    return PeerDay(partition, day, {"r:teller": g}, {"r:teller": [Sample(partition, [1.0] * 8)]})


def test_a_day_is_complete_once_every_partition_published_it() -> None:
    book = PeerBook(3)
    book.add(day_record(0, 10, 2, 4.0))
    book.add(day_record(1, 10, 2, 4.0))
    assert book.complete_through() is None
    book.add(Watermark(2, 1.0e9, 10))  # an idle partition closes the day without a record
    assert book.complete_through() == 10
    book.add(day_record(0, 11, 1, 1.0))
    assert book.complete_through() == 10, "the others have not published day 11"


def test_views_aggregate_every_partition_over_the_window() -> None:
    book = PeerBook(2)
    for d in range(100, 100 + WINDOW_DAYS + 5):
        book.add(day_record(0, d, 2, 6.0))
        book.add(day_record(1, d, 3, 4.0))
    last = 100 + WINDOW_DAYS + 4
    v = book.view(last)
    assert v.staff_days("r:teller") == 5 * WINDOW_DAYS
    assert v.mean("r:teller", CODE) == pytest.approx(2.0)
    assert v.var("r:teller", CODE) >= 0.0
    assert len(v.samples["r:teller"]) == WINDOW_DAYS
    with pytest.raises(ValueError, match="not complete"):
        book.view(last + 1)


def test_adding_the_same_record_twice_changes_nothing() -> None:
    book = PeerBook(1)
    rec = day_record(0, 5, 2, 6.0)
    assert book.add(rec)
    before = book.view(5).staff_days("r:teller")
    assert not book.add(rec)
    assert book.view(5).staff_days("r:teller") == before == 2


def test_a_partition_day_published_again_keeps_its_first_version() -> None:
    book = PeerBook(1)
    assert book.add(day_record(0, 5, 2, 6.0))
    assert book.has_day(0, 5) and not book.has_day(0, 6)
    assert not book.add(day_record(0, 5, 3, 1.0)), "a replay's different version changes nothing"
    assert book.view(5).staff_days("r:teller") == 2


def test_records_of_another_partition_count_are_ignored() -> None:
    book = PeerBook(2)
    assert not book.add(day_record(5, 1, 1, 1.0))
    assert book.complete_through() is None


def test_old_days_are_pruned() -> None:
    book = PeerBook(1)
    for d in range(200):
        book.add(day_record(0, d, 1, 1.0))
    assert min(book.days) >= 199 - WINDOW_DAYS - 3


def test_records_round_trip_and_are_keyed_for_compaction() -> None:
    rec = day_record(3, 42, 2, 6.0)
    assert days.decode(days.encode(rec)) == rec
    wm = Watermark(3, 123.5, 41)
    assert days.decode(days.encode(wm)) == wm
    assert days.key(rec) == b"day/42/3" and days.key(wm) == b"wm/3"
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        days.decode(b"\x81\xa1t\xa5other")


def test_group_keys() -> None:
    assert days.group_keys("teller", "BR1") == ("r:teller", "rb:teller|BR1")
    assert days.group_keys("teller", None) == ("r:teller",)
    assert days.group_keys(None, "BR1") == ()
