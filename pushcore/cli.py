"""The ``pushcore`` command.

Each layer declares its own sub-commands in a small ``cli`` module with a
``register(subparsers)`` function; heavy imports happen inside the handlers so that
``pushcore --help`` stays fast.  A handler returns the process exit code.  Bad input exits
with code 2 and a one-line message (argparse's convention), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pushcore import __version__
from pushcore.errors import ConfigError, PushcoreError

# Modules that contribute sub-commands, in the order `pushcore --help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "pushcore.db.cli",
    "pushcore.api.cli",
    "pushcore.gateways.cli",
    "workers.cli",
    "pushcore.demo",
)

DESCRIPTION = """\
pushcore — a push-notification backend.

Apps register their installations (push tokens) with the API; your backend links them to
your users and asks pushcore to send; workers fan the notification out to APNs, FCM and
Web Push and delete the registrations the providers report as dead.

Configuration comes from PUSHCORE_* environment variables (see `pushcore config`)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pushcore",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pushcore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    config_cmd = sub.add_parser(
        "config", help="print the effective configuration (secrets masked) and exit"
    )
    config_cmd.set_defaults(handler=_print_config)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _print_config(args: argparse.Namespace) -> int:
    from pushcore.config import load_settings

    for key, value in load_settings().describe().items():
        print(f"{key}={value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except ConfigError as exc:
        print(f"pushcore: {exc}", file=sys.stderr)
        return 2
    except PushcoreError as exc:  # e.g. the database does not answer
        print(f"pushcore: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code
