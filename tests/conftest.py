"""Shared fixtures: a throwaway database with the schema, settings, and a live API.

Tests run against the real PostgreSQL named by ``PUSHCORE_DATABASE_URL`` (default: the local
one), in a database of their own (``<name>_test``) that is dropped and migrated afresh once
per test session.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from psycopg import sql

from pushcore.api.app import make_app
from pushcore.config import Settings, load_settings
from pushcore.db.migrate import apply_migrations

ADMIN_TOKEN = "test-admin-token-0123456789"
BASE_URL = os.environ.get("PUSHCORE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/pushcore")


def _test_url() -> str:
    parts = urlsplit(BASE_URL)
    name = (parts.path.lstrip("/") or "pushcore") + "_test"
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def database_url() -> str:
    url = _test_url()
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(parts.path.lstrip("/"))
            )
        )
    apply_migrations(url)
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(
        environ={},
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        db_pool_max=8,
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The real aiohttp application on a loopback port, with its own asyncpg pool."""
    async with TestClient(TestServer(make_app(settings))) as test_client:
        yield test_client
