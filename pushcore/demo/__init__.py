"""``pushcore demo``: the main job, end to end, on this machine.

By default a real campaign (``campaign.py``): simulators, API, workers, 100,000 simulated
installations, a broadcast and a user-targeted primary-only message, checked against the
simulators' counts.  ``--registry-only`` runs the registry flow alone (``registry_flow.py``).
"""

from __future__ import annotations

import argparse
from typing import Any

from pushcore import cliargs


def register(sub: Any) -> None:
    cmd = sub.add_parser(
        "demo",
        help="run a real campaign end to end against local provider simulators (or the "
        "registry flow alone) and check it",
    )
    cmd.add_argument(
        "--devices",
        type=cliargs.int_between(10, 5_000_000),
        default=100_000,
        help="simulated installations (default 100000)",
    )
    cmd.add_argument(
        "--processes", type=cliargs.int_between(1, 64), default=2, help="worker processes (2)"
    )
    cmd.add_argument(
        "--threads", type=cliargs.int_between(1, 256), default=4, help="batches per process (4)"
    )
    cmd.add_argument(
        "--registry-only",
        action="store_true",
        help="only the registry flow (register, personalize, look up, erase)",
    )
    cmd.add_argument(
        "--keep-running",
        action="store_true",
        help="after the campaign, leave the API (with the web console), the workers and the "
        "simulators running and print the console's URL and a sign-in key; Ctrl+C stops them",
    )
    cmd.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pushcore.config import load_settings

    settings = load_settings()
    if args.registry_only:
        from pushcore.demo import registry_flow

        return registry_flow.run(settings)
    from pushcore.demo import campaign

    return campaign.run(
        settings, args.devices, args.processes, args.threads, keep_running=args.keep_running
    )
