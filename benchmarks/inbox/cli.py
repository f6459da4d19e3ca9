"""The command line of ``python -m benchmarks.inbox``: its arguments, the run, and what it
leaves behind (``<out>/inbox[-<label>]-<date>.json`` and ``.png``, the summary on stderr,
the JSON again as the last line of stdout)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import benchmarks.inbox
from benchmarks import stackcli
from benchmarks.inbox.plot import plot
from benchmarks.inbox.stage import run
from pushcore.cliargs import int_between, nonnegative

# A database and a Redis database of its own (the fan-out's are pushcore_bench and 5, the
# transactional benchmark's 6): the run empties both.
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/pushcore_bench_inbox"
DEFAULT_REDIS = "redis://127.0.0.1:6379/7"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = stackcli.parse(_parser(), argv)
    result = stackcli.run(run(args))
    stackcli.report("inbox", result, args, summary=summary, plot=plot)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.inbox",
        description=(benchmarks.inbox.__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("--devices", type=int_between(2, 10_000_000), default=200_000)
    parser.add_argument("--repeats", type=int_between(1, 10), default=1, help="broadcast pairs")
    parser.add_argument("--broadcasts", type=int_between(0, 1000), default=70)
    parser.add_argument("--personal", type=int_between(0, 1000), default=60)
    parser.add_argument(
        "--list-size",
        type=int_between(1, 100_000),
        default=50_000,
        help="users per list message (a target list holds at most 100,000)",
    )
    parser.add_argument("--concurrency", type=int_between(1, 1000), default=32)
    parser.add_argument("--seconds", type=nonnegative(float), default=15.0, help="per route")
    parser.add_argument("--api-workers", type=int_between(1, 64), default=2, help="API processes")
    parser.add_argument("--processes", type=int_between(1, 64), default=2, help="worker processes")
    parser.add_argument(
        "--threads", type=int_between(1, 64), default=4, help="threads per worker process"
    )
    parser.add_argument("--timeout", type=float, default=900, help="longest wait per message, s")
    stackcli.add_stack_arguments(parser, DEFAULT_DB, DEFAULT_REDIS, "the API and the workers")
    parser.add_argument("--label", default="", help="file name part: inbox-<label>-<date>")
    return parser


def summary(result: dict[str, Any]) -> str:
    b = result["broadcast"]
    lines = [
        f"broadcast to {result['devices']:,} devices / {result['users']:,} users: "
        f"without inbox {b['without_inbox_s']} s, with inbox {b['with_inbox_s']} s "
        f"({b['added_percent']:+.1f}%)",
        f"fill: {result['fill']['entries']:,} entries in {result['fill']['seconds']} s; "
        f"{result['fill']['messages_per_user']} messages per user",
    ]
    for name, load in result["load"].items():
        lines.append(
            f"{name}: {load['requests_per_s']}/s, p50 {load['p50_ms']} ms, p99 "
            f"{load['p99_ms']} ms, errors {load['errors']}"
        )
    s = result["sizes"]
    lines.append(
        f"bytes per stored entry: {s['bytes_per_entry_row']} (an entry row with its indexes), "
        f"{s['bytes_per_message_held']} per message held by a user (broadcasts shared)"
    )
    return "\n".join(lines)
