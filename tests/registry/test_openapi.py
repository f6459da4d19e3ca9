"""The OpenAPI document served at /v1/openapi.json and the router agree."""

from __future__ import annotations

import re

from pushcore.api.app import make_app
from pushcore.config import Settings
from tests.registry.helpers import Client, json

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
