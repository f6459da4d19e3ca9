"""``pushcore simulators``: run the APNs, FCM and Web Push simulators until SIGINT/SIGTERM.

Prints one line per simulator, ``<name> <origin> ca=<CA file>``, once all three accept
requests, then runs until SIGINT or SIGTERM and stops them gracefully (exit code 0).
A start failure (e.g. a port in use) prints one line to stderr and exits 1; bad arguments
exit 2 (argparse), as do connection-level faults asked of the granian engine and the
granian engine itself when the ``pushcore[simulators]`` extra (granian) is not installed.

Faults given here apply to all three simulators; each simulator also takes ``POST
/__sim/faults`` (JSON, the same names with underscores) to change them while it runs, and
serves its counters at ``GET /__sim/stats`` (``POST /__sim/reset`` zeroes them).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pushcore import cliargs

if TYPE_CHECKING:
    from pushcore.gateways.core import Faults, TransportFaults

DEFAULT_CA_DIR = Path(".local/simulators")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_server_arguments(parser)
    _add_fault_arguments(parser)
    _add_connection_fault_arguments(parser)


def _add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--apns-port", type=cliargs.port, default=0, help="0: any free port")
    parser.add_argument("--fcm-port", type=cliargs.port, default=0, help="0: any free port")
    parser.add_argument("--webpush-port", type=cliargs.port, default=0, help="0: any free port")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--ca-dir",
        type=Path,
        default=DEFAULT_CA_DIR,
        help=f"where the CA and server certificate are kept (default {DEFAULT_CA_DIR})",
    )
    parser.add_argument(
        "--engine",
        choices=("granian", "h2"),
        default="granian",
        help="granian: fast subprocesses (needs pushcore[simulators]); h2: in-process, "
        "slower (default granian)",
    )
    parser.add_argument(
        "--workers", type=int, choices=range(1, 65), default=1, metavar="N",
        help="granian worker processes per simulator (counters are per worker)",
    )  # fmt: skip
    parser.add_argument(
        "--fcm-project", metavar="PROJECT",
        help="the Firebase project the FCM simulator plays: sends through another project "
        "answer SENDER_ID_MISMATCH (default: any project)",
    )  # fmt: skip
    parser.add_argument(
        "--apns-device-topic", metavar="TOPIC",
        help="the app every simulated APNs device belongs to: other topics answer "
        "DeviceTokenNotForTopic (default: any topic)",
    )  # fmt: skip


def _add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    """Faults both engines inject (and --refuse-connections, h2 only)."""
    parser.add_argument(
        "--latency", type=cliargs.nonnegative(float), default=0.0, help="seconds added to answers"
    )
    parser.add_argument(
        "--error-every",
        type=cliargs.nonnegative(int),
        default=0,
        metavar="N",
        help="answer every N-th request with --error-status and Retry-After",
    )
    parser.add_argument("--error-status", type=int, choices=(429, 500, 503), default=429)
    parser.add_argument(
        "--error-fraction",
        type=cliargs.nonnegative(float),
        default=0.0,
        help="share of requests answered with --error-status (0 to 1)",
    )
    parser.add_argument(
        "--retry-after",
        type=cliargs.nonnegative(int),
        default=1,
        help="Retry-After seconds on error answers (default 1)",
    )
    parser.add_argument(
        "--refuse-connections",
        action="store_true",
        help="close every new connection at once (h2 engine); also POST /__sim/faults",
    )


def _add_connection_fault_arguments(parser: argparse.ArgumentParser) -> None:
    h2_only = parser.add_argument_group("connection-level faults (h2 engine only)")
    h2_only.add_argument(
        "--goaway-after", type=cliargs.nonnegative(int), default=0, metavar="N",
        help="send GOAWAY after the N-th request of each connection",
    )  # fmt: skip
    h2_only.add_argument(
        "--goaway-first", action="store_true",
        help="send that GOAWAY before the answers it promises and leave later streams "
        "unanswered, as nghttp2 and APNs do (h2-based clients such as httpx fail on it)",
    )  # fmt: skip
    h2_only.add_argument(
        "--goaway-grace", type=cliargs.nonnegative(float), default=2.0, metavar="SECONDS",
        help="after a GOAWAY's last answer, keep the connection open this long (reading and "
        "dropping) unless the client closes it first, as real servers do (default 2; 0 "
        "closes at once: the client may lose answers it has not read yet)",
    )  # fmt: skip
    h2_only.add_argument(
        "--rst-every", type=cliargs.nonnegative(int), default=0, metavar="N",
        help="reset every N-th request with RST_STREAM instead of answering it",
    )  # fmt: skip
    h2_only.add_argument(
        "--rst-fraction", type=cliargs.nonnegative(float), default=0.0,
        help="share of requests reset with RST_STREAM (0 to 1)",
    )  # fmt: skip
    h2_only.add_argument(
        "--rst-code", type=int, choices=range(14), default=2, metavar="CODE",
        help="HTTP/2 error code of those resets (2 INTERNAL_ERROR, 7 REFUSED_STREAM)",
    )  # fmt: skip
    h2_only.add_argument(
        "--rst-limit", type=cliargs.nonnegative(int), default=0, metavar="N",
        help="at most N resets in all (0: no limit)",
    )  # fmt: skip
    h2_only.add_argument(
        "--drop-after", type=cliargs.nonnegative(int), default=0, metavar="N",
        help="process the N-th request of a connection, then drop it unanswered",
    )  # fmt: skip
    parser.add_argument(
        "--max-concurrent-streams", type=int, default=1000, metavar="N",
        help="SETTINGS_MAX_CONCURRENT_STREAMS (h2: 1-10000, granian: 10-10000)",
    )  # fmt: skip


def register(subparsers: Any) -> None:
    """Add ``simulators`` to ``pushcore``'s sub-commands."""
    parser = subparsers.add_parser(
        "simulators",
        help="run local APNs, FCM and Web Push simulators (HTTP/2 + TLS)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from pushcore.gateways.granian_engine import INSTALL_HINT, granian_installed

    if args.latency > 60:
        print("pushcore simulators: --latency must be at most 60 seconds", file=sys.stderr)
        return 2
    if args.engine == "granian" and not granian_installed():
        # The h2 engine needs nothing beyond the product's own dependencies.
        print(f"pushcore simulators: {INSTALL_HINT} (or use --engine h2)", file=sys.stderr)
        return 2
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from pushcore.gateways.apns import ApnsOptions
    from pushcore.gateways.fcm import FcmOptions
    from pushcore.gateways.granian_engine import GranianStartError
    from pushcore.gateways.simulators import Simulators

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        faults, transport_faults = _faults(args)
    except ValueError as exc:
        print(f"pushcore simulators: {exc}", file=sys.stderr)
        return 2
    ports = {"apns": args.apns_port, "fcm": args.fcm_port, "webpush": args.webpush_port}
    try:
        async with Simulators.start(
            engine=args.engine,
            host=args.host,
            ports=ports,
            ca_dir=args.ca_dir,
            faults=faults,
            transport_faults=transport_faults,
            apns=ApnsOptions(device_topic=args.apns_device_topic),
            fcm=FcmOptions(project=args.fcm_project),
            workers=args.workers,
        ) as sims:
            for sim in sims:
                print(f"{sim.name} {sim.origin} ca={sims.ca_file.resolve()}", flush=True)
            await stop.wait()
    except (OSError, GranianStartError) as exc:
        print(f"pushcore simulators: {exc}", file=sys.stderr)
        return 1
    return 0


def _faults(args: argparse.Namespace) -> tuple[Faults, TransportFaults]:
    """The flags' fault set; ``ValueError`` for values out of range or not for granian."""
    from pushcore.gateways.core import Faults, TransportFaults

    faults = Faults(
        latency=args.latency,
        error_every=args.error_every,
        error_status=args.error_status,
        error_fraction=args.error_fraction,
        retry_after=args.retry_after,
        refuse_connections=args.refuse_connections,
    )
    transport_faults = TransportFaults(
        max_concurrent_streams=args.max_concurrent_streams,
        goaway_after=args.goaway_after,
        goaway_first=args.goaway_first,
        goaway_grace=args.goaway_grace,
        rst_every=args.rst_every,
        rst_fraction=args.rst_fraction,
        rst_code=args.rst_code,
        rst_limit=args.rst_limit,
        drop_after=args.drop_after,
    )
    if args.engine == "granian":
        if transport_faults.needs_h2_engine or faults.refuse_connections:
            raise ValueError("connection-level faults need --engine h2")
        if args.max_concurrent_streams < 10:
            raise ValueError("granian's --max-concurrent-streams must be at least 10")
    return faults, transport_faults


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pushcore.gateways``."""
    parser = argparse.ArgumentParser(
        prog="python -m pushcore.gateways",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
