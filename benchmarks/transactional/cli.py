"""The command line of ``python -m benchmarks.transactional``: its arguments, the run, and
what it leaves behind (``<out>/transactional[-<label>]-<date>.json`` and ``.png``, the
summary on stderr, the JSON again as the last line of stdout)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

import benchmarks.transactional
from benchmarks import stackcli
from benchmarks.transactional.load import MAX_BATCH
from benchmarks.transactional.plot import plot
from benchmarks.transactional.report import summary
from benchmarks.transactional.stage import run
from pushcore.cliargs import int_between, nonnegative

# A database and a Redis database of its own (the fan-out benchmark's are pushcore_bench
# and 5): the run empties both, and must not empty another benchmark's under it.
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/pushcore_bench_transactional"
DEFAULT_REDIS = "redis://127.0.0.1:6379/6"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = stackcli.parse(_parser(), argv)
    if args.label is None:
        args.label = "-".join(
            p
            for p in (
                f"batch{args.batch}" if args.batch else "",
                "during-broadcast" if args.during_broadcast else "",
            )
            if p
        )
    result = stackcli.run(run(args))
    if "skipped" in result:
        print(f"transactional: skipped: {result['skipped']}", file=sys.stderr)
        print(json.dumps(result))
    else:
        stackcli.report("transactional", result, args, summary=summary, plot=plot)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.transactional",
        description=(benchmarks.transactional.__doc__ or "").split("\n\n")[0],
    )
    count = int_between(1, 10_000_000)
    parser.add_argument("--devices", type=int_between(2, 10_000_000), default=20_000)
    parser.add_argument("--messages", type=count, default=2_000, help="one per user")
    parser.add_argument(
        "--warmup",
        type=int_between(0, 100_000),
        default=100,
        help="messages sent (to users of their own) and finished before the measured ones",
    )
    parser.add_argument("--concurrency", type=int_between(1, 1000), default=32)
    parser.add_argument(
        "--batch",
        type=int_between(0, MAX_BATCH),
        default=0,
        help="messages per POST .../messages:batch call (0: one POST .../messages each)",
    )
    parser.add_argument(
        "--during-broadcast",
        type=int_between(0, 10_000_000),
        default=0,
        metavar="N",
        help="send while a broadcast to N devices of a second app is going out",
    )
    parser.add_argument(
        "--broadcast-lead",
        type=nonnegative(float),
        default=5.0,
        help="seconds of the broadcast's own rate before the load starts",
    )
    parser.add_argument("--processes", type=int_between(1, 64), default=2, help="worker processes")
    parser.add_argument(
        "--threads", type=int_between(1, 64), default=4, help="threads per worker process"
    )
    parser.add_argument("--interval", type=float, default=0.25, help="sampling period, s")
    parser.add_argument("--timeout", type=float, default=600, help="longest wait for final, s")
    stackcli.add_stack_arguments(parser, DEFAULT_DB, DEFAULT_REDIS, "the API and the workers")
    parser.add_argument(
        "--label",
        default=None,
        help="file name part: transactional-<label>-<date> (default: batch<N>, during-broadcast)",
    )
    return parser
