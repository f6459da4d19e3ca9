"""Shared fixtures: a throwaway database with the schema, settings, and a live API.

Tests run against the real PostgreSQL named by ``PUSHCORE_DATABASE_URL`` (default: the local
one), in a database of their own (``<name>_test``) that is dropped and migrated afresh once
per test session.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
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


# Two checkouts testing on one machine at once must not share a database (or a Redis
# database, see tests/fanout/conftest.py): both are named after the checkout's path.
CHECKOUT = hashlib.sha256(str(Path(__file__).resolve().parent.parent).encode()).hexdigest()


def _test_url() -> str:
    parts = urlsplit(BASE_URL)
    name = (parts.path.lstrip("/") or "pushcore") + "_test_" + CHECKOUT[:8]
    return urlunsplit(parts._replace(path="/" + name))


def _drop(url: str) -> None:
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(parts.path.lstrip("/"))
            )
        )


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = _test_url()
    _drop(url)
    apply_migrations(url)
    yield url
    _drop(url)


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
