"""The command line of ``python -m benchmarks.fanout``: its arguments; the run and what it
leaves behind are ``benchmarks.stackcli``'s (``<out>/fanout[-<label>]-<date>.json``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import benchmarks.fanout
from benchmarks import stackcli
from benchmarks.database import DEFAULT_DB
from benchmarks.fanout.pipeline import run
from benchmarks.fanout.plot import plot
from benchmarks.fanout.report import summary

DEFAULT_REDIS = "redis://127.0.0.1:6379/5"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = stackcli.parse(_parser(), argv)
    result = stackcli.run(run(args))
    stackcli.report("fanout", result, args, summary=summary, plot=plot)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fanout",
        description=(benchmarks.fanout.__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker process")
    parser.add_argument("--bare-sample", type=int, default=200_000)
    parser.add_argument("--naive-sample", type=int, default=20_000)
    parser.add_argument("--interval", type=float, default=0.5, help="sampling period, s")
    parser.add_argument("--timeout", type=float, default=1800, help="longest wait for done, s")
    stackcli.add_stack_arguments(
        parser, DEFAULT_DB, DEFAULT_REDIS, "the API, the workers and the bare baseline"
    )
    parser.add_argument("--label", default="", help="file name part: fanout-<label>-<date>")
    return parser
