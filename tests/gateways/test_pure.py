"""Protocol logic without I/O: fates, JWT checks, the stats route, TLS files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import http_ece
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pushcore.gateways import fates
from pushcore.gateways.apns import ApnsOptions, ApnsSimulator
from pushcore.gateways.core import (
    Counters,
    Faults,
    SimRequest,
    Throttle,
    TransportFaults,
    dispatch,
    parse_faults,
)
from pushcore.gateways.fates import Fate
from pushcore.gateways.fcm import FcmSimulator
from pushcore.gateways.tls import ensure_certificates
from pushcore.gateways.webpush import WebPushOptions, WebPushSimulator
from tests.gateways.helpers import APNS_KEY, apns_headers, vapid_headers


def test_fates_round_trip() -> None:
    for i in range(50):
        assert fates.apns_fate(fates.apns_token(i)) is Fate.LIVE
        assert fates.apns_fate(fates.apns_token(i, Fate.DEAD)) is Fate.DEAD
        assert fates.apns_fate(fates.apns_token(i, Fate.INVALID)) is Fate.INVALID
        assert fates.fcm_fate(fates.fcm_token(i)) is Fate.LIVE
        assert fates.fcm_fate(fates.fcm_token(i, Fate.DEAD)) is Fate.DEAD
        assert fates.fcm_fate(fates.fcm_token(i, Fate.INVALID)) is Fate.INVALID
        assert fates.webpush_fate(fates.webpush_subscription_id(i)) is Fate.LIVE
        assert fates.webpush_fate(fates.webpush_subscription_id(i, Fate.DEAD)) is Fate.DEAD
    assert len(fates.apns_token(1)) == 64
    assert fates.apns_token(1, seed=1) != fates.apns_token(1)
    assert len(fates.fcm_token(1)) == 163
    with pytest.raises(ValueError, match="invalid"):
        fates.webpush_subscription_id(1, Fate.INVALID)


def test_webpush_keys_are_deterministic_points_with_their_private_key() -> None:
    sub = fates.webpush_subscription(7, seed=3, origin="https://127.0.0.1:9")
    assert sub == fates.webpush_subscription(7, seed=3, origin="https://127.0.0.1:9")
    sub_id = sub.endpoint.rsplit("/", 1)[1]
    p256dh, auth = fates.webpush_keys(sub_id)
    assert (len(p256dh), len(auth)) == (65, 16)
    point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    private = fates.webpush_private_key(sub_id)
    assert private.public_key().public_numbers() == point.public_numbers()


def _req(
    path: str, headers: dict[str, str], body: bytes = b"{}", authority: str = ""
) -> SimRequest:
    return SimRequest("POST", path, headers, body, "", authority)


def test_apns_verifies_signatures_when_keys_are_given() -> None:
    pem = APNS_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sim = ApnsSimulator(ApnsOptions(keys={"KEY1234567": pem.decode()}))
    path = f"/3/device/{fates.apns_token(1)}"
    assert sim.handle(_req(path, apns_headers())).status == 200
    other = ApnsSimulator(ApnsOptions(keys={"KEY1234567": _other_pem()}))
    answer = other.handle(_req(path, apns_headers()))
    assert (answer.status, json.loads(answer.body)) == (403, {"reason": "InvalidProviderToken"})
    assert other.handle(_req("/3/devices/x", apns_headers())).status == 404
    bad = other.handle(_req(path, apns_headers(**{"apns-priority": "7"})))
    assert bad.status == 403  # auth is checked before headers, as Apple does


def _other_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def test_webpush_verify_encryption_checks_the_ciphertext() -> None:
    sim = WebPushSimulator(WebPushOptions(verify_encryption=True))
    sub_id = fates.webpush_subscription_id(5)
    p256dh, auth = fates.webpush_keys(sub_id)
    sender = ec.generate_private_key(ec.SECP256R1())
    body = http_ece.encrypt(
        b"hello", private_key=sender, dh=p256dh, auth_secret=auth, salt=os.urandom(16)
    )
    headers = vapid_headers("https://push.test")
    assert sim.handle(_req(f"/push/{sub_id}", headers, body, "push.test")).status == 201
    tampered = body[:-1] + bytes([body[-1] ^ 1])
    assert sim.handle(_req(f"/push/{sub_id}", headers, tampered, "push.test")).status == 400


def test_stats_route_and_throttle_fraction_is_seeded() -> None:
    sim = FcmSimulator()
    throttle = Throttle(Faults(error_fraction=0.5, seed=4))
    hits = [Throttle(Faults(error_fraction=0.5, seed=4)).hit() for _ in range(1)]
    assert isinstance(hits[0], bool)
    results = [dispatch(sim, throttle, _req("/v1/projects/p/messages:send", {})).status
               for _ in range(40)]  # fmt: skip
    assert set(results) == {401, 429}
    again = Throttle(Faults(error_fraction=0.5, seed=4))
    assert [again.hit() for _ in range(40)] == [s == 429 for s in results]
    stats = dispatch(sim, throttle, SimRequest("GET", "/__stats", {}, b""))
    assert json.loads(stats.body)["requests"] == 40
    assert dispatch(sim, throttle, SimRequest("DELETE", "/__stats", {}, b"")).status == 204
    assert sim.counters.requests == 0


def test_counters_stop_tracking_tokens_at_their_bound() -> None:
    counters = Counters(max_tracked_tokens=2)
    for token in ("a", "b", "c", "a"):
        counters.record(200, "", token)
    assert (len(counters.tokens), counters.untracked, counters.accepted("a")) == (2, 1, 2)


def test_fcm_expired_access_token_is_refused() -> None:
    now = [time.time()]
    sim = FcmSimulator(clock=lambda: now[0])
    token = sim.mint_access_token("sa@x", ["https://www.googleapis.com/auth/firebase.messaging"])
    body = json.dumps({"message": {"token": fates.fcm_token(1)}}).encode()
    path = "/v1/projects/p/messages:send"
    assert sim.handle(_req(path, {"authorization": f"Bearer {token}"}, body)).status == 200
    now[0] += 3601
    assert sim.handle(_req(path, {"authorization": f"Bearer {token}"}, body)).status == 401


def test_tls_files_are_reused_and_cover_loopback(tmp_path: Path) -> None:
    first = ensure_certificates(tmp_path)
    ca = first.ca_file.read_bytes()
    assert ensure_certificates(tmp_path).ca_file.read_bytes() == ca
    leaf = x509.load_pem_x509_certificate(first.cert_file.read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    # A new host name forces a new certificate.
    assert ensure_certificates(tmp_path, ["push.test"]).ca_file.read_bytes() != ca
    out = subprocess.run(
        [sys.executable, "-m", "pushcore.gateways.tls", "--ca-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == str(first.ca_file)


def test_fcm_fid_target_has_the_token_fates() -> None:
    sim = FcmSimulator()
    token = sim.mint_access_token("sa@x", ["https://www.googleapis.com/auth/firebase.messaging"])
    auth = {"authorization": f"Bearer {token}"}
    path = "/v1/projects/p/messages:send"

    def send(message: dict[str, object]) -> int:
        body = json.dumps({"message": message}).encode()
        return sim.handle(_req(path, auth, body)).status

    assert send({"fid": fates.fcm_token(1)}) == 200
    assert send({"fid": fates.fcm_token(2, Fate.DEAD)}) == 404
    assert send({"fid": fates.fcm_token(3, Fate.INVALID)}) == 400
    assert send({"fid": fates.fcm_token(4), "token": fates.fcm_token(4)}) == 400
    assert sim.counters.accepted(fates.fcm_token(1)) == 1


def test_parse_faults_splits_and_guards_the_fault_set() -> None:
    faults, tf = parse_faults(b'{"latency": 0.5, "goaway_after": 3, "seed": 9}', h2_engine=True)
    assert (faults.latency, faults.seed) == (0.5, 9)
    assert tf == TransportFaults(goaway_after=3, seed=9)
    assert parse_faults(b"", h2_engine=False) == (Faults(), TransportFaults())
    for body, h2_engine in (
        (b'{"goaway_after": 1}', False),
        (b'{"refuse_connections": true}', False),
        (b'{"rst_fraction": 2}', True),
        (b'{"error_status": 418}', True),
        (b'{"bogus": 1}', True),
        (b"[1]", True),
        (b"not json", True),
    ):
        with pytest.raises((ValueError, TypeError)):
            parse_faults(body, h2_engine=h2_engine)
