"""Apply the SQL migrations in ``migrations/`` with yoyo.

yoyo keeps its own ledger table (``_yoyo_migration``) and takes a lock, so running
``pushcore migrate`` twice, or from two hosts at once, is safe: the second run applies nothing.
Migrations are plain SQL files (``NNNN_name.sql``, ordered by ``-- depends:`` lines) so that a
DBA can read and run them by hand.  yoyo speaks to PostgreSQL through psycopg 3 (synchronous);
only this command uses it, the services use asyncpg.
"""

from __future__ import annotations

import logging
from importlib import resources
from urllib.parse import urlsplit, urlunsplit

from pushcore.db.errors import MigrationError

log = logging.getLogger(__name__)


def _yoyo_url(dsn: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


def ensure_database(dsn: str) -> bool:
    """Create the database named in ``dsn`` when it does not exist; return True if created."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(dsn)
    name = parts.path.lstrip("/") or "postgres"
    admin_dsn = urlunsplit(parts._replace(path="/postgres"))
    try:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if exists.fetchone():
                return False
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.errors.DuplicateDatabase:
        return False  # created concurrently by another process
    except psycopg.Error as exc:
        raise MigrationError(f"cannot create database {name!r}: {exc}") from exc
    log.info("created database %s", name)
    return True


def apply_migrations(dsn: str) -> list[str]:
    """Create the database if needed and apply pending migrations; return their ids."""
    import psycopg
    from yoyo import get_backend, read_migrations

    ensure_database(dsn)
    folder = resources.files("pushcore.db") / "migrations"
    try:
        backend = get_backend(_yoyo_url(dsn))
    except psycopg.Error as exc:
        raise MigrationError(f"cannot connect: {exc}") from exc
    try:
        migrations = read_migrations(str(folder))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
    except psycopg.Error as exc:
        raise MigrationError(f"migration failed: {exc}") from exc
    finally:
        backend.connection.close()
    applied = [m.id for m in pending]
    for ident in applied:
        log.info("applied migration %s", ident)
    return applied
