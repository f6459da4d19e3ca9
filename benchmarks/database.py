"""The benchmarks' database: created when missing, migrated, and emptied before each run.

A registry grown by earlier runs (and the autovacuum work it brings) would make runs
incomparable, so every benchmark starts from empty tables.  Emptying is refused for a
database whose name does not contain "bench": a mistyped URL must not wipe a real registry.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from pushcore.db.migrate import apply_migrations

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/pushcore_bench"
TABLES = "apps, users, installations, messages, batches, events"


def fresh_database(url: str) -> None:
    """Create the database when missing, apply the migrations, empty every table."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"bench: refusing to empty database {name!r} (name must contain bench)")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    apply_migrations(url)
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(sql.SQL(TABLES)))
