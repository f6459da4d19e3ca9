"""Per-recipient results of a message: ``GET /v1/apps/{app_code}/messages/{id}/results``.

Each registration's last answer (an answer that led to a retry is superseded by the retry's),
optionally of one outcome, paged by an opaque keyset cursor.  Kept for
PUSHCORE_RESULTS_RETENTION_DAYS.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid

from msgspec import Struct

from pushcore.api.errors import invalid, not_found
from pushcore.api.routing import Call, Reply, Route
from pushcore.api.state import POOL
from pushcore.db import results as queries
from pushcore.db.pool import Record
from pushcore.fanout import results

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
_CURSOR = re.compile(r"(\d{1,18})\.(\d{1,9})")


class RecipientResult(Struct, kw_only=True):
    # a registration's id; None for a raw token, or a registration deleted by other means
    installation_id: uuid.UUID | None
    token_suffix: str | None  # a raw token's last 8 characters (registrations: None)
    external_user_id: str | None
    platform: str
    outcome: str  # delivered | invalid | failed
    reason: str  # the provider's answer (or why nothing was sent)
    attempts: int


class ResultsPage(Struct, kw_only=True):
    results: list[RecipientResult]
    next_cursor: str | None


def _outcome(call: Call) -> str | None:
    value = call.request.query.get("outcome")
    if value is None:
        return None
    if value not in results.OUTCOMES:
        raise invalid("outcome", f"outcome must be one of {', '.join(results.OUTCOMES)}")
    return value


def _limit(call: Call) -> int:
    raw = call.request.query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise invalid("limit", f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def encode_cursor(batch_id: int, position: int) -> str:
    return base64.urlsafe_b64encode(f"{batch_id}.{position}".encode()).decode().rstrip("=")


def _cursor(call: Call) -> tuple[int, int]:
    raw = call.request.query.get("cursor")
    if not raw:
        return (0, 0)
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    found = _CURSOR.fullmatch(text)
    if found is None:
        raise invalid("cursor", "cursor must be a next_cursor of an earlier page")
    return int(found[1]), int(found[2])


def _result(row: Record) -> RecipientResult:
    outcome, reason = results.split(row["label"])
    if outcome == results.INVALID and not row["removed"] and not row["raw"]:
        # answered dead, but its token changed before the write: kept, counted as failed
        outcome, reason = results.FAILED, "token_changed"
    found = row["installation_id"]
    return RecipientResult(
        installation_id=uuid.UUID(found) if found else None,
        token_suffix=row["token_suffix"] if row["raw"] else None,
        external_user_id=row["external_user_id"],
        platform=row["platform"],
        outcome=outcome,
        reason=reason,
        attempts=row["attempt"] + 1,
    )


async def listing(call: Call) -> Reply:
    outcome, limit, after = _outcome(call), _limit(call), _cursor(call)
    try:
        public_id = uuid.UUID(call.param("message_id"))
    except ValueError:
        raise not_found("message") from None
    pool = call.request.app[POOL]
    message_id = await queries.message_row_id(pool, call.server_app().id, public_id)
    if message_id is None:
        raise not_found("message")
    rows = await queries.page(pool, message_id, outcome=outcome, after=after, limit=limit)
    next_cursor = None
    if len(rows) == limit:
        next_cursor = encode_cursor(rows[-1]["batch_id"], rows[-1]["pos"])
    return Reply(200, ResultsPage(results=[_result(r) for r in rows], next_cursor=next_cursor))


ROUTES = [
    Route(
        "GET",
        "/v1/apps/{app_code}/messages/{message_id}/results",
        listing,
        "server",
        "Per-recipient results: each registration's last answer (outcome delivered, invalid "
        f"or failed, reason, attempts), {MAX_LIMIT} at most per page; next_cursor pages on",
        response=ResultsPage,
        errors=(401, 404, 422),
        tag="messages",
        query=("outcome", "cursor", "limit"),
    ),
]
