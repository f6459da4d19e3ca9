"""The brake on guessing at the console's sign-in form: failed sign-ins are counted per
client address, and an address with ``failures`` of them within ``window`` seconds is
refused (429, with Retry-After) until the oldest leaves the window, a correct credential
included, so that a guesser learns nothing more while refused.  Pure: the caller passes the
time.

Limits, on purpose: the count is per API process (``pushcore api --workers N`` allows up to
N times as many), and it forgets on a restart; it keeps at most ``size`` addresses (the
least recently failing are forgotten first, so an attacker rotating addresses gains no more
than each address's own budget).  Server keys are 256-bit random, so this is mainly for the
operator-chosen admin token.  The address is the TCP peer's: behind a reverse proxy every
client shares the proxy's budget, and a guesser there can hold sign-in closed for everyone
for a window; such a proxy should limit the form itself.
"""

from __future__ import annotations

from collections import OrderedDict, deque


class SignInThrottle:
    def __init__(self, failures: int, window: float, size: int = 10_000) -> None:
        self._failures = failures  # 0: no limit
        self._window = window
        self._size = size
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def refused_for(self, address: str, now: float) -> float:
        """Seconds this address must still wait before its next sign-in (0: go ahead)."""
        if self._failures <= 0:
            return 0.0
        times = self._seen.get(address)
        if times is None:
            return 0.0
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._seen[address]
            return 0.0
        if len(times) < self._failures:
            return 0.0
        return times[0] + self._window - now

    def failed(self, address: str, now: float) -> None:
        if self._failures <= 0:
            return
        times = self._seen.pop(address, None)
        if times is None:
            times = deque(maxlen=self._failures)
            while len(self._seen) >= self._size:
                self._seen.popitem(last=False)
        times.append(now)
        self._seen[address] = times  # most recently failing last
