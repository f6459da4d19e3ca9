"""``make bench``: every benchmark at a size that finishes within ~10 minutes here.

- ``benchmarks.transport``: the delivery layer per provider and engine, side by side.
- ``benchmarks.fanout``: a 200,000-device broadcast through the whole pipeline, with the
  bare transport and a naive sender as baselines (``--devices 1000000`` for the goal size).
- ``benchmarks.registration``: the registration API under load for 20 s.

Each prints its JSON and writes it (and a PNG) under ``benchmarks/results/``.
"""

from __future__ import annotations

from benchmarks import fanout, registration, transport

if __name__ == "__main__":
    transport.main(["--tokens", "20000", "--repeats", "3"])
    fanout.main(["--devices", "200000"])
    registration.main(["--seconds", "20"])
