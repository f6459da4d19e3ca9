"""``make bench``: the benchmarks at a size that finishes within ~15 minutes on 2 cores.

- ``benchmarks.fanout``: a 200,000-device broadcast through the whole pipeline (API,
  2 worker processes x 4 threads, granian simulators), with the bare transport (all live
  tokens) and a naive sender (20,000 tokens) as baselines; ``python -m benchmarks.fanout``
  alone runs the goal size, 1,000,000 devices;
- ``benchmarks.registration``: the registration API (2 processes) under 32 concurrent
  clients for 20 s;
- ``benchmarks.transport``: the delivery layer per provider and engine, side by side;
- ``benchmarks.transactional``: 2,000 single-user sends from 32 clients on a registry of
  20,000 devices (``transactional``), and again while a broadcast to 200,000 devices of
  another app is going out (``transactional-during-broadcast``); ~40 s and ~90 s;
- ``benchmarks.inbox``: a 200,000-device broadcast without and with ``inbox``, then inbox
  reads and seen marks from 32 clients on 100,000 users holding ~100 messages each
  (``--devices 2000000 --personal 300 --list-size 100000`` is the issue's 1,000,000
  users); ~5 minutes.
- ``benchmarks.templates``: a 200,000-device broadcast with templates and localizations
  against the same with fixed content, alternated twice, and a ``recipients`` send to
  100,000 users beside a plain one (``templates``); ~6 minutes.
- ``benchmarks.localtime``: planning a 200,000-device broadcast with ``send_at_local``
  (grouped by due time, held) beside the plain one, and the reaper's release pass; ~1 min.
- ``benchmarks.console``: every web console page on a 100,000-installation app; ~60 s.
- ``benchmarks.goaway``: answered requests reported lost under GOAWAY + RST_STREAM, with
  the fault server closing at once and with its lingering close, 5 runs each; ~1 minute.
- ``benchmarks.ratelimit``: a 120,000-device broadcast at ``rate_per_minute`` 60,000
  over 2 worker processes, sends per 10-second window against the target; ~4 minutes.

Each writes its JSON (and PNG) under ``benchmarks/results/``; this prints the paths.

    .venv/bin/python -m benchmarks [--only fanout,registration,transport,transactional,...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import console, goaway, localtime, registration, transport
from benchmarks.fanout.cli import main as fanout_main
from benchmarks.inbox.cli import main as inbox_main
from benchmarks.ratelimit.run import main as ratelimit_main
from benchmarks.templates.run import main as templates_main
from benchmarks.transactional.cli import main as transactional_main

FANOUT_DEVICES = 200_000
BROADCAST_DEVICES = 200_000  # the broadcast the transactional sends go out beside


def _fanout() -> list[str]:
    result = fanout_main(["--devices", str(FANOUT_DEVICES)])
    return [result["written"]["json"], result["written"]["png"]]


def _registration() -> list[str]:
    result = registration.main(["--seconds", "20", "--concurrency", "32", "--workers", "2"])
    return [result["written"]["json"], result["written"]["png"]]


def _transport() -> list[str]:
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        transport.main(["--tokens", "20000", "--repeats", "3"])
    line = captured.getvalue().strip().splitlines()[-1]
    print(line)
    return [str(json.loads(line)["written"])]


def _console() -> list[str]:
    result = console.main(["--devices", "100000", "--rounds", "30"])
    return [result["written"]["json"], result["written"]["png"]]


def _transactional() -> list[str]:
    result = transactional_main([])
    return [result["written"]["json"], result["written"]["png"]]


def _transactional_during_broadcast() -> list[str]:
    result = transactional_main(["--during-broadcast", str(BROADCAST_DEVICES)])
    return [result["written"]["json"], result["written"]["png"]]


def _inbox() -> list[str]:
    result = inbox_main([])
    return [result["written"]["json"], result["written"]["png"]]


def _templates() -> list[str]:
    result = templates_main(["--devices", str(FANOUT_DEVICES)])
    return [result["written"]["json"], result["written"]["png"]]


def _localtime() -> list[str]:
    result = localtime.main(["--devices", str(FANOUT_DEVICES)])
    return [result["written"]["json"], result["written"]["png"]]


def _goaway() -> list[str]:
    result = goaway.main([])
    return [result["written"]["json"], result["written"]["png"]]


def _ratelimit() -> list[str]:
    result = ratelimit_main([])
    return [result["written"]["json"], result["written"]["png"]]


STEPS: dict[str, Callable[[], list[str]]] = {
    "fanout": _fanout,
    "registration": _registration,
    "transport": _transport,
    "transactional": _transactional,
    "transactional-during-broadcast": _transactional_during_broadcast,
    "inbox": _inbox,
    "templates": _templates,
    "localtime": _localtime,
    "console": _console,
    "goaway": _goaway,
    "ratelimit": _ratelimit,
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--only", default=",".join(STEPS), help="comma-separated steps")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps {sorted(unknown)}; choose from {list(STEPS)}")
    written: dict[str, Any] = {}
    started = time.monotonic()
    for name in chosen:
        t = time.monotonic()
        print(f"=== benchmarks.{name} ===", file=sys.stderr, flush=True)
        written[name] = STEPS[name]()
        print(f"=== {name}: {time.monotonic() - t:.0f} s ===", file=sys.stderr, flush=True)
    print(f"\nbenchmarks done in {time.monotonic() - started:.0f} s; results:", file=sys.stderr)
    for name, paths in written.items():
        for path in paths:
            print(f"  {name}: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
