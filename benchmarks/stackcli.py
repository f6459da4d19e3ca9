"""The command line shared by the benchmarks that run the whole stack (``fanout``,
``inbox``, ``templates``, ``transactional``): their store and ``--set`` options, the run on
uvloop, and what each leaves behind: ``<out>/<name>[-<label>]-<date>.json`` and ``.png``,
its summary on stderr, and the JSON again as the last line of stdout."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

Result = dict[str, Any]


def add_stack_arguments(
    parser: argparse.ArgumentParser, database_url: str, redis_url: str, set_for: str
) -> None:
    """The options of a benchmark that runs the whole stack: its stores (each benchmark has
    a database and a Redis database of its own, which the run empties), ``--set`` settings,
    where results go and the label of their file names."""
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


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments, with every ``--set`` checked (a bad one exits 2 with a message)."""
    args = parser.parse_args(argv)
    for item in args.set:
        if "=" not in item or not item.startswith("PUSHCORE_"):
            parser.error(f"--set wants PUSHCORE_NAME=VALUE, got {item!r}")
    return args


def run(main: Coroutine[Any, Any, Result]) -> Result:
    """The benchmark's coroutine on uvloop, as the API and the workers run."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def report(
    name: str,
    result: Result,
    args: argparse.Namespace,
    *,
    summary: Callable[[Result], str],
    plot: Callable[[Result, Path], None],
) -> None:
    """Writes the JSON (with the paths written added to it) and the PNG, then prints the
    summary and the paths on stderr and the JSON on stdout."""
    directory: Path = args.out
    directory.mkdir(parents=True, exist_ok=True)
    stem = "-".join(p for p in (name, args.label, datetime.date.today().isoformat()) if p)
    out = directory / f"{stem}.json"
    result["written"] = {"json": str(out), "png": str(out.with_suffix(".png"))}
    out.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out.with_suffix(".png"))
    print(summary(result), file=sys.stderr)
    print(f"{name}: written {out} and {out.with_suffix('.png')}", file=sys.stderr)
    print(json.dumps(result))
