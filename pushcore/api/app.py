"""The aiohttp application: state, middlewares, resources and serving on uvloop.

Resources live in ``cleanup_ctx`` (one per resource) so that start-up failures and shutdown
close them in order.  Serving stops on SIGTERM/SIGINT: the listening socket closes first,
requests in flight get ``shutdown_timeout`` seconds to finish, then the pool closes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
from aiohttp import web
from prometheus_client import Counter, Histogram

from pushcore.api import openapi
from pushcore.api.auth import ServerKeyCache, TtlCache
from pushcore.api.errors import ApiError
from pushcore.api.routes import ROUTES
from pushcore.api.routing import install
from pushcore.api.state import (
    APPS,
    ENQUEUER,
    LANE_WAKER,
    POOL,
    PROGRAMS,
    PROVIDERS,
    SERVER_KEYS,
    SETTINGS,
)
from pushcore.config import Settings
from pushcore.db.errors import DatabaseError
from pushcore.db.lane import Waker
from pushcore.db.pool import create_pool
from pushcore.fanout.providers import ProviderCache
from pushcore.fanout.queue import Enqueuer
from pushcore.fanout.render import Programs

log = logging.getLogger(__name__)

REQUESTS = Counter(
    "pushcore_api_requests_total",
    "API requests by route and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "pushcore_api_request_seconds",
    "API request latency by route.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

# The largest body any route takes (a send with 100,000 ids); each route checks its own
# bound, 64 KiB for all others.
MAX_BODY = 8 * 1024 * 1024
SHUTDOWN_TIMEOUT = 10.0
# Templated messages whose compiled templates an API process keeps for inbox reads: two
# full pages (MAX_INBOX_PAGE) of distinct templated messages.
INBOX_PROGRAMS = 200

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


def _error(exc: ApiError) -> web.Response:
    return web.json_response(exc.body(), status=exc.status)


@web.middleware
async def errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error leaves as ``{"error": {...}}``; a client can never cause a 500."""
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason if exc.status != 413 else "the body is too large"
        response = _error(ApiError(exc.status, code, message))
        # a 405 must say which methods the resource has (RFC 9110 §15.5.6)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except (
        DatabaseError,
        asyncpg.InterfaceError,
        asyncpg.PostgresConnectionError,
        OSError,
        TimeoutError,
    ) as exc:
        log.warning("database unavailable: %s", type(exc).__name__)
        return _error(ApiError(503, "unavailable", "the database is unavailable; retry"))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(ApiError(500, "internal", "internal error"))


@web.middleware
async def measured(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Requests by route and status, and their latency (route templates, never raw paths:
    ids in paths would make the label set unbounded)."""
    started = time.perf_counter()
    response = await handler(request)
    info = request.match_info.route.resource
    route = info.canonical if info is not None else "unmatched"
    REQUESTS.labels(request.method, route, str(response.status)).inc()
    LATENCY.labels(route).observe(time.perf_counter() - started)
    return response


def make_app(settings: Settings, enqueuer: Enqueuer | None = None) -> web.Application:
    app = web.Application(middlewares=[measured, errors], client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[SERVER_KEYS] = ServerKeyCache(settings.auth_cache_seconds)
    app[PROVIDERS] = ProviderCache(settings)
    app[PROGRAMS] = Programs(INBOX_PROGRAMS)
    app[APPS] = TtlCache(settings.auth_cache_seconds, size=1000)
    app[openapi.DOCUMENT] = openapi.build(ROUTES)
    if enqueuer is None:
        # the Dramatiq implementation lives with the workers; imported here, not at module
        # level, so that pushcore's layers never import workers/ (tests hand in their own)
        from workers.broker import make_broker
        from workers.enqueue import DramatiqEnqueuer

        enqueuer = DramatiqEnqueuer(make_broker(settings))
    app[ENQUEUER] = enqueuer
    install(app.router, ROUTES)
    # the web console sits above the API (it uses the API's types and state): imported here,
    # not at module level; without a configured secret it gets one for this process
    from pushcore.config import with_console_secret
    from pushcore.console.app import make_console

    app.add_subapp("/console/", make_console(with_console_secret(settings)))

    async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
        app[POOL] = await create_pool(settings)
        app[LANE_WAKER] = Waker(app[POOL])
        yield
        await app[LANE_WAKER].aclose()
        await app[POOL].close()

    async def enqueuer_ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        await app[ENQUEUER].aclose()

    app.cleanup_ctx.append(pool_ctx)
    app.cleanup_ctx.append(enqueuer_ctx)
    return app


async def serve(settings: Settings, host: str, port: int, *, reuse_port: bool = False) -> None:
    """Serve until SIGTERM/SIGINT, then shut down gracefully."""
    runner = web.AppRunner(make_app(settings), shutdown_timeout=SHUTDOWN_TIMEOUT, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port, backlog=1024)
    await site.start()
    log.info("API listening on http://%s:%d", host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("shutting down: finishing requests in flight")
    finally:
        await runner.cleanup()


def run(settings: Settings, host: str, port: int, *, reuse_port: bool = False) -> None:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(settings, host, port, reuse_port=reuse_port))
