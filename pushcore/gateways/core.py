"""What the three simulators share: request/response values, counters, throttling faults.

A simulator is pure: :meth:`Simulator.handle` maps one :class:`SimRequest` to one
:class:`SimResponse` and updates its :class:`Counters`.  The engines (granian in
:mod:`pushcore.gateways.rsgi`, the ``h2`` state machine in :mod:`pushcore.gateways.h2server`,
through its :class:`~pushcore.gateways.h2server.SimulatorApp`) only move bytes and call
:func:`dispatch`, which also serves the control routes:

- ``GET /__sim/stats`` (alias ``GET /__stats``): counters as JSON (``requests``,
  ``delivered``, ``rejected``, ``by_status``, ``duplicates``...; ``?tokens=1`` adds the
  per-token table);
- ``POST /__sim/reset`` (alias ``DELETE /__stats``): zero the counters;
- ``POST /__sim/faults``: replace the faults at runtime.  The JSON body is the whole fault
  set (fields of :class:`Faults` and, on the ``h2`` engine, of :class:`TransportFaults`);
  fields left out take their defaults, so ``{}`` lifts every fault.  The answer echoes the
  fault set now in force.

Faults that need no transport (latency, 429/500/503 with ``Retry-After``) live in
:class:`Faults` and work on both engines; the connection-level ones (refusing connections,
GOAWAY, RST_STREAM, drop, stream limit) need the ``h2`` engine, except the stream limit,
which granian takes as a start-up flag.  Granian refuses them (400 on the control route,
``ValueError`` at start) rather than ignoring them.  With granian every worker process has
its own counters and faults: a control request reaches one worker, so use one worker
(the default) when tests depend on them.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

STATS_PATH = "/__stats"  # GET counters (?tokens=1: per token), DELETE: reset
# The control routes: GET /__sim/stats, POST /__sim/reset, POST /__sim/faults (JSON body
# with Faults' fields: replaces the throttling faults at runtime; per granian worker).
SIM_STATS = "/__sim/stats"
SIM_RESET = "/__sim/reset"
SIM_FAULTS = "/__sim/faults"
# Bodies above this are refused by the engines with 413 before any provider logic runs:
# every provider's limit is 4-5 KiB, so this only bounds memory.
MAX_BODY = 64 * 1024
# Per-token counters stop growing here (memory bound for multi-million benchmarks); tokens
# beyond it are counted in ``untracked`` only.
DEFAULT_MAX_TRACKED_TOKENS = 1_000_000


class HeaderLookup(Protocol):
    """Lower-case header names; granian's ``RSGIHeaders`` and ``dict`` both fit."""

    def get(self, key: str, default: Any = None, /) -> Any: ...


@dataclass(frozen=True, slots=True)
class SimRequest:
    method: str
    path: str  # without the query string
    headers: HeaderLookup
    body: bytes
    query: str = ""
    authority: str = ""  # ``:authority`` / Host, for Web Push's VAPID audience check
    http_version: str = "2"  # "1.1" when granian served it over HTTP/1.1
    client_cn: str = ""  # common name of the client certificate (h2 engine, mutual TLS)


@dataclass(frozen=True, slots=True)
class SimResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


class Reject(Exception):
    """Raised by a simulator's checks; its ``handle`` turns it into the provider's error.
    ``reason``: Apple's reason / Google's status / Mozilla's errno text; ``message`` and
    ``detail`` (Google's FCM errorCode, Mozilla's errno) as the provider's format needs."""

    def __init__(self, status: int, reason: str, message: str = "", detail: str = "") -> None:
        super().__init__(status, reason, message, detail)
        self.status = status
        self.reason = reason
        self.message = message
        self.detail = detail


def json_response(
    status: int, payload: Any, headers: list[tuple[str, str]] | None = None
) -> SimResponse:
    out = [("content-type", "application/json; charset=utf-8")]
    if headers:
        out.extend(headers)
    return SimResponse(status, out, json.dumps(payload, separators=(",", ":")).encode())


@dataclass(frozen=True, slots=True)
class Faults:
    """Faults every engine supports.  ``error_every`` answers every N-th request (counted
    per simulator) with ``error_status``; ``error_fraction`` does so at random (seeded, so
    a run is repeatable).  ``latency`` delays every answer (seconds)."""

    latency: float = 0.0
    error_every: int = 0
    error_fraction: float = 0.0
    error_status: int = 429
    retry_after: int = 1
    seed: int = 0
    # close every new connection at once (h2 engine; the client sees a failed connect)
    refuse_connections: bool = False
    # only requests whose path contains this get the errors ("messages:send": FCM's sends,
    # not its OAuth token route); empty: every request
    error_path: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.latency <= 60:
            raise ValueError("latency must be between 0 and 60 seconds")
        if self.error_every < 0 or not 0 <= self.error_fraction <= 1:
            raise ValueError("error_every must be >= 0 and error_fraction within [0, 1]")
        if self.error_status not in (429, 500, 503):
            raise ValueError("error_status must be 429, 500 or 503")


@dataclass(frozen=True, slots=True)
class TransportFaults:
    """Connection-level faults of the ``h2`` engine.  Counts are per connection except
    ``rst_every`` (per server, so it stays predictable across reconnects).

    ``goaway_after``: the N-th request of a connection becomes its last: it and earlier
    streams are answered, later ones are reset with REFUSED_STREAM, then GOAWAY naming it
    as the last stream is sent and the connection closes (after ``goaway_grace``).  With
    ``goaway_first`` the GOAWAY goes out at once, before those answers, and later streams
    get no answer at all (what nghttp2 and APNs do; clients built on ``h2``, such as httpx,
    fail on any frame after a GOAWAY, hence not the default).  ``drop_after``: process the
    N-th request, then abort the connection without answering it (the client cannot know
    whether it was delivered).
    ``goaway_grace``: after a GOAWAY and the last answer it promised, seconds the connection
    stays open (reading and dropping what the client still sends) unless the client closes
    it first, as real HTTP/2 servers linger; 0 closes at once, which makes the client's
    kernel discard unread answers (a reset connection) -- a fault of its own.
    ``rst_every``: reset every N-th request with ``rst_code`` instead of processing it;
    ``rst_fraction``: reset that share of requests at random (seeded by ``seed``);
    ``rst_limit``: at most that many resets in all (0: no limit), so ``rst_every=N,
    rst_limit=1`` resets the N-th request only.

    Set at runtime (``POST /__sim/faults``), ``goaway_after``/``drop_after`` act on the
    N-th or any later request of open connections too, and ``max_concurrent_streams``
    applies to connections opened afterwards (it is announced in the first SETTINGS)."""

    max_concurrent_streams: int = 1000
    goaway_after: int = 0
    goaway_first: bool = False
    goaway_grace: float = 2.0
    rst_every: int = 0
    rst_fraction: float = 0.0
    rst_code: int = 2  # INTERNAL_ERROR; 7 = REFUSED_STREAM ("not processed")
    rst_limit: int = 0
    drop_after: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.max_concurrent_streams <= 10_000:
            raise ValueError("max_concurrent_streams must be between 1 and 10000")
        if min(self.goaway_after, self.rst_every, self.rst_limit, self.drop_after) < 0:
            raise ValueError("fault counts must be >= 0")
        if not 0 <= self.goaway_grace <= 60:
            raise ValueError("goaway_grace must be within [0, 60] seconds")
        if not 0 <= self.rst_fraction <= 1:
            raise ValueError("rst_fraction must be within [0, 1]")
        if not 0 <= self.rst_code <= 0xD:
            raise ValueError("rst_code must be an HTTP/2 error code (0 to 13)")
        if not isinstance(self.goaway_first, bool):
            raise TypeError("goaway_first must be true or false")

    @property
    def needs_h2_engine(self) -> bool:
        return bool(self.goaway_after or self.rst_every or self.rst_fraction or self.drop_after)


@dataclass(slots=True)
class TokenCount:
    received: int = 0  # requests naming this token (including throttled ones)
    accepted: int = 0  # 2xx answers: "delivered"
    first_accepted_at: float | None = None  # time.time() of the first 2xx (when it arrived)


# Payloads kept per token when a simulator records them (tests read back what a recipient
# got); the oldest are dropped first.
PAYLOADS_PER_TOKEN = 8


@dataclass(slots=True)
class Counters:
    """What a simulator received.  Mutated only from its engine's event loop thread."""

    max_tracked_tokens: int = DEFAULT_MAX_TRACKED_TOKENS
    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, TokenCount] = field(default_factory=dict)
    # accepted payloads per tracked token (APNs body, FCM message, Web Push plaintext), only
    # when the simulator's options say ``record_payloads``
    payloads: dict[str, list[bytes]] = field(default_factory=dict)
    untracked: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    # provider requests (not stats/control ones) by HTTP version: "2", "1.1"
    by_http_version: dict[str, int] = field(default_factory=dict)
    # Requests received and not yet answered (engines maintain it; a /__stats request
    # counts itself, so a snapshot shows in_flight >= 1).
    in_flight: int = 0
    peak_in_flight: int = 0

    def enter(self) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def leave(self) -> None:
        self.in_flight -= 1

    def record(self, status: int, reason: str = "", token: str | None = None) -> None:
        self.requests += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1
        if reason:
            self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        if token is None:
            return
        entry = self.tokens.get(token)
        if entry is None:
            if len(self.tokens) >= self.max_tracked_tokens:
                self.untracked += 1
                return
            entry = self.tokens[token] = TokenCount()
        entry.received += 1
        if 200 <= status < 300:
            entry.accepted += 1
            if entry.first_accepted_at is None:
                entry.first_accepted_at = time.time()

    def keep(self, token: str, payload: bytes) -> None:
        """Record an accepted payload of a tracked token."""
        if token not in self.tokens:
            return
        kept = self.payloads.setdefault(token, [])
        kept.append(payload)
        del kept[:-PAYLOADS_PER_TOKEN]

    def fault(self, name: str) -> None:
        self.faults[name] = self.faults.get(name, 0) + 1

    def accepted(self, token: str) -> int:
        entry = self.tokens.get(token)
        return entry.accepted if entry else 0

    def accepted_at(self, token: str) -> float | None:
        """When the first push to ``token`` was accepted (``time.time()``), or None."""
        entry = self.tokens.get(token)
        return entry.first_accepted_at if entry else None

    def received(self, token: str) -> int:
        entry = self.tokens.get(token)
        return entry.received if entry else 0

    def reset(self) -> None:
        self.requests = self.untracked = self.peak_in_flight = 0
        self.by_status.clear()
        self.by_reason.clear()
        self.tokens.clear()
        self.payloads.clear()
        self.faults.clear()
        self.by_http_version.clear()

    def snapshot(self, *, with_tokens: bool = False, with_payloads: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": self.requests,
            "accepted": sum(n for s, n in self.by_status.items() if 200 <= s < 300),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_reason": dict(sorted(self.by_reason.items())),
            "tracked_tokens": len(self.tokens),
            "untracked": self.untracked,
            "faults": dict(sorted(self.faults.items())),
            "by_http_version": dict(sorted(self.by_http_version.items())),
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
        }
        # the names the control route documents: delivered = 2xx answers, rejected = the
        # rest, duplicates = registrations delivered more than once
        out["delivered"] = out["accepted"]
        out["rejected"] = self.requests - out["accepted"]
        out["duplicates"] = sum(1 for c in self.tokens.values() if c.accepted > 1)
        if with_tokens:
            out["tokens"] = {
                t: {"received": c.received, "accepted": c.accepted} for t, c in self.tokens.items()
            }
        if with_payloads:
            out["payloads"] = {
                t: [p.decode("utf-8", "replace") for p in kept] for t, kept in self.payloads.items()
            }
        return out


class Simulator(Protocol):
    """One provider's protocol logic."""

    name: str
    counters: Counters

    def handle(self, request: SimRequest) -> SimResponse:
        """Answer a provider request (the engine already enforced :data:`MAX_BODY`)."""
        ...

    def throttled(self, request: SimRequest, status: int, retry_after: int) -> SimResponse:
        """The provider's own 429/5xx answer; records it in :attr:`counters`."""
        ...


class Throttle:
    """Decides which requests :class:`Faults` answers with an error (pure, seeded)."""

    def __init__(self, faults: Faults) -> None:
        self.replace(faults)

    def replace(self, faults: Faults) -> None:
        """New faults from now on (the control route); the engines read latency and
        refuse_connections from here too."""
        self.faults = faults
        self._seen = 0
        self._random = random.Random(faults.seed)  # noqa: S311 (fault injection, not crypto)

    def hit(self, path: str = "") -> bool:
        f = self.faults
        if f.error_path and f.error_path not in path:
            return False
        self._seen += 1
        if f.error_every and self._seen % f.error_every == 0:
            return True
        return bool(f.error_fraction) and self._random.random() < f.error_fraction


class TransportControl(Protocol):
    """An engine whose connection-level faults can be replaced at runtime (``h2``)."""

    transport_faults: TransportFaults

    def replace_transport_faults(self, faults: TransportFaults) -> None: ...


_FAULT_FIELDS = frozenset(f.name for f in fields(Faults))
_TRANSPORT_FIELDS = frozenset(f.name for f in fields(TransportFaults)) - {"seed"}


def dispatch(
    sim: Simulator,
    throttle: Throttle,
    request: SimRequest,
    transport: TransportControl | None = None,
) -> SimResponse:
    """Stats and control routes, then throttling, then the provider.  ``transport``: the
    engine's connection-level faults, None where it has none (granian)."""
    if request.path == STATS_PATH:
        return _stats(sim, request)
    if request.path.startswith("/__sim/"):
        return _control(sim, throttle, request, transport)
    versions = sim.counters.by_http_version
    versions[request.http_version] = versions.get(request.http_version, 0) + 1
    if len(request.body) > MAX_BODY:
        sim.counters.record(413, "BodyOverEngineLimit")
        return json_response(413, {"reason": "PayloadTooLarge"})
    if throttle.hit(request.path):
        sim.counters.fault("throttled")
        return sim.throttled(request, throttle.faults.error_status, throttle.faults.retry_after)
    return sim.handle(request)


def _stats(sim: Simulator, request: SimRequest) -> SimResponse:
    if request.method == "GET":
        return json_response(200, _snapshot(sim, request))
    if request.method == "DELETE":
        sim.counters.reset()
        return SimResponse(204, [])
    return json_response(405, {"reason": "MethodNotAllowed"})


def _snapshot(sim: Simulator, request: SimRequest) -> dict[str, Any]:
    query = request.query.split("&")
    return sim.counters.snapshot(
        with_tokens="tokens=1" in query, with_payloads="payloads=1" in query
    )


def _control(
    sim: Simulator, throttle: Throttle, request: SimRequest, transport: TransportControl | None
) -> SimResponse:
    if request.path == SIM_STATS and request.method == "GET":
        return json_response(200, _snapshot(sim, request))
    if request.path == SIM_RESET and request.method == "POST":
        sim.counters.reset()
        return json_response(200, {"reset": True})
    if request.path == SIM_FAULTS and request.method == "POST":
        try:
            faults, transport_faults = parse_faults(request.body, h2_engine=transport is not None)
        except (ValueError, TypeError) as exc:
            return json_response(400, {"reason": "BadFaults", "detail": str(exc)})
        throttle.replace(faults)
        answer = asdict(faults)
        if transport is not None:
            transport.replace_transport_faults(transport_faults)
            answer.update(asdict(transport_faults))
        return json_response(200, answer)
    if request.path in (SIM_STATS, SIM_RESET, SIM_FAULTS):
        return json_response(405, {"reason": "MethodNotAllowed"})
    return json_response(404, {"reason": "NotFound"})


def parse_faults(body: bytes, *, h2_engine: bool) -> tuple[Faults, TransportFaults]:
    """The fault set of a ``POST /__sim/faults`` body; ``ValueError``/``TypeError`` when it
    is malformed or asks granian (``h2_engine`` False) for what only ``h2`` can do."""
    given = json.loads(body or b"{}")
    if not isinstance(given, dict):
        raise TypeError("the body must be a JSON object")
    unknown = set(given) - _FAULT_FIELDS - _TRANSPORT_FIELDS
    if unknown:
        raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
    faults = Faults(**{k: v for k, v in given.items() if k in _FAULT_FIELDS})
    transport = {k: v for k, v in given.items() if k in _TRANSPORT_FIELDS}
    transport_faults = TransportFaults(**transport, seed=faults.seed)
    if not h2_engine and (transport or faults.refuse_connections):
        raise ValueError(
            "connection-level faults need the h2 engine (granian takes "
            "max_concurrent_streams only as a start-up flag)"
        )
    return faults, transport_faults


SimulatorFactory = Callable[..., Simulator]
