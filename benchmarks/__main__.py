"""``make bench``: the benchmarks that exist, at a size that finishes in minutes here.

Today that is the delivery layer (``benchmarks.transport``: every provider and engine side
by side, with the simulators' ceiling).  The million-device fan-out and the registration
load test are still to be written.
"""

from __future__ import annotations

from benchmarks import transport

if __name__ == "__main__":
    transport.main(["--tokens", "20000", "--repeats", "3"])
