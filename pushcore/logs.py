"""Logging set-up shared by every process.

Secrets (keys, tokens, installation secrets, credentials) are never passed to a logger;
push tokens are logged by their last 8 characters at most (:func:`token_tail`).
"""

from __future__ import annotations

import logging
import sys


def configure(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
    )


def token_tail(token: str) -> str:
    """What may be shown of a push token: its last 8 characters."""
    return "…" + token[-8:]
