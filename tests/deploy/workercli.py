"""What a deployment file's `pushcore worker ...` command really runs.

`pushcore worker` parses its options, checks the settings and then execs
`python -m dramatiq workers.boot:setup ...`.  Here the real parser and handler run with
``os.execv`` replaced, and the Dramatiq command line it would have exec'd is parsed with
Dramatiq's own parser: so the tests see the worker shutdown timeout Dramatiq will use (its
default unless `pushcore worker` passes one) and the processes, threads and queues it gets.
"""

from __future__ import annotations

import argparse
import importlib
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from pushcore.cli import build_parser

# After the worker threads, Dramatiq stops its consumer threads (each wakes from its broker
# poll within seconds), requeues prefetched messages and closes the broker: a grace period
# must leave this much above the worker shutdown timeout.
CONSUMER_STOP_MARGIN_SECONDS = 30.0


@dataclass(frozen=True)
class DramatiqRun:
    argv: list[str]
    processes: int
    threads: int
    queues: list[str]
    shutdown_timeout_seconds: float


class _Exec(Exception):
    """Raised instead of exec'ing: carries the command line."""

    def __init__(self, argv: list[str]) -> None:
        super().__init__(argv)
        self.argv = argv


def _fake_execv(path: str, argv: list[str]) -> NoReturn:
    raise _Exec(list(argv))


def dramatiq_run(
    pushcore_argv: list[str],
    environ: Mapping[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> DramatiqRun:
    """Run `pushcore worker ...` (``pushcore_argv`` without the program name's path) with
    ``environ`` as its PUSHCORE_* settings, up to the exec."""
    assert Path(pushcore_argv[0]).name == "pushcore", pushcore_argv
    for key in list(os.environ):
        if key.startswith("PUSHCORE_"):
            monkeypatch.delenv(key)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    # the handler points these at a fresh metrics folder: restored after the test
    for key in ("PROMETHEUS_MULTIPROC_DIR", "dramatiq_prom_db", "dramatiq_prom_port"):
        monkeypatch.setenv(key, "")
    monkeypatch.setattr(tempfile, "mkdtemp", lambda **_: str(tmp_path))
    monkeypatch.setattr(os, "execv", _fake_execv)

    args: argparse.Namespace = build_parser().parse_args(pushcore_argv[1:])
    assert args.command == "worker", pushcore_argv
    with pytest.raises(_Exec) as caught:
        args.handler(args)
    argv = caught.value.argv
    assert argv[1:4] == ["-m", "dramatiq", "workers.boot:setup"], argv
    # Dramatiq's CLI module has no annotations: its parser is taken as a plain ArgumentParser
    make_parser: Callable[[], argparse.ArgumentParser] = importlib.import_module(
        "dramatiq.cli"
    ).make_argument_parser
    parsed = make_parser().parse_args(argv[3:])
    return DramatiqRun(
        argv=argv,
        processes=int(parsed.processes),
        threads=int(parsed.threads),
        queues=list(parsed.queues),
        shutdown_timeout_seconds=int(parsed.worker_shutdown_timeout) / 1000,
    )
