"""When to try a retryable registration again.  Pure."""

from __future__ import annotations

import random


def retry_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None,
    rng: random.Random,
) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt`` 0 is the first send).

    Exponential back-off with "equal jitter": half of the exponential step is fixed, half is
    random, so a 429 storm does not come back as one synchronised wave, yet no retry comes
    back almost at once.  A provider's Retry-After is a floor: sending earlier would only earn
    another 429.  ``cap`` bounds our own back-off, not the provider's Retry-After; a
    Retry-After beyond the message's expiry simply lets the retry batch expire.
    """
    step = min(cap, base * 2.0 ** max(0, attempt))
    delay = step / 2 + rng.uniform(0, step / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
