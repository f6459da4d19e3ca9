"""Liveness and readiness probes, metrics, and the OpenAPI document."""

from __future__ import annotations

import asyncio

import asyncpg

from pushcore.api.errors import ApiError
from pushcore.api.routing import Call, Raw, Reply, Route
from pushcore.api.schemas import Health
from pushcore.api.state import POOL
from pushcore.db.pool import ping

READY_TIMEOUT = 2.0


async def healthz(call: Call) -> Reply:
    return Reply(200, Health(status="ok"))


async def readyz(call: Call) -> Reply:
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await ping(call.request.app[POOL])
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        raise ApiError(503, "not_ready", "the database does not answer") from None
    return Reply(200, Health(status="ready"))


async def openapi(call: Call) -> Reply:
    from pushcore.api.openapi import DOCUMENT

    return Reply(200, call.request.app[DOCUMENT])


async def metrics(call: Call) -> Reply:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Reply(200, Raw(generate_latest(), CONTENT_TYPE_LATEST))


ROUTES = [
    Route(
        "GET",
        "/healthz",
        healthz,
        "public",
        "The process is up",
        response=Health,
        tag="operations",
        database=False,
    ),
    Route(
        "GET",
        "/readyz",
        readyz,
        "public",
        "The database answers",
        response=Health,
        errors=(503,),
        tag="operations",
        database=False,
    ),
    Route(
        "GET",
        "/metrics",
        metrics,
        "public",
        "Prometheus metrics of this API process",
        tag="operations",
        raw="text/plain",
        database=False,
    ),
    Route(
        "GET",
        "/v1/openapi.json",
        openapi,
        "public",
        "This document",
        response=dict,
        tag="operations",
        database=False,
    ),
]
