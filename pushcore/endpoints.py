"""Where Web Push requests may go: one policy, applied when a browser registers its
subscription and again when a notification is sent to it.  Pure (no I/O).

A subscription endpoint is a URL the browser hands us, so without a policy anyone who can
register could aim our requests at internal hosts.  :class:`EndpointPolicy` says:

- the endpoint is ``https``, with a host and no user info, spaces or control characters;
- its host is one of ``allowed_hosts`` (``PUSHCORE_WEBPUSH_ALLOWED_HOSTS``): a name matches
  itself, ``*.name`` any name below it, and ``*`` any public host or address; the default is
  the push services browsers use (:data:`KNOWN_PUSH_SERVICES`);
- an address, written as one (IPv4 in any notation the resolver reads: ``2130706433``,
  ``0x7f.1``, ``0177.0.0.1``, ``127.1``; IPv6, v4-mapped and v4-embedding forms included) or
  the one a name resolves to when the connection is made (:meth:`address_allowed`, which
  the transport calls with the connected address), is never private, loopback,
  link-local (cloud metadata services live there), unspecified, multicast, reserved or
  otherwise not globally routable;
- with ``allow_loopback`` (``PUSHCORE_WEBPUSH_ALLOW_LOOPBACK``, the local simulators and
  tests) loopback hosts (``127.0.0.0/8``, ``::1``, ``localhost``) are allowed as well, over
  http too, whatever ``allowed_hosts`` says.

Static checks and the connected-address check together close the gap a name leaves (a
public name that resolves to ``10.0.0.1``; DNS rebinding between the two): the address
is checked on the socket the request will use, not on an earlier lookup.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# The hosts of the push services browsers subscribe with: Chrome/Edge on FCM, Firefox on
# Mozilla's autopush, Safari on Apple's, Edge legacy on WNS (many host names under one).
KNOWN_PUSH_SERVICES = (
    "fcm.googleapis.com",
    "updates.push.services.mozilla.com",
    "push.services.mozilla.com",
    "web.push.apple.com",
    "*.notify.windows.com",
)
ANY_HOST = "*"

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (v4-mapped, 6to4, Teredo client, NAT64)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_loopback(ip: IpAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return mapped.is_loopback
    return ip.is_loopback


def is_public(ip: IpAddress) -> bool:
    """Globally routable unicast, and so is any IPv4 address it embeds."""
    if not ip.is_global or ip.is_multicast:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local:
            return False
        embedded = _embedded_v4(ip)
        if embedded is not None:
            return is_public(embedded)
    return True


def literal_address(host: str) -> IpAddress | None:
    """The address ``host`` is written as, in any notation, or ``None`` for a name.
    ``ValueError`` for a host that looks numeric but is no address (as a browser's URL
    parser refuses it)."""
    if ":" in host:  # only IPv6 literals have colons (urlsplit drops the brackets)
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an address") from None
    labels = host.split(".")
    # a host whose last label is numeric is an IPv4 address to URL parsers and resolvers
    if not _NUMERIC_LABEL.fullmatch(labels[-1]):
        return None
    try:
        # inet_aton reads the classic notations (decimal, octal, hex, 1 to 4 parts): the
        # ones getaddrinfo and libcurl accept.  It only parses; nothing is resolved.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        raise ValueError(f"{host!r} is not an address") from None


def _host_matches(host: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def parse_allowed_hosts(raw: str) -> tuple[str, ...]:
    """``PUSHCORE_WEBPUSH_ALLOWED_HOSTS``: comma-separated names, ``*.name`` or ``*``."""
    hosts = tuple(h.strip().lower().rstrip(".") for h in raw.split(",") if h.strip())
    if not hosts:
        raise ValueError("give at least one host, or * for any public host")
    for host in hosts:
        name = host.removeprefix("*.")
        if host != ANY_HOST and not all(_LABEL.fullmatch(label) for label in name.split(".")):
            raise ValueError(f"{host!r} is not a host name, *.name or *")
    return hosts


@dataclass(frozen=True, slots=True)
class EndpointPolicy:
    allowed_hosts: tuple[str, ...] = KNOWN_PUSH_SERVICES
    allow_loopback: bool = False

    def refusal(self, endpoint: str) -> str | None:
        """Why ``endpoint`` may not be sent to, or ``None`` when it may."""
        reason, _ = self._check(endpoint)
        return reason

    def origin(self, endpoint: str) -> str | None:
        """``scheme://host[:port]`` of an allowed endpoint (the VAPID audience), else
        ``None``."""
        reason, origin = self._check(endpoint)
        return origin if reason is None else None

    def address_allowed(self, address: str) -> bool:
        """Whether a connection to ``address`` (the resolved peer, ``%zone`` allowed) may
        carry a request."""
        try:
            ip = ipaddress.ip_address(address.partition("%")[0])
        except ValueError:
            return False
        if is_loopback(ip):
            return self.allow_loopback
        return is_public(ip)

    def _check(self, endpoint: str) -> tuple[str | None, str]:
        try:
            scheme, host, ip, origin = _parse(endpoint)
            self._judge(scheme, host, ip)
        except _Refused as exc:
            return str(exc), ""
        return None, origin

    def _judge(self, scheme: str, host: str, ip: IpAddress | None) -> None:
        if is_loopback(ip) if ip is not None else _loopback_name(host):
            if not self.allow_loopback:
                raise _Refused("loopback endpoints are refused (PUSHCORE_WEBPUSH_ALLOW_LOOPBACK)")
            return
        if scheme != "https":
            raise _Refused("must be https (plain http only to loopback, for the simulators)")
        if ip is not None and not is_public(ip):
            raise _Refused("private, link-local and other internal addresses are refused")
        if ANY_HOST in self.allowed_hosts:
            return
        if ip is None and any(_host_matches(host, p) for p in self.allowed_hosts):
            return
        raise _Refused("not a push service host (PUSHCORE_WEBPUSH_ALLOWED_HOSTS)")


class _Refused(Exception):
    """Why an endpoint is refused (internal to this module)."""


def _parse(endpoint: str) -> tuple[str, str, IpAddress | None, str]:
    """(scheme, host, its address when written as one, origin) of an absolute http(s) URL
    without user info; :class:`_Refused` otherwise."""
    if _SPACE_OR_CONTROL.search(endpoint):
        raise _Refused("must not contain spaces or control characters")
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        raise _Refused("not a URL") from None
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme not in ("https", "http") or not host:
        raise _Refused("must be an https URL")
    if parts.username is not None or parts.password is not None:
        raise _Refused("must not carry user information")
    try:
        ip = literal_address(host)
    except ValueError as exc:
        raise _Refused(str(exc)) from None
    if ip is None and not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise _Refused("the host is not a valid name")
    shown = f"[{host}]" if ip is not None and ip.version == 6 else host
    return (
        parts.scheme,
        host,
        ip,
        f"{parts.scheme}://{shown}" + (f":{port}" if port is not None else ""),
    )


def _loopback_name(host: str) -> bool:
    # RFC 6761: localhost and every name under it are loopback
    return host == "localhost" or host.endswith(".localhost")
