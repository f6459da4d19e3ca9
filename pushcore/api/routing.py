"""Declarative routes: one table drives the aiohttp router and the OpenAPI document.

A :class:`Route` names its method, path, who may call it (``auth``), the body type it
decodes, the response type and status it answers with and the error statuses it may
produce.  :func:`install` wraps each handler so that authentication and body decoding
happen before it runs; the handler receives a :class:`Call` and returns a :class:`Reply`.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from aiohttp import web

from pushcore.api import auth
from pushcore.api.errors import ApiError, from_validation, not_found, unauthorized
from pushcore.api.state import POOL, SERVER_KEYS, SETTINGS
from pushcore.db import apps as app_queries

Auth = Literal["public", "admin", "server", "admin_or_server", "device"]


@dataclass(frozen=True, slots=True)
class Raw:
    """A body that is not JSON (the Prometheus exposition format)."""

    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any = None  # a msgspec struct, or None for 204


@dataclass(slots=True)
class Call:
    request: web.Request
    body: Any
    app: auth.AppRef | None  # the app of a server key (server routes)
    secret_hash: bytes | None  # digest of the installation secret (device routes)

    def param(self, name: str) -> str:
        return self.request.match_info[name]

    def installation_id(self) -> uuid.UUID:
        try:
            return uuid.UUID(self.param("installation_id"))
        except ValueError:
            raise not_found("installation") from None

    def server_app(self) -> auth.AppRef:
        assert self.app is not None, "route is not server-authenticated"
        return self.app

    def device_secret(self) -> bytes:
        assert self.secret_hash is not None, "route is not device-authenticated"
        return self.secret_hash


Handler = Callable[[Call], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    auth: Auth
    summary: str
    body: Any = None  # type decoded from the JSON body, None for no body
    response: Any = None  # type of the answer, None for 204
    status: int = 200
    errors: tuple[int, ...] = ()
    tag: str = ""
    query: tuple[str, ...] = ()  # query parameters, documented as optional strings
    also: tuple[int, ...] = ()  # other success statuses (e.g. 200 for an upsert's update)
    max_body: int = 64 * 1024  # larger bodies are refused with 413
    raw: str | None = None  # content type of a non-JSON answer
    # what the OpenAPI document shows for the body when it differs from what is decoded
    # (a batch decodes its items one by one, so that each is answered on its own)
    documented_body: Any = None


async def _authenticate(
    route: Route, request: web.Request
) -> tuple[auth.AppRef | None, bytes | None]:
    if route.auth == "public":
        return None, None
    credential = auth.bearer(request)
    settings = request.app[SETTINGS]
    is_admin = settings.admin_token is not None and hmac.compare_digest(
        credential.encode(), settings.admin_token.encode()
    )
    if route.auth == "admin":
        if not is_admin:
            raise unauthorized("admin token required")
        return None, None
    if route.auth == "device":
        return None, auth.digest(credential)
    if route.auth == "admin_or_server" and is_admin:
        return None, None
    app = await _server_app(request, credential)
    # A key of another app gets 404 for anything of this app: it must not learn that the
    # app exists.
    if app.code != request.match_info.get("app_code"):
        raise not_found("app")
    return app, None


async def _server_app(request: web.Request, credential: str) -> auth.AppRef:
    if not credential.startswith(auth.SERVER_KEY_PREFIX):
        raise unauthorized("not a server key")
    key_digest = auth.digest(credential)
    cache = request.app[SERVER_KEYS]
    app = cache.get(key_digest)
    if app is None:
        row = await app_queries.app_for_key(request.app[POOL], key_digest)
        if row is None:
            raise unauthorized("unknown or revoked server key")
        app = auth.AppRef(id=row["id"], code=row["code"])
        cache.put(key_digest, app)
    return app


def _decode(route: Route, raw: bytes) -> Any:
    if route.body is None:
        return None
    if not raw:
        raise ApiError(400, "body_required", "a JSON request body is required")
    try:
        return msgspec.json.decode(raw, type=route.body)
    except msgspec.ValidationError as exc:
        raise from_validation(exc) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None


async def _read(request: web.Request, limit: int) -> bytes:
    too_large = ApiError(413, "body_too_large", f"the body exceeds {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    raw = await request.read()  # bounded by the application's client_max_size as well
    if len(raw) > limit:
        raise too_large
    return raw


def _wrap(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        app, secret_hash = await _authenticate(route, request)
        body = _decode(route, await _read(request, route.max_body)) if route.body else None
        reply = await route.handler(Call(request, body, app, secret_hash))
        if reply.body is None:
            return web.Response(status=reply.status)
        if isinstance(reply.body, Raw):
            return web.Response(
                status=reply.status,
                body=reply.body.body,
                headers={"Content-Type": reply.body.content_type},
            )
        return web.Response(
            status=reply.status,
            body=msgspec.json.encode(reply.body),
            content_type="application/json",
        )

    return handle


def install(router: web.UrlDispatcher, routes: list[Route]) -> None:
    for route in routes:
        router.add_route(route.method, route.path, _wrap(route))
