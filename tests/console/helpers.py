"""Driving the console over plain HTTP (forms, cookies), for the tests that need no
browser."""

from __future__ import annotations

import html
import re
from typing import Any

from tests.console.conftest import Client

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(page: str) -> str:
    found = _CSRF.search(page)
    assert found, "no CSRF token on the page"
    return html.unescape(found.group(1))


async def page(client: Client, path: str, status: int = 200) -> str:
    resp = await client.get(path, allow_redirects=True)
    text = await resp.text()
    assert resp.status == status, (resp.status, text[:2000])
    return text


async def post_form(
    client: Client, path: str, data: dict[str, Any], *, token_from: str, status: int = 200
) -> str:
    """POST ``data`` with the CSRF token of the page at ``token_from`` (following
    redirects)."""
    token = csrf(await page(client, token_from))
    resp = await client.post(path, data={**data, "csrf_token": token}, allow_redirects=True)
    text = await resp.text()
    assert resp.status == status, (resp.status, text[:3000])
    return text


async def sign_in(client: Client, credential: str, status: int = 200) -> str:
    return await post_form(
        client,
        "/console/login",
        {"credential": credential},
        token_from="/console/login",
        status=status,
    )


def error_at(page_html: str, field: str) -> str:
    """The error shown next to the form field named ``field``."""
    element = "error-" + field.replace(".", "-")
    found = re.search(rf'id="{re.escape(element)}"[^>]*>([^<]*)<', page_html)
    assert found, f"no error next to {field}"
    return html.unescape(found.group(1))
