"""The send side of the Web Push endpoint policy, with the real provider, CurlTransport and
simulators: what the policy refuses is never connected to, fails as ``endpoint-refused``
(PERMANENT: the registration is kept, never deleted as dead), and what it allows is
delivered.  The connected address is what counts, not the name."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

from pushcore.endpoints import EndpointPolicy
from pushcore.fanout.delivery import deliver
from pushcore.gateways import fates
from pushcore.providers.base import Outcome, Registration
from pushcore.providers.webpush import WebPushProvider
from tests.delivery.test_curl_delivery import (
    NOTE,
    TIMEOUT,
    CurlKeys,
    curl_ca_dir,
    curl_keys,
    running,
    vapid_credentials,
)

__all__ = ["curl_ca_dir", "curl_keys"]  # fixtures, found by pytest through this module


def _loopback_name() -> str:
    """A host name (not ``localhost``, which the URL check already knows) that resolves to
    loopback: this machine's own name, as /etc/hosts maps it."""
    name = socket.gethostname()
    addresses = {str(info[4][0]) for info in socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)}
    assert addresses, name
    assert all(a.startswith("127.") or a == "::1" for a in addresses), (name, addresses)
    return name


async def test_a_name_resolving_to_loopback_is_refused_when_connecting(
    curl_ca_dir: Path, curl_keys: CurlKeys
) -> None:
    async with running(curl_ca_dir) as (sims, curl):
        port = urlsplit(sims.webpush.origin).port
        by_name = fates.webpush_subscription(1, origin=f"https://{_loopback_name()}:{port}")
        by_address = fates.webpush_subscription(2, origin=sims.webpush.origin)
        regs = [
            Registration(installation_id=i, token=s.endpoint, p256dh=s.p256dh, auth=s.auth)
            for i, s in enumerate([by_name, by_address])
        ]
        # any public host allowed, loopback not: the name passes the URL check, and only
        # the address it resolves to stops it
        policy = EndpointPolicy(allowed_hosts=("*",))
        assert policy.refusal(by_name.endpoint) is None
        provider = WebPushProvider(vapid_credentials(curl_keys.vapid), policy=policy)
        refused = await deliver(provider, curl, provider.render(NOTE), regs, timeout=TIMEOUT)
        counters = sims.webpush.counters
        assert counters.by_status == {}  # nothing reached the push service

        # the same subscriptions with loopback allowed (the simulators' setting): delivered
        allowing = WebPushProvider(
            vapid_credentials(curl_keys.vapid), policy=EndpointPolicy(allow_loopback=True)
        )
        sent = await deliver(allowing, curl, allowing.render(NOTE), regs[1:], timeout=TIMEOUT)

    assert [(r.outcome, r.reason) for r in refused] == [
        (Outcome.PERMANENT, "endpoint-refused"),
        (Outcome.PERMANENT, "endpoint-refused"),
    ]
    assert [(r.outcome, r.status) for r in sent] == [(Outcome.DELIVERED, 201)]
    assert counters.by_status == {201: 1}
