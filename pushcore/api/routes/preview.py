"""``POST /v1/apps/{app_code}/messages/preview``: a send body rendered for one user's
installations (or one installation) exactly as the send workers would render it, without
sending anything."""

from __future__ import annotations

from typing import Any

import msgspec

from pushcore.api.errors import invalid, not_found
from pushcore.api.routes.messages import MAX_SEND_BODY, MESSAGES, app_row
from pushcore.api.routing import Call, Reply, Route
from pushcore.api.schemas import PreviewIn, PreviewOut, PreviewPayload
from pushcore.api.state import POOL, PROVIDERS, SETTINGS
from pushcore.db import recipients
from pushcore.fanout.errors import InvalidSend
from pushcore.fanout.render import preview, unread_itself
from pushcore.fanout.submit import check
from pushcore.providers.base import Provider


async def preview_message(call: Call) -> Reply:
    body: PreviewIn = call.body
    if (body.external_user_id is None) == (body.installation_id is None):
        raise invalid("external_user_id", "give external_user_id or installation_id (one)")
    app = call.request.app
    row = await app_row(call)
    try:
        platforms = check(body.message, row, app[SETTINGS], app[PROVIDERS])
    except InvalidSend as exc:
        raise invalid(f"message.{exc.field}", exc.message) from None
    found = await recipients.for_preview(
        app[POOL],
        row["id"],
        platforms,
        external_user_id=body.external_user_id,
        installation_id=body.installation_id,
        unread=unread_itself(body.message),
    )
    if not found:
        raise not_found("user" if body.external_user_id is not None else "installation")
    stored: dict[str, Any] = row["credentials"]
    providers: dict[str, Provider[Any]] = {
        p: app[PROVIDERS].get(row["id"], p, row["updated_at"], stored[p]) for p in platforms
    }
    rendered = preview(
        body.message, providers, found, render_seconds=app[SETTINGS].template_render_seconds
    )
    return Reply(
        200,
        PreviewOut(
            payloads=[
                PreviewPayload(
                    installation_id=r.installation["public_id"],
                    platform=r.installation["platform"],
                    language=r.installation["recipient"]["installation"]["device"].get("language"),
                    payload=None if r.payload is None else _json(r.payload),
                    failed=r.failed,
                )
                for r in rendered
            ]
        ),
    )


def _json(payload: bytes) -> Any:
    try:
        return msgspec.json.decode(payload)
    except msgspec.DecodeError:  # a Web Push payload override may be any bytes
        return payload.decode("utf-8", "replace")


ROUTES = [
    Route(
        "POST",
        MESSAGES + "/preview",
        preview_message,
        "server",
        "Render a send body for one user's installations (or one installation) as it would "
        "be sent, without sending: each installation's provider payload, or why it would fail",
        body=PreviewIn,
        response=PreviewOut,
        errors=(401, 404, 413, 422),
        tag="messages",
        max_body=MAX_SEND_BODY,
    ),
]
