"""Fixtures of the image tests: the image built once per session, a database of their
own, and the containers a test started (removed at its end)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from psycopg import sql

from tests.conftest import BASE_URL, CHECKOUT
from tests.deploy.container import (
    BUILD_TIMEOUT,
    IMAGE_REDIS_URL,
    build_image,
    kustomization_image,
    podman,
)


@pytest.fixture(scope="session")
def image() -> str:
    name = kustomization_image()
    build_image(name, timeout=BUILD_TIMEOUT)
    return name


@pytest.fixture
def image_database_url() -> Iterator[str]:
    """A database of its own, empty: the image's `migrate` makes the schema."""
    parts = urlsplit(BASE_URL)
    name = f"pushcore_image_{CHECKOUT[:8]}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield urlunsplit(parts._replace(path="/" + name))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(drop)


@pytest.fixture
def image_redis_url() -> str:
    """The image tests' Redis database, emptied."""
    redis.Redis.from_url(IMAGE_REDIS_URL).flushdb()
    return IMAGE_REDIS_URL


@pytest.fixture
def containers() -> Iterator[list[str]]:
    """Every container a test started is removed at its end, running or not."""
    started: list[str] = []
    yield started
    for cid in reversed(started):
        podman("rm", "--force", "--time", "0", cid, timeout=60)
