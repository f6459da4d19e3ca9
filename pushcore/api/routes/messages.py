"""Server-side message routes: send (one, or a batch of up to 1,000), show, list, cancel."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import msgspec

from pushcore.api.decoding import decode
from pushcore.api.errors import ApiError, invalid, not_found
from pushcore.api.routing import Call, Query, Reply, Route
from pushcore.api.schemas import (
    MAX_SEND_BATCH,
    Counts,
    ErrorDetail,
    MessageList,
    MessageOut,
    SendBatch,
    SendBatchIn,
    SendBatchResult,
    SendResult,
)
from pushcore.api.state import APPS, ENQUEUER, LANE_WAKER, POOL, PROVIDERS, SETTINGS
from pushcore.db import apps as app_queries
from pushcore.db import messages as queries
from pushcore.db.pool import Record
from pushcore.fanout.errors import InvalidSend
from pushcore.fanout.request import SendRequest, SendRequestBase
from pushcore.fanout.submit import submit

MAX_LIST = 100
# A send may carry 100,000 ids; the other routes keep the 64 KiB bound.
MAX_SEND_BODY = 8 * 1024 * 1024


def message_out(row: Record) -> MessageOut:
    done = (
        row["delivered"] + row["invalid_removed"] + row["invalid"] + row["failed"] + row["retrying"]
    )
    return MessageOut(
        message_id=row["public_id"],
        status=row["status"],
        counts=Counts(
            targeted=row["targeted"],
            delivered=row["delivered"],
            invalid_removed=row["invalid_removed"],
            invalid=row["invalid"],
            failed=row["failed"],
            retrying=row["retrying"],
            pending=row["targeted"] - done,
            waiting=row["waiting"],
            opened=row["opened"],
            inboxed=row["inboxed"],
            seen=row["seen"],
        ),
        failure_reasons=row["failure_reasons"],
        errors=row["errors"],
        platforms=row["platforms"],
        created_at=row["created_at"],
        send_at=row["send_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def _message_id(call: Call) -> uuid.UUID:
    try:
        return uuid.UUID(call.param("message_id"))
    except ValueError:
        raise not_found("message") from None


async def send(call: Call) -> Reply:
    body: SendRequestBase = call.body
    row = await app_row(call)
    try:
        message, created = await _submit(call, row, body)
    except InvalidSend as exc:
        raise invalid(exc.field, exc.message) from None
    return Reply(202 if created else 200, message_out(message))


async def send_batch(call: Call) -> Reply:
    """Each item is decoded, checked and stored on its own (its own transaction), so one
    refused item refuses only itself; answers keep the items' order."""
    body: SendBatchIn = call.body
    row = await app_row(call)
    # a few at a time: each holds a pool connection for its insert
    slots = asyncio.Semaphore(max(1, call.request.app[SETTINGS].db_pool_max // 2))

    async def one(index: int, raw: msgspec.Raw) -> SendResult:
        async with slots:
            try:
                request = decode(bytes(raw), SendRequest)
                message, created = await _submit(call, row, request)
            except ApiError as exc:
                return _refused(exc, index)
            except InvalidSend as exc:
                return _refused(invalid(exc.field, exc.message), index)
            return SendResult(status=202 if created else 200, message=message_out(message))

    results = await asyncio.gather(*(one(i, raw) for i, raw in enumerate(body.messages)))
    return Reply(200, SendBatchResult(results=list(results)))


def _refused(error: ApiError, index: int) -> SendResult:
    field = f"messages[{index}].{error.field}" if error.field else f"messages[{index}]"
    return SendResult(
        status=error.status, error=ErrorDetail(code=error.code, message=error.message, field=field)
    )


async def app_row(call: Call) -> Record:
    """The app of the call's server key (cached per API process)."""
    code = call.server_app().code
    cache = call.request.app[APPS]
    row = cache.get(code)
    if row is None:
        row = await app_queries.get_app(call.request.app[POOL], code)
        if row is None:
            raise not_found("app")
        cache.put(code, row)
    return row


async def _submit(call: Call, row: Record, body: SendRequestBase) -> tuple[Record, bool]:
    app = call.request.app
    return await submit(
        app[POOL],
        app[SETTINGS],
        row,
        body,
        app[ENQUEUER].plan,
        providers=app[PROVIDERS],
        wake_lane=app[LANE_WAKER].poke,
    )


async def show(call: Call) -> Reply:
    row = await queries.get(call.request.app[POOL], call.server_app().id, _message_id(call))
    if row is None:
        raise not_found("message")
    return Reply(200, message_out(row))


async def listing(call: Call) -> Reply:
    rows = await queries.recent(
        call.request.app[POOL],
        call.server_app().id,
        limit=call.query["limit"],
        before=call.query["before"],
    )
    return Reply(200, MessageList(messages=[message_out(r) for r in rows]))


async def cancel(call: Call) -> Reply:
    row = await queries.cancel(call.request.app[POOL], call.server_app().id, _message_id(call))
    if row is None:
        raise not_found("message")
    return Reply(200, message_out(row))


MESSAGES = "/v1/apps/{app_code}/messages"
ROUTES = [
    Route(
        "POST",
        MESSAGES,
        send,
        "server",
        "Send a notification to a target (202); the same "
        "idempotency_key within 24 h returns the first message (200)",
        body=SendRequest,
        response=MessageOut,
        status=202,
        also=(200,),
        errors=(401, 404, 413, 422),
        tag="messages",
        max_body=MAX_SEND_BODY,
    ),
    Route(
        "POST",
        MESSAGES + ":batch",
        send_batch,
        "server",
        f"Send up to {MAX_SEND_BATCH} notifications in one call; each item is answered on its "
        "own, in order, as the single send would answer it (202, 200 or 422 with its error)",
        body=SendBatchIn,
        documented_body=SendBatch,
        response=SendBatchResult,
        errors=(401, 404, 413, 422),
        tag="messages",
        max_body=MAX_SEND_BODY,
    ),
    Route(
        "GET",
        MESSAGES,
        listing,
        "server",
        "Recent messages, newest first",
        response=MessageList,
        errors=(401, 404, 422),
        tag="messages",
        query=(
            Query(
                "limit",
                Annotated[int, msgspec.Meta(ge=1, le=MAX_LIST)],
                f"how many messages, 1 to {MAX_LIST}",
                default=20,
            ),
            Query("before", uuid.UUID, "a message_id: only messages older than it"),
        ),
    ),
    Route(
        "GET",
        MESSAGES + "/{message_id}",
        show,
        "server",
        "A message's status and counts",
        response=MessageOut,
        errors=(401, 404),
        tag="messages",
    ),
    Route(
        "DELETE",
        MESSAGES + "/{message_id}",
        cancel,
        "server",
        "Cancel: batches not yet sent are not sent",
        response=MessageOut,
        errors=(401, 404),
        tag="messages",
    ),
]
