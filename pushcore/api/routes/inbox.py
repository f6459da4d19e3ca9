"""Inbox routes: a user's stored messages, listed with counts, marked seen, deleted.

Device side, with the installation secret: the inbox of the installation's current user (an
anonymous installation has none: 409 ``not_personalized``).  Server side, with the server
key: the inbox of any user of the app.  Seen and deleted are the user's, so every device of
the user sees the same inbox.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from typing import Annotated, Any

import msgspec

from pushcore.api.errors import ApiError, conflict, invalid, not_found, unauthorized
from pushcore.api.routing import Auth, Call, Reply, Route
from pushcore.api.schemas import (
    MAX_INBOX_PAGE,
    InboxMessage,
    InboxPage,
    InboxSeen,
    InboxSeenResult,
)
from pushcore.api.state import POOL, PROGRAMS, SETTINGS
from pushcore.db import inbox as queries
from pushcore.fanout.render import page_for_reader
from pushcore.templates import locale

DEFAULT_LIMIT = 20
MAX_TOPICS = 20
_Topic = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_Time = Annotated[dt.datetime, msgspec.Meta(tz=True)]
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _who(call: Call) -> queries.Who:
    if call.secret_hash is not None:
        return queries.device(call.installation_id(), call.secret_hash)
    return queries.user(call.server_app().id, call.param("external_user_id"))


async def _no_owner(call: Call) -> ApiError:
    """Why no inbox was found for the call's credentials."""
    if call.secret_hash is None:
        return not_found("user")
    pool = call.request.app[POOL]
    if await queries.installation_anonymous(pool, call.installation_id(), call.secret_hash):
        return conflict(
            "not_personalized", "an anonymous installation has no inbox: personalize it first"
        )
    return unauthorized("unknown installation or wrong installation secret")


def _cursor(position: tuple[dt.datetime, int]) -> str:
    micros = (position[0] - _EPOCH) // dt.timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"{micros}.{position[1]}".encode()).decode().rstrip("=")


def _position(raw: str) -> tuple[dt.datetime, int]:
    refused = invalid("cursor", "not a cursor this API returned")
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        micros, message_id = (int(part) for part in text.split("."))
        at = _EPOCH + dt.timedelta(microseconds=micros)
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError):
        raise refused from None
    if not 0 < message_id < 2**63:  # a bigint, or PostgreSQL refuses the parameter
        raise refused
    return at, message_id


def _convert(name: str, raw: str, kind: Any) -> Any:
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        raise invalid(name, f"{name}: {exc}") from None


async def read(call: Call) -> Reply:
    query = call.request.query
    try:
        limit = int(query.get("limit", str(DEFAULT_LIMIT)))
    except ValueError:
        raise invalid("limit", "limit must be an integer") from None
    if not 1 <= limit <= MAX_INBOX_PAGE:
        raise invalid("limit", f"limit must be 1 to {MAX_INBOX_PAGE}")
    topics = [_convert("topic", t, _Topic) for t in query.getall("topic", [])]
    if len(topics) > MAX_TOPICS:
        raise invalid("topic", f"at most {MAX_TOPICS} topics")
    since = _convert("from", query["from"], _Time) if "from" in query else None
    until = _convert("to", query["to"], _Time) if "to" in query else None
    if since is not None and until is not None and until <= since:
        raise invalid("to", "to must be later than from")
    after = _position(query["cursor"]) if "cursor" in query else None
    language = query.get("language")
    if language is not None and not locale.valid_language(language):
        raise invalid("language", "language: not a valid BCP 47 language tag")
    page = await queries.read(
        call.request.app[POOL],
        _who(call),
        topics=topics or None,
        since=since,
        until=until,
        after=after,
        limit=limit + 1,  # one more tells whether there is a next page
    )
    if page is None:
        raise await _no_owner(call)
    rows = page.rows[:limit]
    more = len(page.rows) > limit
    # bounded: a page holds at most MAX_INBOX_PAGE messages
    shown = await page_for_reader(
        call.request.app[PROGRAMS],
        rows,
        page.reader,
        language=language,
        unread=page.unread,
        render_seconds=call.request.app[SETTINGS].template_render_seconds,
    )
    messages = [
        InboxMessage(
            message_id=r["public_id"],
            sent_at=r["sent_at"],
            topic=r["topic"],
            notification=notification,
            seen_at=r["seen_at"],
        )
        for r, notification in zip(rows, shown, strict=True)
    ]
    return Reply(
        200,
        InboxPage(
            messages=messages,
            count_total=page.total,
            count_unread=page.unread,
            count_total_filtered=page.total_filtered,
            count_unread_filtered=page.unread_filtered,
            next_cursor=_cursor((rows[-1]["sent_at"], rows[-1]["message_id"])) if more else None,
        ),
    )


async def seen(call: Call) -> Reply:
    body: InboxSeen = call.body
    marked = await queries.mark_seen(call.request.app[POOL], _who(call), body.message_ids)
    if marked is None:
        raise await _no_owner(call)
    unread, ignored = marked
    return Reply(200, InboxSeenResult(count_unread=unread, ignored=ignored))


async def delete(call: Call) -> Reply:
    try:
        message_id = uuid.UUID(call.param("message_id"))
    except ValueError:
        message_id = uuid.UUID(int=0)  # no message has it: 404 once the owner is known
    removed = await queries.delete(call.request.app[POOL], _who(call), message_id)
    if removed is None:
        raise await _no_owner(call)
    if not removed:
        raise not_found("inbox message")
    return Reply(204)


_QUERY = ("topic", "from", "to", "limit", "cursor", "language")
_READ = (
    "Newest first; topic (repeatable), from (inclusive) and to (exclusive) on sent_at, "
    f"limit 1-{MAX_INBOX_PAGE} (default {DEFAULT_LIMIT}), cursor from the last page. "
    "Templated messages are rendered for the user, in language (BCP 47) when given, else "
    "in the reading installation's registered language"
)
DEVICE = "/v1/installations/{installation_id}/inbox"
SERVER = "/v1/apps/{app_code}/users/{external_user_id}/inbox"


def _routes(path: str, who: Auth, whose: str, errors: tuple[int, ...]) -> list[Route]:
    """The three inbox routes under ``path``; ``errors``: what every one of them may answer."""
    return [
        Route(
            "GET",
            path,
            read,
            who,
            f"The inbox of {whose} with its counts. {_READ}",
            response=InboxPage,
            errors=(*errors, 422),
            tag=who,
            query=_QUERY,
        ),
        Route(
            "POST",
            path + "/seen",
            seen,
            who,
            f"Mark up to {MAX_INBOX_PAGE} messages seen for {whose}, on every device (the "
            "first seen_at stays); ids not in the inbox are counted in ignored",
            body=InboxSeen,
            response=InboxSeenResult,
            errors=(400, *errors, 413, 422),
            tag=who,
        ),
        Route(
            "DELETE",
            path + "/{message_id}",
            delete,
            who,
            f"Remove a message from the inbox of {whose}, on every device",
            status=204,
            errors=errors,
            tag=who,
        ),
    ]


ROUTES = [
    *_routes(DEVICE, "device", "this installation's user", (401, 404, 409)),
    *_routes(SERVER, "server", "the user", (401, 404)),
]
