"""Where webhooks may be sent: the endpoint-address policy (SSRF).  Pure.

- Only ``https`` URLs; plain ``http`` only to a loopback host, and loopback at all only
  when PUSHCORE_WEBPUSH_ALLOW_LOOPBACK allows it (development against local receivers).
- Never to private, link-local (cloud metadata at 169.254.169.254), shared, reserved,
  unspecified or multicast addresses unless PUSHCORE_WEBHOOK_ALLOW_PRIVATE says so.
- A host name is checked when the URL is given (a literal address, ``localhost``) and
  again at every connection, on the addresses it resolves to (:func:`address_allowed`,
  used by the delivery loop's resolver), so DNS cannot point an accepted name inside.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from pushcore import endpoints
from pushcore.endpoints import IpAddress as Address


@dataclass(frozen=True, slots=True)
class Policy:
    allow_loopback: bool = False
    allow_private: bool = False


def address_allowed(address: Address, policy: Policy) -> bool:
    """The same classification as the Web Push endpoint policy (:mod:`pushcore.endpoints`:
    v4-mapped, 6to4, Teredo and NAT64 forms judged by the IPv4 address they carry)."""
    if endpoints.is_loopback(address):
        return policy.allow_loopback
    if address.is_multicast or address.is_unspecified:
        return False
    return endpoints.is_public(address) or policy.allow_private


def url_problem(url: str, policy: Policy) -> str | None:
    """Why ``url`` cannot be a webhook endpoint, or None."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        return "not a URL"
    if not host or parts.username or parts.password or any(c.isspace() for c in url):
        return "must be an absolute URL without credentials"
    return _scheme_problem(parts.scheme, host, policy) or _address_problem(host, policy)


def _scheme_problem(scheme: str, host: str, policy: Policy) -> str | None:
    loopback = _loopback(host)
    if scheme not in ("https", "http"):
        return "must be https"
    if scheme == "http" and not loopback:
        return "must be https (plain http only to a loopback receiver)"
    if loopback and not policy.allow_loopback:
        return "loopback receivers are not allowed here"
    return None


def _address_problem(host: str, policy: Policy) -> str | None:
    try:
        # any notation a resolver accepts (2130706433, 0x7f.1, ...), as for Web Push
        literal = endpoints.literal_address(host)
    except ValueError as exc:
        return str(exc)
    if literal is None:
        return None  # a name: checked on what it resolves to, at each connection
    if not address_allowed(literal, policy):
        return "private, link-local and reserved addresses are not allowed"
    return None


def _loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        literal = endpoints.literal_address(host)
    except ValueError:
        return False
    return literal is not None and endpoints.is_loopback(literal)
