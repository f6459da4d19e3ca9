"""The fast engine's application: an RSGI app that granian's worker imports as
``pushcore.gateways.rsgi:app``.

The worker learns what to simulate from two environment variables set by
:class:`pushcore.gateways.granian_engine.GranianProcess`:

- ``PUSHSIM_PROVIDER``: ``apns``, ``fcm`` or ``webpush``;
- ``PUSHSIM_CONFIG``: JSON ``{"options": {...}, "faults": {...}, "max_tracked_tokens": n}``
  (fields of the provider's options dataclass and of :class:`~pushcore.gateways.core.Faults`).

(Not ``PUSHCORE_*``: :func:`pushcore.config.load_settings` refuses unknown variables of
that prefix, and these belong to the simulator process only.)

Counters and faults live in the worker process: with ``--workers N`` each worker counts its
own requests, ``/__sim/stats`` shows whichever worker answered and ``POST /__sim/faults``
changes only that worker's faults, so exact counts and runtime faults need one worker.
Connection-level faults are refused here (no handle on granian's connections).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from pushcore.gateways.apns import ApnsOptions, ApnsSimulator
from pushcore.gateways.core import (
    MAX_BODY,
    Counters,
    Faults,
    SimRequest,
    Simulator,
    Throttle,
    dispatch,
    json_response,
)
from pushcore.gateways.fcm import FcmOptions, FcmSimulator
from pushcore.gateways.webpush import WebPushOptions, WebPushSimulator

ENV_PROVIDER = "PUSHSIM_PROVIDER"
ENV_CONFIG = "PUSHSIM_CONFIG"
PROVIDERS = ("apns", "fcm", "webpush")


def build_simulator(
    provider: str, options: dict[str, Any] | None = None, max_tracked_tokens: int | None = None
) -> Simulator:
    """A simulator from JSON-able options (the granian worker's path; tests use it too)."""
    counters = Counters() if max_tracked_tokens is None else Counters(max_tracked_tokens)
    opts = options or {}
    if provider == "apns":
        return ApnsSimulator(ApnsOptions(**opts), counters=counters)
    if provider == "fcm":
        return FcmSimulator(FcmOptions(**opts), counters=counters)
    if provider == "webpush":
        return WebPushSimulator(WebPushOptions(**opts), counters=counters)
    raise ValueError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")


class RsgiApp:
    """Built lazily from the environment in the worker (``__rsgi_init__``)."""

    def __init__(self) -> None:
        self.sim: Simulator | None = None
        self.faults = Faults()
        self.throttle = Throttle(self.faults)

    def configure(self) -> Simulator:
        config = json.loads(os.environ.get(ENV_CONFIG) or "{}")
        self.faults = Faults(**config.get("faults", {}))
        self.throttle = Throttle(self.faults)
        self.sim = build_simulator(
            os.environ.get(ENV_PROVIDER, ""),
            config.get("options"),
            config.get("max_tracked_tokens"),
        )
        return self.sim

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.configure()

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.proto != "http":
            return
        sim = self.sim or self.configure()
        headers = scope.headers
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            sim.counters.record(413, "BodyOverEngineLimit")
            response = json_response(413, {"reason": "PayloadTooLarge"})
            proto.response_bytes(response.status, response.headers, response.body)
            return
        if length is not None:
            body = await proto()
        else:
            body = await _read_capped(proto)
        sim.counters.enter()
        try:
            if self.throttle.faults.latency:
                await asyncio.sleep(self.throttle.faults.latency)
            request = SimRequest(
                scope.method,
                scope.path,
                headers,
                body,
                scope.query_string,
                scope.authority or headers.get("host") or "",
                scope.http_version,
            )
            response = dispatch(sim, self.throttle, request)
        finally:
            sim.counters.leave()
        proto.response_bytes(response.status, response.headers, response.body)


async def _read_capped(proto: Any) -> bytes:
    # No content-length: stream the body and stop buffering past the cap (dispatch then
    # answers 413 for the over-long body).
    received = bytearray()
    async for chunk in proto:
        if len(received) <= MAX_BODY:
            received += chunk[: MAX_BODY + 1 - len(received)]
    return bytes(received)


app = RsgiApp()
