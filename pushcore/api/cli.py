"""``pushcore api`` (serve the HTTP API) and ``pushcore apps create`` (an app from the shell)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pushcore import cliargs


def register(sub: Any) -> None:
    api = sub.add_parser("api", help="serve the HTTP API on uvloop until SIGTERM")
    api.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    api.add_argument("--port", type=cliargs.port, default=8080, help="port (default 8080)")
    api.add_argument(
        "--workers",
        type=cliargs.int_between(1, 64),
        default=1,
        help="processes sharing the port with SO_REUSEPORT (default 1; give it explicitly, "
        "one per core is typical)",
    )
    api.set_defaults(handler=_serve)

    apps = sub.add_parser("apps", help="manage apps from the shell (bypasses the admin token)")
    apps_sub = apps.add_subparsers(dest="apps_command", metavar="ACTION", required=True)
    create = apps_sub.add_parser(
        "create", help="create an app; prints its app_code, server key and identity secret"
    )
    create.add_argument("name", help="the app's display name")
    create.add_argument(
        "--identity-verification",
        action="store_true",
        help="require identity tokens on device-side personalize",
    )
    create.add_argument("--json", action="store_true", help="print JSON")
    create.set_defaults(handler=_create_app)


def _serve(args: argparse.Namespace) -> int:
    from pushcore import logs
    from pushcore.api.app import run
    from pushcore.config import load_settings, with_console_secret

    # one console secret for every worker process (each would otherwise make its own)
    settings = with_console_secret(load_settings())
    logs.configure(settings.log_level)
    if args.workers == 1:
        run(settings, args.host, args.port)
        return 0
    import multiprocessing
    import signal

    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=run, args=(settings, args.host, args.port), kwargs={"reuse_port": True})
        for _ in range(args.workers)
    ]
    for proc in procs:
        proc.start()

    def forward(signum: int, frame: object) -> None:
        for proc in procs:
            if proc.pid is not None:
                proc.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for proc in procs:
        proc.join()
    return 0 if all(p.exitcode == 0 for p in procs) else 1


def _create_app(args: argparse.Namespace) -> int:
    import asyncio

    from pushcore.api import auth
    from pushcore.config import load_settings
    from pushcore.db import apps as queries
    from pushcore.db.pool import create_pool

    name = args.name.strip()
    if not name or len(name) > 200:
        print("pushcore apps create: NAME must be 1 to 200 characters", file=sys.stderr)
        return 2
    settings = load_settings()

    async def create() -> dict[str, str]:
        pool = await create_pool(settings, max_size=1)
        try:
            server_key = auth.new_secret(auth.SERVER_KEY_PREFIX)
            identity_secret = auth.new_secret(auth.IDENTITY_SECRET_PREFIX)
            row = await queries.create_app(
                pool,
                code=auth.new_public_id("app_"),
                name=name,
                identity_verification=args.identity_verification,
                identity_secret=identity_secret,
                credentials={},
                key_id=auth.new_public_id("key_"),
                key_hash=auth.digest(server_key),
            )
        finally:
            await pool.close()
        return {
            "app_code": row["code"],
            "name": row["name"],
            "key_id": row["key_id"],
            "server_key": server_key,
            "identity_secret": identity_secret,
        }

    created = asyncio.run(create())
    if args.json:
        print(json.dumps(created))
    else:
        for key, value in created.items():
            print(f"{key}: {value}")
    return 0
