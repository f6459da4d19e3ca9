"""Local-time delivery (``send_at_local``): one wall-clock time, an instant per time zone.
Pure.

A wall-clock time becomes an instant in a zone by :mod:`zoneinfo` with ``fold=0``, which
settles the two DST cases the same way RFC 5545 and JavaScript's Temporal ("compatible")
do: a time that does not exist (the hour skipped in spring) is read with the offset before
the change, so 02:30 on a New York spring-forward day is 03:30 EDT (07:30Z); a time that
exists twice (the hour repeated in autumn) is its first occurrence, 01:30 EDT (05:30Z).

Offsets on earth run from UTC-12 to UTC+14, so a wall-clock time falls due somewhere
between 14 hours before it is reached in UTC and 12 hours after: that bounds which times a
send may ask for, and the planner starts :data:`PLAN_LEAD` before the earliest of them, so
that the first zone's batches are written (held) before it is due.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo

from pushcore import fields

EARLIEST_OFFSET = dt.timedelta(hours=14)  # Pacific/Kiritimati
LATEST_OFFSET = dt.timedelta(hours=12)  # Etc/GMT+12
# Planning starts this long before the earliest zone is due: enough for a planner to write
# millions of recipients (~30 s per million measured on the 2-core machine) with room for
# a crashed planner's lease to expire and another to take over.
PLAN_LEAD = dt.timedelta(minutes=30)


def window_problem(local: dt.datetime, now: dt.datetime) -> str | None:
    """Why the wall-clock time ``local`` (naive) cannot be asked for at ``now``: before
    2000, past in every zone on earth, or further than the send_at window ahead in the
    earliest one; ``None`` when it can."""
    if local < fields.EARLIEST.replace(tzinfo=None):
        return f"must not be before {fields.EARLIEST.replace(tzinfo=None).isoformat()}"
    earliest = local.replace(tzinfo=dt.UTC) - EARLIEST_OFFSET
    if earliest > now + fields.SEND_AT_AHEAD:
        return (
            f"must not be more than {fields.SEND_AT_AHEAD.days} day(s) after the server's "
            "clock in the earliest time zone (UTC+14)"
        )
    if earliest + EARLIEST_OFFSET + LATEST_OFFSET <= now:
        return "has already passed in every time zone (the latest is UTC-12)"
    return None


def plan_start(local: dt.datetime) -> dt.datetime:
    """When planning of a send at ``local`` starts: before its earliest possible zone."""
    return local.replace(tzinfo=dt.UTC) - EARLIEST_OFFSET - PLAN_LEAD


def instant(local: dt.datetime, zone: str) -> dt.datetime:
    """``local`` (naive) in ``zone`` as a UTC instant (the DST rule: ``fold=0``)."""
    return local.replace(tzinfo=zoneinfo.ZoneInfo(zone), fold=0).astimezone(dt.UTC)


@functools.cache
def _zones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def instants(local: dt.datetime) -> tuple[list[str], list[dt.datetime]]:
    """Every zone this Python knows and ``local`` in it, for the planner's statements
    (about 600 pairs: the audience's zones are not known before they are read).  A zone an
    installation registered that is missing here (an older tzdata) gets the default zone's
    time."""
    zones = _zones()
    return list(zones), [instant(local, z) for z in zones]
