"""``pushcore migrate``: create the database when missing and apply pending migrations."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any


def register(sub: Any) -> None:
    cmd = sub.add_parser(
        "migrate",
        help="create the database if missing and apply pending schema migrations (idempotent)",
    )
    cmd.set_defaults(handler=_migrate)
    prune = sub.add_parser(
        "prune-stale",
        help="delete registrations whose token was not refreshed for PUSHCORE_STALE_TOKEN_DAYS "
        "days (run it daily, e.g. from cron or a Kubernetes CronJob)",
    )
    prune.set_defaults(handler=_prune)


def _migrate(args: argparse.Namespace) -> int:
    from pushcore import logs
    from pushcore.config import load_settings
    from pushcore.db.errors import MigrationError
    from pushcore.db.migrate import apply_migrations

    settings = load_settings()
    logs.configure(settings.log_level)
    logging.getLogger("yoyo").setLevel(logging.WARNING)  # one line per step is noise
    try:
        applied = apply_migrations(settings.database_url)
    except MigrationError as exc:
        print(f"pushcore migrate: {exc}", file=sys.stderr)
        return 1
    print(f"migrations applied: {', '.join(applied)}" if applied else "schema is up to date")
    return 0


def _prune(args: argparse.Namespace) -> int:
    import asyncio

    from pushcore import logs
    from pushcore.config import load_settings
    from pushcore.db.maintenance import prune_stale
    from pushcore.db.pool import create_pool

    settings = load_settings()
    logs.configure(settings.log_level)

    async def prune() -> int:
        pool = await create_pool(settings, max_size=1)
        try:
            return await prune_stale(pool, settings.stale_token_days)
        finally:
            await pool.close()

    deleted = asyncio.run(prune())
    print(f"deleted {deleted} registrations older than {settings.stale_token_days} days")
    return 0
