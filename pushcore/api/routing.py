"""Declarative routes: one table drives the aiohttp router and the OpenAPI document.

A :class:`Route` names its method, path, who may call it (``auth``), the body type it
decodes, the response type and status it answers with and the error statuses it may
produce.  :func:`install` wraps each handler so that authentication, the path and query
parameters (a NUL in a path id is a 404, query values are converted to their documented
types) and body decoding (a JSON Content-Type or 415; :mod:`pushcore.api.decoding`) happen
before it runs; the handler receives a :class:`Call` and returns a :class:`Reply`.
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
from pushcore.api.decoding import NUL, decode
from pushcore.api.errors import ApiError, invalid, not_found, unauthorized
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


@dataclass(frozen=True, slots=True)
class Query:
    """A query parameter: ``kind`` is the msgspec type its value converts to (and the schema
    the OpenAPI document shows), so the document states exactly what is enforced."""

    name: str
    kind: Any
    description: str
    default: Any = None


@dataclass(slots=True)
class Call:
    request: web.Request
    body: Any
    app: auth.AppRef | None  # the app of a server key (server routes)
    secret_hash: bytes | None  # digest of the installation secret (device routes)
    query: dict[str, Any]  # the route's query parameters, converted (absent: default)

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
    # optional query parameters; a bare name is a plain string (prefer a Query: its type is
    # both what is checked and what the document shows)
    query: tuple[Query | str, ...] = ()
    description: str = ""  # rules the schemas cannot state (the document's description)
    database: bool = True  # answers 503 when PostgreSQL is unavailable (see app.errors)
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


# what a 404 names when a path parameter cannot be an id (a NUL in it)
_PATH_NAMES = {
    "app_code": "app",
    "key_id": "key",
    "installation_id": "installation",
    "external_user_id": "user",
    "message_id": "message",
}


def _check_path(request: web.Request) -> None:
    """No id holds a NUL (PostgreSQL text cannot), so such a path names nothing: 404."""
    for name, value in request.match_info.items():
        if NUL in value:
            raise not_found(_PATH_NAMES.get(name, name))


def queries_of(route: Route) -> list[Query]:
    return [Query(q, str, "") if isinstance(q, str) else q for q in route.query]


def _queries(route: Route, request: web.Request) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for query in queries_of(route):
        raw = request.query.get(query.name)
        if raw is None:
            values[query.name] = query.default
            continue
        if NUL in raw:
            raise invalid(query.name, "must not contain the NUL character (U+0000)")
        try:
            # strict=False: a query value is text, converted to the documented type
            values[query.name] = msgspec.convert(raw, query.kind, strict=False)
        except msgspec.ValidationError as exc:
            message = f"{query.description}: {exc}" if query.description else str(exc)
            raise invalid(query.name, message) from None
    return values


def is_json(content_type: str) -> bool:
    """``application/json`` or a ``+json`` type (parameters such as charset aside)."""
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def _decode(route: Route, request: web.Request, raw: bytes) -> Any:
    if not raw:
        raise ApiError(400, "body_required", "a JSON request body is required")
    if not is_json(request.content_type):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"the body must be sent as Content-Type: application/json, not "
            f"{request.headers.get('Content-Type', 'none')!r}",
        )
    return decode(raw, route.body)


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
        _check_path(request)
        query = _queries(route, request)
        body = None
        if route.body is not None:
            body = _decode(route, request, await _read(request, route.max_body))
        reply = await route.handler(Call(request, body, app, secret_hash, query))
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
