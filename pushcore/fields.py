"""Field types that more than one layer's request structs use: one definition each.

The API's bodies (``pushcore.api.schemas``) and the send request's targets
(``pushcore.fanout.targets``) both take tags, external user ids, emails and phone numbers;
what a valid one is must not differ between registering a user and addressing it.  The
time windows of timestamps (an event's ``at``, a send's ``send_at``) live here as well.

Patterns avoid ``\\s`` and other classes whose meaning differs between Python's ``re`` and
ECMA-262 (what JSON Schema validators and generated clients use): characters are spelled
out, so the OpenAPI document states exactly the rule the server applies.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from msgspec import Meta

Tag = Annotated[str, Meta(min_length=1, max_length=128)]
ExternalId = Annotated[str, Meta(min_length=1, max_length=256)]
# local@domain.tld without control characters, spaces or a second "@"; 254 characters is
# the longest address SMTP can carry (RFC 5321 path limit less the angle brackets)
_EMAIL_CHAR = r"[^@\x00-\x20\x7f]"
EMAIL_PATTERN = f"^{_EMAIL_CHAR}+@{_EMAIL_CHAR}+\\.{_EMAIL_CHAR}+$"
Email = Annotated[
    str,
    Meta(
        max_length=254,
        pattern=EMAIL_PATTERN,
        description="local@domain.tld: no spaces, control characters or second @; compared "
        "case-insensitively",
    ),
]
# E.164: a plus sign and up to 15 digits
MSISDN_PATTERN = r"^\+[1-9][0-9]{6,14}$"
Msisdn = Annotated[
    str, Meta(pattern=MSISDN_PATTERN, description="E.164: + and 7 to 15 digits, no spaces")
]

# Timestamps a request may carry.  Some aware times that parse (``0001-01-01T00:00:00+01:00``,
# ``9999-12-31T23:59:59-01:00``) fall outside what Python and PostgreSQL can store once the
# offset is applied; the product needs no time near those ends, so each time field has a
# window instead: never before EARLIEST, never more than its own span after the server's
# clock.  The windows are stated in the schema descriptions and the README.
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
SEND_AT_AHEAD = dt.timedelta(days=365)  # scheduling further ahead is refused
EVENT_AHEAD = dt.timedelta(days=1)  # device clocks run ahead; a day is plenty
EXPIRES_AHEAD = dt.timedelta(days=5 * 365)  # an inbox entry's expiry; retention prunes sooner


def time_problem(value: dt.datetime, now: dt.datetime, ahead: dt.timedelta) -> str | None:
    """Why ``value`` lies outside [EARLIEST, now + ahead], or ``None``.  Aware datetimes
    compare by their instants without being converted, so out-of-range ones compare too."""
    if value < EARLIEST:
        return f"must not be before {EARLIEST.isoformat()}"
    if value > now + ahead:
        return f"must not be more than {ahead.days} day(s) after the server's clock"
    return None
