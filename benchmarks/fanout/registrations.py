"""The run's registrations as plain data: which provider serves each platform, an even
sample of the seeded rows, and a provider's ``Registration`` of one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pushcore.providers.base import Registration

# also the name of each platform's simulator
PROVIDER_OF = {"ios": "apns", "android": "fcm", "web": "webpush"}

# one registration as plain data (crosses a process boundary): platform, id, token, keys
RegTuple = tuple[str, int, str, str | None, str | None]


def registration(r: RegTuple) -> Registration:
    return Registration(installation_id=r[1], token=r[2], p256dh=r[3], auth=r[4])


def sample(rows: Sequence[Any], n: int) -> list[RegTuple]:
    """Up to ``n`` rows spread evenly over ``rows`` (keeps the platform mix)."""
    n = min(n, len(rows))
    picked = (rows[i * len(rows) // n] for i in range(n))
    return [(r["platform"], r["id"], r["token"], r["p256dh"], r["auth"]) for r in picked]
