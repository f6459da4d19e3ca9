"""The OpenAPI document served at /v1/openapi.json and the router agree."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest

from pushcore.api import openapi
from pushcore.api.app import make_app
from pushcore.api.routing import Call, Query, Reply, Route
from pushcore.api.state import POOL
from pushcore.config import Settings
from pushcore.fields import EMAIL_PATTERN, MSISDN_PATTERN
from tests.registry.helpers import ADMIN, App, Client, json, web_subscription

_PARAM = re.compile(r"\{(\w+)\}")


async def test_document_and_routes_agree(client: Client, settings: Settings) -> None:
    doc = await json(await client.get("/v1/openapi.json"), 200)
    assert doc["openapi"] == "3.1.0"
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    app = make_app(settings)
    served = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None
        and r.method != "HEAD"
        # the web console's pages are HTML for people, not part of the JSON API
        and not r.resource.canonical.startswith("/console/")
    }
    assert documented == served
    schemas = doc["components"]["schemas"]
    refs = re.findall(r'"\$ref": ?"#/components/schemas/(\w+)"', str(doc).replace("'", '"'))
    assert refs
    assert set(refs) <= set(schemas)
    for path, ops in doc["paths"].items():
        for op in ops.values():
            names = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert names == set(_PARAM.findall(path))
            assert op["responses"]


async def test_documented_bodies_reject_what_the_schema_rejects(client: Client) -> None:
    """The schema says additionalProperties false for request bodies, and so does the API."""
    doc = await json(await client.get("/v1/openapi.json"), 200)
    create = doc["components"]["schemas"]["InstallationCreate"]
    assert create.get("additionalProperties") is False
    assert create["required"] == ["platform"]


async def test_every_body_route_documents_400_and_415(client: Client) -> None:
    doc = await json(await client.get("/v1/openapi.json"), 200)
    with_body = 0
    for ops in doc["paths"].values():
        for op in ops.values():
            if "requestBody" not in op:
                continue
            with_body += 1
            for status in ("400", "413", "415", "422"):
                content = op["responses"][status]["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/ErrorBody"}, op
    assert with_body >= 12


async def test_query_parameters_say_what_is_enforced(client: Client) -> None:
    doc = await json(await client.get("/v1/openapi.json"), 200)

    def params(path: str) -> dict[str, dict[str, object]]:
        op = doc["paths"][path]["get"]
        return {p["name"]: p["schema"] for p in op["parameters"] if p["in"] == "query"}

    listing = params("/v1/apps/{app_code}/messages")
    assert listing["limit"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
    assert listing["before"] == {"type": "string", "format": "uuid"}
    users = params("/v1/apps/{app_code}/users")
    # the documented patterns are the very strings the server checks with
    assert users["email"]["pattern"] == EMAIL_PATTERN
    assert users["msisdn"]["pattern"] == MSISDN_PATTERN
    assert "exactly one" in doc["paths"]["/v1/apps/{app_code}/users"]["get"]["description"]


def test_patterns_mean_the_same_in_ecma_262() -> None:
    """JSON Schema validators and generated clients read patterns as ECMA-262: no class
    whose meaning differs from Python's (``\\s``, ``\\d``, ``\\w``, ``\\b``), no Python-only
    syntax; every escape is a \\x escape or a literal character."""
    for pattern in (EMAIL_PATTERN, MSISDN_PATTERN):
        assert not re.search(r"\\[sSdDwWbBAZ]|\(\?P|\(\?<|\(\?#", pattern), pattern
        assert all(e[1] in "x+.-[]" for e in re.findall(r"\\.", pattern)), pattern


def _validator(doc: dict[str, Any], component: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**doc, "$ref": f"#/components/schemas/{component}"})


# (body, documented as valid) for InstallationCreate; the API answers 201 or 422 alike
REGISTRATIONS: list[tuple[dict[str, Any], bool]] = [
    ({"platform": "ios"}, False),
    ({"platform": "ios", "push_token": None}, False),
    ({"platform": "web"}, False),
    ({"platform": "ios", "push_token": "ab" * 32, "web_subscription": web_subscription()}, False),
    ({"platform": "web", "push_token": "ab" * 32, "web_subscription": web_subscription()}, False),
    ({"platform": "ios", "push_token": "ab" * 32}, True),
    ({"platform": "ios", "push_token": "cd" * 32, "web_subscription": None}, True),
    ({"platform": "web", "web_subscription": web_subscription()}, True),
]


@pytest.mark.parametrize(("body", "valid"), REGISTRATIONS)
async def test_registration_rules_are_documented(
    client: Client, body: dict[str, Any], valid: bool
) -> None:
    doc = await json(await client.get("/v1/openapi.json"), 200)
    assert _validator(doc, "InstallationCreate").is_valid(body) is valid
    app = await App.create(client)
    resp = await client.post(f"/v1/apps/{app.code}/installations", json=body)
    assert resp.status == (201 if valid else 422), await resp.text()


def test_target_and_patch_rules_are_documented(settings: Settings) -> None:
    """Exactly one target kind (null is absent), ``match`` only with tags, a patch with a
    token or a subscription; the send table in tests/fanout proves the API refuses these."""
    doc = make_app(settings)[openapi.DOCUMENT]
    target = _validator(doc, "Target")
    assert target.is_valid({"all": True})
    assert target.is_valid({"tags": ["a"], "match": "all", "emails": None})
    assert not target.is_valid({})
    assert not target.is_valid({"all": True, "tags": ["a"]})
    assert not target.is_valid({"external_user_ids": ["u"], "match": "all"})
    patch = _validator(doc, "InstallationPatch")
    assert patch.is_valid({"push_token": "ab" * 32})
    assert not patch.is_valid({"push_token": "ab" * 32, "web_subscription": web_subscription()})


async def test_503_is_documented_where_the_database_is_used(client: Client) -> None:
    """Every operation that reads or writes PostgreSQL answers 503 while it is unavailable
    (here: the process's pool closed under it), and says so; the health routes that do
    not use it do not."""
    doc = await json(await client.get("/v1/openapi.json"), 200)
    without = {"/healthz", "/metrics", "/v1/openapi.json"}
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert ("503" in op["responses"]) is (path not in without), (path, op)
    app = client.app
    assert app is not None
    await app[POOL].close()
    resp = await client.get("/v1/apps", headers=ADMIN)
    answer = await json(resp, 503)
    assert answer["error"]["code"] == "unavailable"
    assert (await client.get("/healthz")).status == 200


def test_a_bare_query_name_is_a_documented_string() -> None:
    """Routes may still name a query parameter without a type: it is documented (and
    checked for NUL) as a plain string."""
    route = Route("GET", "/x", _nothing, "public", "x", query=("q", Query("n", int, "a number")))
    assert openapi._parameters(route) == [
        {"name": "q", "in": "query", "required": False, "schema": {"type": "string"}},
        {
            "name": "n",
            "in": "query",
            "required": False,
            "description": "a number",
            "schema": {"type": "integer"},
        },
    ]


async def _nothing(call: Call) -> Reply:
    return Reply(204)
