"""Language tags and time zones as devices register them.  Pure.

Localizations are picked by BCP 47 *lookup* (RFC 4647 §3.4): the installation's language
``pt-BR`` takes ``pt-BR`` when the message has it, else ``pt``, else the default content;
subtags are compared without regard to case, and ``_`` (Android's ``pt_BR``) counts as
``-``.  A message's ``en-US`` is not used for an installation that registered plain
``en``: lookup only drops subtags of the installation's tag, it never adds them.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable

import langcodes

MAX_TAG = 35  # RFC 5646 §4.4.1: 35 characters hold every tag implementations must keep


def valid_language(tag: str) -> bool:
    """Whether ``tag`` is a well-formed BCP 47 tag of registered subtags."""
    return len(tag) <= MAX_TAG and langcodes.tag_is_valid(tag.replace("_", "-"))


def valid_time_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone (``Europe/Lisbon``; not ``CET+1``)."""
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a directory of the tz database ("Asia") is no zone
        return False
    return True


def key(tag: str) -> str:
    """The form tags are compared in."""
    return tag.replace("_", "-").lower()


def lookup(language: object, available: Iterable[str]) -> str | None:
    """The key of ``available`` (compared by :func:`key`) that serves ``language`` best, or
    None for the default content."""
    if not isinstance(language, str) or not language:
        return None
    keys = {key(tag): tag for tag in available}
    subtags = key(language).split("-")
    while subtags:
        found = keys.get("-".join(subtags))
        if found is not None:
            return found
        subtags.pop()
        # a dangling singleton (the "x" of "en-x-...") is never a tag of its own
        if subtags and len(subtags[-1]) == 1:
            subtags.pop()
    return None
