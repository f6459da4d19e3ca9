"""Argument types shared by the ``pushcore`` subcommands.

Each raises ``argparse.ArgumentTypeError`` with a message naming what was wrong, which
argparse turns into a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def int_between(low: int, high: int, unit: str = "") -> Callable[[str], int]:
    """A whole number within ``[low, high]``; ``unit`` ("seconds") goes into the messages."""
    of = f" of {unit}" if unit else ""
    suffix = f" {unit}" if unit else ""

    def parse(raw: str) -> int:
        try:
            value = int(raw, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number{of}: {raw!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"between {low} and {high}{suffix}, got {value}")
        return value

    return parse


def port(raw: str) -> int:
    """A TCP port; 0 lets the system choose."""
    try:
        value = int(raw, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {raw!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range (0 to 65535): {value}")
    return value


def nonnegative(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """A number (of ``kind``) that is at least 0."""

    def parse(raw: str) -> int | float:
        try:
            value = kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {raw!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {raw}")
        return value

    return parse
