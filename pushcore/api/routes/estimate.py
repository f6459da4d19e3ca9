"""The audience estimate route: what a send target would reach, per platform, without
sending (the console's compose page shows it before the confirm step)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from pushcore.api.errors import invalid

# the send routes' cached app row (credentials included): the estimate decides platforms as
# a send does
from pushcore.api.routes.messages import MESSAGES, app_row
from pushcore.api.routing import Call, Reply, Route
from pushcore.api.state import POOL, SETTINGS
from pushcore.fanout.errors import InvalidSend
from pushcore.fanout.estimate import estimate
from pushcore.fanout.targets import Target
from pushcore.providers import registry
from pushcore.providers.registry import Platform

# the target lists of a send (100,000 ids) need more than the 64 KiB of other routes
MAX_ESTIMATE_BODY = 8 * 1024 * 1024


class EstimateIn(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The parts of a send that decide whom it reaches, as ``POST …/messages`` takes them."""

    target: Target
    platforms: (
        Annotated[list[Platform], msgspec.Meta(min_length=1, max_length=len(registry.NAMES))] | None
    ) = None
    primary_only: bool = False


class EstimateOut(msgspec.Struct, kw_only=True):
    total: int
    # every platform the send would go to (those asked for, or every configured one)
    platforms: dict[str, int]


async def estimate_audience(call: Call) -> Reply:
    body: EstimateIn = call.body
    row = await app_row(call)
    try:
        found = await estimate(
            call.request.app[POOL],
            row,
            body.target,
            platforms=body.platforms,
            primary_only=body.primary_only,
            policy=call.request.app[SETTINGS].endpoint_policy(),
        )
    except InvalidSend as exc:
        raise invalid(exc.field, exc.message) from None
    return Reply(200, EstimateOut(total=found.total, platforms=found.platforms))


ROUTES = [
    Route(
        "POST",
        MESSAGES + ":estimate",
        estimate_audience,
        "server",
        "Count the installations a send with this target, platforms and primary_only would "
        "reach now, per platform, without sending anything",
        body=EstimateIn,
        response=EstimateOut,
        errors=(400, 401, 404, 413, 422),
        tag="messages",
        max_body=MAX_ESTIMATE_BODY,
    ),
]
