"""The command line of ``python -m benchmarks.fanout``: its arguments, the run, and what it
leaves behind (``<out>/fanout[-<label>]-<date>.json`` and ``.png``, the summary on stderr,
the JSON again as the last line of stdout)."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import benchmarks.fanout
from benchmarks.database import DEFAULT_DB
from benchmarks.fanout.pipeline import run
from benchmarks.fanout.plot import plot
from benchmarks.fanout.report import summary

RESULTS = Path(benchmarks.__file__).resolve().parent / "results"
DEFAULT_REDIS = "redis://127.0.0.1:6379/5"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = _parser()
    args = parser.parse_args(argv)
    for item in args.set:
        if "=" not in item or not item.startswith("PUSHCORE_"):
            parser.error(f"--set wants PUSHCORE_NAME=VALUE, got {item!r}")
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(run(args))
    out = _write(result, args.out, args.label)
    print(summary(result), file=sys.stderr)
    print(f"fanout: written {out} and {out.with_suffix('.png')}", file=sys.stderr)
    print(json.dumps(result))
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
    add_stack_arguments(
        parser, DEFAULT_DB, DEFAULT_REDIS, "the API, the workers and the bare baseline"
    )
    parser.add_argument("--label", default="", help="file name part: fanout-<label>-<date>")
    return parser


def add_stack_arguments(
    parser: argparse.ArgumentParser, database_url: str, redis_url: str, set_for: str
) -> None:
    """The options of a benchmark that runs the whole stack (shared by the fan-out and
    transactional benchmarks): its stores, ``--set`` settings and where results go."""
    parser.add_argument("--database-url", default=database_url)
    parser.add_argument("--redis-url", default=redis_url)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PUSHCORE_NAME=VALUE",
        help=f"a setting for {set_for} (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for JSON and PNG")


def _write(result: dict[str, Any], directory: Path, label: str) -> Path:
    """The JSON (with the paths written added to it) and the PNG; the JSON's path."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = "-".join(p for p in ("fanout", label, datetime.date.today().isoformat()) if p)
    out = directory / f"{stem}.json"
    result["written"] = {"json": str(out), "png": str(out.with_suffix(".png"))}
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out.with_suffix(".png"))
    return out
