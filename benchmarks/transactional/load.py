"""The transactional load: one send request per user, submitted by concurrent clients of
:mod:`benchmarks.loadgen`, one at a time or ``--batch`` at a time, and what the clients saw.

A request that fails (connection lost, no answer in time) is counted and not sent again:
the API may have accepted it, and sending it twice would break the exactly-once check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from benchmarks import loadgen
from benchmarks.fanout.broadcast import App

MAX_BATCH = 1000  # what POST .../messages:batch takes in one call
SEND_TIMEOUT = 30.0  # one message, s
BATCH_TIMEOUT = 120.0  # one call of up to MAX_BATCH messages, s
MAX_ERROR_KEY = 120  # characters of an error kept as its key in ``errors``


@dataclass(frozen=True, slots=True)
class Call:
    """One request the clients send: its path under the app and its JSON body."""

    path: str
    body: dict[str, Any]
    messages: int


@dataclass(frozen=True, slots=True)
class Answered:
    """One call that got an answer: when it was sent (s since the run's start), how long
    the answer took (s), and how many of its messages were accepted."""

    sent_at: float
    latency: float
    messages: int
    accepted: int


@dataclass
class Submitted:
    """What the clients saw.  ``accepted`` grows while the load runs: the sampler reads it."""

    accepted: int = 0
    answered: list[Answered] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)  # in messages, by cause
    first_sent: float | None = None  # s since the run's start
    last_answer: float | None = None

    def error(self, cause: str, messages: int) -> None:
        key = cause[:MAX_ERROR_KEY]
        self.errors[key] = self.errors.get(key, 0) + messages


def send_request(user: str, n: int) -> dict[str, Any]:
    """The send to one user, as the API takes it."""
    return {
        "target": {"external_user_ids": [user]},
        "notification": {"title": "Your sign-in code", "body": f"{n:06d} is your code"},
    }


def calls(users: Sequence[str], batch: int) -> list[Call]:
    """One call per user, or (``batch`` > 0) one per ``batch`` users."""
    bodies = [send_request(user, n) for n, user in enumerate(users)]
    if batch <= 0:
        return [Call("/messages", body, 1) for body in bodies]
    chunks = (bodies[i : i + batch] for i in range(0, len(bodies), batch))
    return [Call("/messages:batch", {"messages": chunk}, len(chunk)) for chunk in chunks]


async def batch_route_missing(http: aiohttp.ClientSession, app: App) -> int | None:
    """The status when ``POST .../messages:batch`` is not there (404, or 405); else None.
    The probe is an empty batch: it sends nothing whatever the route makes of it."""
    async with http.post(
        f"/v1/apps/{app.code}/messages:batch",
        json={"messages": []},
        headers={"Authorization": f"Bearer {app.server_key}"},
    ) as resp:
        await resp.read()
        return resp.status if resp.status in (404, 405) else None


async def drive(
    host: str,
    port: int,
    app: App,
    work: Sequence[Call],
    *,
    concurrency: int,
    submitted: Submitted,
    t0: float,
) -> None:
    """Send every call of ``work`` from ``concurrency`` clients, recording into
    ``submitted``; ``t0`` is the run's start (``time.monotonic()``) its times count from."""
    shared = iter(work)  # each client takes the next call: the calls bound every loop
    await asyncio.gather(
        *(_client(host, port, app, shared, submitted, t0) for _ in range(concurrency))
    )


async def _client(
    host: str, port: int, app: App, shared: Iterator[Call], submitted: Submitted, t0: float
) -> None:
    conn = await loadgen.Connection.open(host, port)
    try:
        for call in shared:
            conn = await _send(conn, host, port, app, call, submitted, t0)
    finally:
        conn.close()


async def _send(
    conn: loadgen.Connection,
    host: str,
    port: int,
    app: App,
    call: Call,
    submitted: Submitted,
    t0: float,
) -> loadgen.Connection:
    """One call; the connection to go on with (a new one when this one broke)."""
    timeout = BATCH_TIMEOUT if call.path.endswith(":batch") else SEND_TIMEOUT
    sent = time.monotonic()
    if submitted.first_sent is None:
        submitted.first_sent = sent - t0
    try:
        status, answer = await conn.call(
            "POST", f"/v1/apps/{app.code}{call.path}", app.server_key, call.body, timeout
        )
    except loadgen.LoadgenError as exc:
        submitted.error(f"connection: {exc}", call.messages)
        conn.close()
        return await loadgen.Connection.open(host, port)
    latency = time.monotonic() - sent
    accepted = _accept(status, answer, call, submitted)
    submitted.answered.append(Answered(sent - t0, latency, call.messages, accepted))
    submitted.last_answer = sent + latency - t0
    return conn


def _accept(status: int, answer: Any, call: Call, submitted: Submitted) -> int:
    """Count the messages the answer accepted (and the others as errors); how many."""
    if call.path == "/messages":
        results = [{"status": status, "message": answer}]
    elif status == 200 and isinstance(answer, dict) and isinstance(answer.get("results"), list):
        results = answer["results"]
        if len(results) != call.messages:
            submitted.error(f"batch answered {len(results)} results", call.messages)
            return 0
    else:
        submitted.error(f"HTTP {status}", call.messages)
        return 0
    accepted = 0
    for result in results:
        if result.get("status") == 202 and isinstance(result.get("message"), dict):
            submitted.message_ids.append(str(result["message"]["message_id"]))
            accepted += 1
        else:
            submitted.error(f"HTTP {result.get('status')}", 1)
    submitted.accepted += accepted
    return accepted
