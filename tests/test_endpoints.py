"""The Web Push endpoint policy, as a table: what registration and sending both allow."""

from __future__ import annotations

import pytest

from pushcore.config import load_settings
from pushcore.endpoints import KNOWN_PUSH_SERVICES, EndpointPolicy, parse_allowed_hosts
from pushcore.errors import ConfigError

DEFAULT = EndpointPolicy()
LOOPBACK = EndpointPolicy(allow_loopback=True)
ANY = EndpointPolicy(allowed_hosts=("*",))

# (endpoint, allowed by the default policy, with loopback allowed, with any public host)
CASES = [
    ("https://fcm.googleapis.com/fcm/send/abc:def", True, True, True),
    ("https://FCM.googleapis.com./fcm/send/x", True, True, True),  # case, trailing dot
    ("https://updates.push.services.mozilla.com/wpush/v2/x", True, True, True),
    ("https://web.push.apple.com/QGx", True, True, True),
    ("https://wns2-par02p.notify.windows.com/w/?token=x", True, True, True),
    ("https://notify.windows.com/w", False, False, True),  # *.name is below the name only
    ("https://fcm.googleapis.com.evil.example/x", False, False, True),
    ("https://push.example.net/x", False, False, True),
    ("http://fcm.googleapis.com/fcm/send/x", False, False, False),  # not https
    ("ftp://fcm.googleapis.com/x", False, False, False),
    ("https://user:pw@fcm.googleapis.com/x", False, False, False),
    ("https://fcm.googleapis.com/a b", False, False, False),
    ("https://fcm.googleapis.com/\x00", False, False, False),
    ("https:///x", False, False, False),
    ("https://fcm.googleapis.com:99999/x", False, False, False),
    ("not a url", False, False, False),
    ("https://under_score.example/x", False, False, False),
    # private, link-local (metadata), shared, multicast, unspecified: never, in any notation
    ("https://10.0.0.1/push", False, False, False),
    ("https://192.168.1.1/push", False, False, False),
    ("https://172.16.0.1/push", False, False, False),
    ("https://100.100.100.200/latest", False, False, False),
    ("https://169.254.169.254/latest", False, False, False),
    ("https://0251.0376.0251.0376/latest", False, False, False),  # 169.254.169.254, octal
    ("https://0xa9fea9fe/latest", False, False, False),  # the same in hex
    ("https://224.0.0.1/p", False, False, False),
    ("https://0.0.0.0/p", False, False, False),
    ("https://0/p", False, False, False),
    ("https://[::]/p", False, False, False),
    ("https://[fe80::1%25eth0]/p", False, False, False),
    ("https://[fd00:ec2::254]/latest", False, False, False),
    ("https://[ff02::1]/p", False, False, False),
    ("https://[::ffff:10.0.0.1]/p", False, False, False),  # v4-mapped
    ("https://[64:ff9b::a9fe:a9fe]/p", False, False, False),  # NAT64 of 169.254.169.254
    ("https://[2002:a00:1::]/p", False, False, False),  # 6to4 of 10.0.0.1
    ("https://1.2.3.4.5/p", False, False, False),  # numeric, but no address
    # loopback: only with the setting on, then over http too
    ("https://127.0.0.1/p", False, True, False),
    ("http://127.0.0.2:9/p", False, True, False),
    ("https://2130706433/p", False, True, False),  # 127.0.0.1 in decimal
    ("https://0x7f.1/p", False, True, False),
    ("https://0177.0.0.1/p", False, True, False),
    ("https://127.1/p", False, True, False),
    ("http://[::1]:9/p", False, True, False),
    ("https://[::ffff:127.0.0.1]/p", False, True, False),
    ("http://localhost:9/p", False, True, False),
    ("https://push.localhost/p", False, True, False),
    # a public address: only when any host is allowed
    ("https://8.8.8.8/p", False, False, True),
    ("https://[2001:4860:4860::8888]/p", False, False, True),
]


@pytest.mark.parametrize(("endpoint", "default", "loopback", "any_host"), CASES)
def test_endpoint_policy(endpoint: str, default: bool, loopback: bool, any_host: bool) -> None:
    for policy, allowed in ((DEFAULT, default), (LOOPBACK, loopback), (ANY, any_host)):
        refusal = policy.refusal(endpoint)
        assert (refusal is None) is allowed, (policy, refusal)
        assert (policy.origin(endpoint) is not None) is allowed


def test_origin_is_the_vapid_audience() -> None:
    assert DEFAULT.origin("https://FCM.googleapis.com:443/fcm/send/x?y") == (
        "https://fcm.googleapis.com:443"
    )
    assert LOOPBACK.origin("http://[::1]:9002/p") == "http://[::1]:9002"
    assert LOOPBACK.origin("http://127.0.0.1:9002/p") == "http://127.0.0.1:9002"


@pytest.mark.parametrize(
    ("address", "default", "loopback"),
    [
        ("142.250.185.74", True, True),
        ("2a00:1450:4001:82b::200a", True, True),
        ("127.0.0.1", False, True),
        ("127.0.0.2", False, True),
        ("::1", False, True),
        ("::ffff:127.0.0.1", False, True),
        ("10.0.0.1", False, False),
        ("169.254.169.254", False, False),
        ("fe80::1%eth0", False, False),
        ("::ffff:192.168.0.1", False, False),
        ("0.0.0.0", False, False),
        ("not an address", False, False),
    ],
)
def test_connected_address(address: str, default: bool, loopback: bool) -> None:
    assert DEFAULT.address_allowed(address) is default
    assert LOOPBACK.address_allowed(address) is loopback


def test_allowed_hosts_setting() -> None:
    assert load_settings(environ={}).endpoint_policy() == EndpointPolicy(KNOWN_PUSH_SERVICES)
    settings = load_settings(
        environ={
            "PUSHCORE_WEBPUSH_ALLOWED_HOSTS": " push.example.net, *.Push.Example.ORG. ",
            "PUSHCORE_WEBPUSH_ALLOW_LOOPBACK": "true",
        }
    )
    policy = settings.endpoint_policy()
    assert policy == EndpointPolicy(("push.example.net", "*.push.example.org"), True)
    assert policy.refusal("https://a.push.example.org/x") is None
    assert policy.refusal("https://fcm.googleapis.com/x") is not None
    assert parse_allowed_hosts("*") == ("*",)
    for bad in ("", " , ", "bad host", "https://x.example", "*.*.x"):
        with pytest.raises(ValueError, match=r"host|\*"):
            parse_allowed_hosts(bad)
    with pytest.raises(ConfigError, match="PUSHCORE_WEBPUSH_ALLOWED_HOSTS"):
        load_settings(environ={"PUSHCORE_WEBPUSH_ALLOWED_HOSTS": "10.0.0.1/8"})
