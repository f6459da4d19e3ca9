"""One batch through one provider over the transport: one :class:`Result` per registration.

This is the whole send path of the delivery layer; the fan-out engine calls it once per
batch.  It fetches the provider's authorization when needed (FCM's OAuth token travels over
the same transport), sends every request of the batch concurrently (the transport bounds
what is in flight), classifies the answers, and when a provider says its authorization
went stale (APNs ExpiredProviderToken, FCM UNAUTHENTICATED) renews it once and sends those
registrations once more before reporting; refused again, they are a sender error.

``rendered`` is one payload for the whole batch, or :class:`PerRecipient` payloads
(per-recipient content): registrations sharing a payload object are built together.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pushcore.providers.base import Outcome, Provider, Registration, Result
from pushcore.providers.errors import AuthError
from pushcore.transport.base import Request, Transport


@dataclass(frozen=True, slots=True)
class PerRecipient:
    """One rendered payload per registration, in the registrations' order; recipients whose
    content came out the same share one payload object."""

    payloads: Sequence[Any]

    def subset(self, positions: Sequence[int]) -> PerRecipient:
        return PerRecipient([self.payloads[i] for i in positions])


async def authorize(provider: Provider[Any], transport: Transport, *, timeout: float) -> None:
    """Fetch the provider's authorization if it has none that is fresh; ``AuthError`` when
    the provider refuses our credentials."""
    now = time.time()
    request = provider.auth_request(now)
    if request is None:
        return
    (response,) = await transport.send([request], timeout=timeout)
    provider.accept_auth(response, time.time())


async def deliver(
    provider: Provider[Any],
    transport: Transport,
    rendered: Any,
    registrations: Sequence[Registration],
    *,
    timeout: float,
) -> list[Result]:
    """Send ``rendered`` to every registration; raises ``AuthError`` only when the
    authorization itself cannot be obtained (a sender error for the whole batch)."""
    deadline = time.monotonic() + timeout
    await authorize(provider, transport, timeout=timeout)
    results = await _send_once(provider, transport, rendered, registrations, deadline)
    stale = [i for i, r in enumerate(results) if r.refresh_auth]
    if stale:
        provider.invalidate_auth(time.time())
        try:
            await authorize(provider, transport, timeout=max(deadline - time.monotonic(), 1.0))
        except AuthError:
            return results
        subset = rendered.subset(stale) if isinstance(rendered, PerRecipient) else rendered
        again = await _send_once(
            provider, transport, subset, [registrations[i] for i in stale], deadline
        )
        for i, result in zip(stale, again, strict=True):
            # refused again with a fresh authorization: the key itself is wrong or revoked
            # (APNs InvalidProviderToken), which no amount of retrying will fix
            results[i] = (
                Result(Outcome.SENDER_ERROR, result.reason, status=result.status)
                if result.refresh_auth
                else result
            )
    return results


async def _send_once(
    provider: Provider[Any],
    transport: Transport,
    rendered: Any,
    registrations: Sequence[Registration],
    deadline: float,
) -> list[Result]:
    built = _build(provider, rendered, registrations, time.time())
    positions = [i for i, item in enumerate(built) if isinstance(item, Request)]
    requests = [item for item in built if isinstance(item, Request)]
    results: list[Result | None] = [item if isinstance(item, Result) else None for item in built]
    if requests:
        remaining = max(deadline - time.monotonic(), 0.5)
        responses = await transport.send(requests, timeout=remaining)
        now = time.time()
        for i, response in zip(positions, responses, strict=True):
            results[i] = provider.classify(response, now)
    return [r if r is not None else Result(Outcome.RETRY, "not-sent") for r in results]


def _build(
    provider: Provider[Any], rendered: Any, registrations: Sequence[Registration], now: float
) -> list[Request | Result]:
    if not isinstance(rendered, PerRecipient):
        return provider.build(rendered, registrations, now)
    groups: dict[int, list[int]] = {}
    for i, payload in enumerate(rendered.payloads):
        groups.setdefault(id(payload), []).append(i)
    built: list[Request | Result | None] = [None] * len(registrations)
    for positions in groups.values():
        payload = rendered.payloads[positions[0]]
        items = provider.build(payload, [registrations[i] for i in positions], now)
        for i, item in zip(positions, items, strict=True):
            built[i] = item
    return [item for item in built if item is not None]
