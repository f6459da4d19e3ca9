"""``pushcore worker``: Dramatiq workers for the fan-out queues."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any, NoReturn

from pushcore import cliargs
from workers.broker import QUEUES

# A batch takes at most PUSHCORE_SEND_TIMEOUT_SECONDS for its requests plus its claim and
# write-back statements (PUSHCORE_DB_COMMAND_TIMEOUT each): 90 s with the defaults.
DEFAULT_SHUTDOWN_TIMEOUT = 100
# Dramatiq calls it in every worker process: builds the broker, declares the actors
ENTRY = "workers.boot:setup"


def _queues(raw: str) -> list[str]:
    names = [q.strip() for q in raw.split(",") if q.strip()]
    unknown = [q for q in names if q not in QUEUES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown queue(s) {', '.join(unknown) or raw!r}; known: {', '.join(QUEUES)}"
        )
    return names


def register(sub: Any) -> None:
    cmd = sub.add_parser(
        "worker",
        help="run Dramatiq workers for the fan-out (all queues, or --queues)",
        description="Each process runs one event loop; --threads is how many batches it "
        "works on at once (the HTTP/2 concurrency is inside each batch). Give both "
        "explicitly: the defaults never depend on the machine's CPU count.",
    )
    cmd.add_argument(
        "--processes", type=cliargs.int_between(1, 256), default=1, help="worker processes (1)"
    )
    cmd.add_argument(
        "--threads", type=cliargs.int_between(1, 256), default=4, help="batches per process (4)"
    )
    cmd.add_argument(
        "--queues",
        type=_queues,
        default=list(QUEUES),
        help=f"comma-separated subset of {','.join(QUEUES)}",
    )
    cmd.add_argument(
        "--shutdown-timeout",
        type=cliargs.int_between(1, 3600, "seconds"),
        default=DEFAULT_SHUTDOWN_TIMEOUT,
        metavar="SECONDS",
        help="on SIGTERM, how long each process waits for the batches in progress to finish "
        f"before it closes its connections anyway ({DEFAULT_SHUTDOWN_TIMEOUT}; a batch cut "
        "off is handed out again after PUSHCORE_LEASE_SECONDS)",
    )
    cmd.add_argument(
        "--metrics-port",
        type=int,
        default=9191,
        help="port of the Prometheus exposition server (default 9191; 0: none)",
    )
    cmd.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> NoReturn:
    from pushcore.config import load_settings

    settings = load_settings()  # refuse bad settings here, with exit code 2, before forking
    # Dramatiq reads its worker timeout from the environment when it starts; its delay
    # queue (rate-limited batches waiting for their slot) is looked at once per timeout
    os.environ["dramatiq_worker_timeout"] = str(round(settings.worker_poll_seconds * 1000))  # noqa: SIM112
    if args.metrics_port:
        # Multi-process metrics: every process writes to this folder, Dramatiq's exposition
        # server (a forked process) aggregates it.  A fresh folder per start, so counters
        # restart at zero as Prometheus expects of a restarted target.
        metrics_dir = tempfile.mkdtemp(prefix="pushcore-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        os.environ["dramatiq_prom_db"] = metrics_dir  # noqa: SIM112 (Dramatiq reads it so)
        os.environ["dramatiq_prom_port"] = str(args.metrics_port)  # noqa: SIM112
    argv = [
        sys.executable,
        "-m",
        "dramatiq",
        ENTRY,
        "--processes",
        str(args.processes),
        "--threads",
        str(args.threads),
        "--worker-shutdown-timeout",
        str(args.shutdown_timeout * 1000),  # Dramatiq takes milliseconds
        "--queues",
        *args.queues,
    ]
    os.execv(sys.executable, argv)  # noqa: S606 (replace this process with dramatiq's)
