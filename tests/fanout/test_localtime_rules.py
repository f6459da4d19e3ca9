"""The wall-clock → instant rules of local-time delivery (pure: no services)."""

from __future__ import annotations

import datetime as dt

from pushcore.fanout import localtime

UTC = dt.UTC
NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_plain_zones_and_fractional_offsets() -> None:
    nine = dt.datetime(2026, 12, 2, 9, 0)
    assert localtime.instant(nine, "Asia/Kathmandu") == dt.datetime(2026, 12, 2, 3, 15, tzinfo=UTC)
    assert localtime.instant(nine, "Australia/Eucla") == dt.datetime(2026, 12, 2, 0, 15, tzinfo=UTC)
    assert localtime.instant(nine, "Pacific/Kiritimati") == dt.datetime(
        2026, 12, 1, 19, 0, tzinfo=UTC
    )


def test_a_time_skipped_by_dst_is_read_with_the_offset_before_the_change() -> None:
    # New York springs forward at 02:00 EST on 2026-03-08: 02:30 does not exist
    gap = dt.datetime(2026, 3, 8, 2, 30)
    assert localtime.instant(gap, "America/New_York") == dt.datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    # Lisbon, 2026-03-29 01:30 does not exist (01:00 WET -> 02:00 WEST)
    gap = dt.datetime(2026, 3, 29, 1, 30)
    assert localtime.instant(gap, "Europe/Lisbon") == dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_a_time_repeated_by_dst_is_its_first_occurrence() -> None:
    # New York falls back at 02:00 EDT on 2026-11-01: 01:30 happens twice (EDT, then EST)
    twice = dt.datetime(2026, 11, 1, 1, 30)
    assert localtime.instant(twice, "America/New_York") == dt.datetime(
        2026, 11, 1, 5, 30, tzinfo=UTC
    )


def test_every_zone_is_mapped_and_the_map_agrees_with_instant() -> None:
    local = dt.datetime(2026, 12, 24, 18, 0)
    zones, dues = localtime.instants(local)
    assert len(zones) == len(dues) > 400
    mapped = dict(zip(zones, dues, strict=True))
    for zone in ("Europe/Lisbon", "America/Los_Angeles", "Asia/Kolkata", "Etc/GMT+12"):
        assert mapped[zone] == localtime.instant(local, zone)
    # every instant lies within the earth's offsets of the wall-clock time read as UTC
    as_utc = local.replace(tzinfo=UTC)
    assert all(
        as_utc - localtime.EARLIEST_OFFSET <= d <= as_utc + localtime.LATEST_OFFSET for d in dues
    )


def test_window() -> None:
    wall = NOW.replace(tzinfo=None)
    assert localtime.window_problem(wall + dt.timedelta(hours=1), NOW) is None
    # passed in UTC, not yet at UTC-12: still accepted (some zones are ahead of it)
    assert localtime.window_problem(wall - dt.timedelta(hours=11), NOW) is None
    passed = localtime.window_problem(wall - dt.timedelta(hours=12), NOW)
    assert passed is not None
    assert "every time zone" in passed
    # a year ahead counts in the earliest zone (UTC+14)
    assert localtime.window_problem(wall + dt.timedelta(days=365, hours=14), NOW) is None
    ahead = localtime.window_problem(wall + dt.timedelta(days=365, hours=15), NOW)
    assert ahead is not None
    assert "365" in ahead
    assert localtime.window_problem(dt.datetime(1, 1, 1), NOW) is not None
    assert localtime.window_problem(dt.datetime(9999, 12, 31, 23, 59), NOW) is not None


def test_planning_starts_before_the_earliest_zone() -> None:
    local = dt.datetime(2026, 12, 24, 9, 0)
    earliest = localtime.instant(local, "Pacific/Kiritimati")
    assert localtime.plan_start(local) == earliest - localtime.PLAN_LEAD
