"""The OpenAPI 3.1 document, generated from the route tables and the msgspec structs.

msgspec produces JSON Schema 2020-12, which is what OpenAPI 3.1 uses, so body schemas are
taken as they are; routes contribute paths, parameters, security and responses.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from pushcore import __version__
from pushcore.api.routing import Route, queries_of
from pushcore.api.schemas import ErrorBody, cross_field_rules

DOCUMENT = web.AppKey("openapi", dict)
REF = "#/components/schemas/{name}"
_PARAM = re.compile(r"\{(\w+)\}")

_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "public": [],
    "admin": [{"admin": []}],
    "server": [{"server_key": []}],
    "admin_or_server": [{"admin": []}, {"server_key": []}],
    "device": [{"installation_secret": []}],
}
_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Malformed request: no body (body_required), a body that is not JSON "
    "(invalid_json), or a rule of the operation's description broken",
    401: "Missing or wrong credential",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Body larger than the route's limit (64 KiB; 8 MiB for sends)",
    415: "The body is not sent as Content-Type: application/json",
    422: "A field is invalid (the error names it)",
    503: "The database is unavailable (or, for /readyz, did not answer in time); retry",
}


_SECURITY_SCHEMES = {
    "admin": {"type": "http", "scheme": "bearer", "description": "PUSHCORE_ADMIN_TOKEN"},
    "server_key": {
        "type": "http",
        "scheme": "bearer",
        "description": "a server key of the app (pcs_…)",
    },
    "installation_secret": {
        "type": "http",
        "scheme": "bearer",
        "description": "the installation secret (pci_…)",
    },
}


def build(routes: list[Route]) -> dict[str, Any]:
    types = [ErrorBody]
    for route in routes:
        types += [t for t in (_body(route), route.response) if t not in (None, dict)]
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    for name, rules in cross_field_rules().items():
        component = components[name]
        described = " ".join(filter(None, (component.get("description"), rules.get("description"))))
        component.update(rules)
        if described:
            component["description"] = described
    by_type = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, by_type)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pushcore",
            "version": __version__,
            "description": "Device registry and push fan-out. Errors are always "
            '{"error": {"code", "message", "field"?}}. A method a path does not have is '
            "answered 405 with an Allow header. Bodies are JSON sent as Content-Type: "
            "application/json (else 415). Integer fields take integers written as such "
            "(6907, not 6907.0 or 6.907e3): the decoder is strict. No string may hold "
            "U+0000.",
        },
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": _SECURITY_SCHEMES},
    }


def _operation(route: Route, by_type: dict[Any, Any]) -> dict[str, Any]:
    """One route's operation object: parameters, body, responses, security."""
    op: dict[str, Any] = {
        "operationId": route.handler.__name__ + "_" + route.auth,
        "summary": route.summary,
        "tags": [route.tag] if route.tag else [],
        "security": _SECURITY[route.auth],
        "parameters": _parameters(route),
        "responses": _responses(route, by_type),
    }
    if route.description:
        op["description"] = route.description
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": by_type[_body(route)]}},
        }
    return op


def _body(route: Route) -> Any:
    return route.documented_body if route.documented_body is not None else route.body


def _parameters(route: Route) -> list[dict[str, Any]]:
    path = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(route.path)
    ]
    query = []
    for q in queries_of(route):
        schema = msgspec.json.schema(q.kind)
        if q.default is not None:
            schema["default"] = q.default
        param: dict[str, Any] = {"name": q.name, "in": "query", "required": False}
        if q.description:
            param["description"] = q.description
        query.append({**param, "schema": schema})
    return path + query


def _responses(route: Route, by_type: dict[Any, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in (route.status, *route.also):
        response: dict[str, Any] = {"description": _REASONS[status]}
        if route.raw is not None:
            response["content"] = {route.raw: {"schema": {"type": "string"}}}
        elif route.response is not None:
            schema = {"type": "object"} if route.response is dict else by_type[route.response]
            response["content"] = {"application/json": {"schema": schema}}
        responses[str(status)] = response
    errors = set(route.errors)
    if route.body is not None:
        errors |= {400, 415}  # see routing._decode
    if route.database:
        errors |= {503}  # see app.errors
    for status in sorted(errors):
        responses[str(status)] = {
            "description": _REASONS[status],
            "content": {"application/json": {"schema": by_type[ErrorBody]}},
        }
    return responses


def encoded(routes: list[Route]) -> bytes:
    return msgspec.json.encode(build(routes))
