"""APNs simulator: Apple's HTTP/2 provider API with token (JWT) authentication.

``POST /3/device/<hex token>`` with ``apns-topic``, ``apns-push-type`` and
``authorization: bearer <ES256 JWT>``; 200 with an ``apns-id`` header (the request's, or a
new UUID), errors as ``{"reason": "..."}`` with Apple's statuses, 410 adding ``timestamp``
(milliseconds since the epoch).  Device fates come from :mod:`pushcore.gateways.fates`.

Misconfigurations, as Apple answers them: with ``ApnsOptions.device_topic`` set, every
device belongs to that app, so any other (allowed) topic answers 400
``DeviceTokenNotForTopic`` per token; a JWT signed by a key listed in
``ApnsOptions.sandbox_keys`` (a key restricted to the other environment) answers 403
``BadEnvironmentKeyInToken``.

Not simulated: certificate authentication (no client certificates are asked for),
``TooManyProviderTokenUpdates``, per-topic key restrictions, ``DuplicateHeaders``.

Pure: no I/O.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_public_key

from pushcore.gateways import fates
from pushcore.gateways.auth import JwtChecker, JwtRejected, number
from pushcore.gateways.core import Counters, Reject, SimRequest, SimResponse, json_response

PREFIX = "/3/device/"
PAYLOAD_LIMIT = 4096
VOIP_PAYLOAD_LIMIT = 5120
TOKEN_MAX_AGE = 3600  # Apple refuses provider tokens older than one hour
PUSH_TYPES = frozenset(
    [
        "alert",
        "background",
        "location",
        "voip",
        "complication",
        "fileprovider",
        "mdm",
        "liveactivity",
        "pushtotalk",
        "widgets",
        "controls",
    ]
)
_HEX_TOKEN = re.compile(r"[0-9a-fA-F]{64,200}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True, slots=True)
class ApnsOptions:
    """``keys``: key id -> PEM public key; when given, JWT signatures are verified and
    unknown key ids refused.  ``topics``: when given, other topics get 400 TopicDisallowed.
    ``device_topic``: the app every simulated device token belongs to; another topic gets
    400 DeviceTokenNotForTopic.  ``sandbox_keys``: key ids restricted to the other
    environment (403 BadEnvironmentKeyInToken).  (JSON-able, so the granian engine can
    receive it through the environment.)"""

    keys: dict[str, str] | None = None
    topics: list[str] | None = None
    record_payloads: bool = False  # keep accepted bodies per token (Counters.payloads)
    device_topic: str | None = None
    sandbox_keys: list[str] | None = None


@dataclass(slots=True)
class ApnsSimulator:
    options: ApnsOptions = field(default_factory=ApnsOptions)
    clock: Callable[[], float] = time.time
    counters: Counters = field(default_factory=Counters)
    name: str = "apns"
    _jwt: JwtChecker = field(init=False)

    def __post_init__(self) -> None:
        keys: Mapping[str, Any] | None = None
        if self.options.keys is not None:
            keys = {
                kid: load_pem_public_key(pem.encode()) for kid, pem in self.options.keys.items()
            }
        self._jwt = JwtChecker("ES256", keys)

    def handle(self, request: SimRequest) -> SimResponse:
        headers = request.headers
        apns_id = headers.get("apns-id") or str(uuid.uuid4())
        token = request.path[len(PREFIX) :] if request.path.startswith(PREFIX) else None
        try:
            self._check_request(request, token)
            self._check_auth(headers.get("authorization"))
            _check_headers(headers, self.options.topics)
            _check_payload(headers, request.body)
            fate = _check_token(token or "")
            _check_device_topic(headers.get("apns-topic"), self.options.device_topic)
        except Reject as exc:
            return self._error(exc.status, exc.reason, apns_id, token or None)
        if fate is fates.Fate.DEAD:
            self.counters.record(410, "Unregistered", token)
            body = {"reason": "Unregistered", "timestamp": int(self.clock() * 1000)}
            return json_response(410, body, [("apns-id", apns_id)])
        self.counters.record(200, "", token)
        if self.options.record_payloads and token:
            self.counters.keep(token, request.body)
        return SimResponse(200, [("apns-id", apns_id)])

    def throttled(self, request: SimRequest, status: int, retry_after: int) -> SimResponse:
        reason = "TooManyRequests" if status == 429 else "ServiceUnavailable"
        if status == 500:
            reason = "InternalServerError"
        apns_id = request.headers.get("apns-id") or str(uuid.uuid4())
        token = request.path[len(PREFIX) :] if request.path.startswith(PREFIX) else None
        self.counters.record(status, reason, token or None)
        return json_response(
            status, {"reason": reason}, [("apns-id", apns_id), ("retry-after", str(retry_after))]
        )

    def _error(self, status: int, reason: str, apns_id: str, token: str | None) -> SimResponse:
        self.counters.record(status, reason, token)
        return json_response(status, {"reason": reason}, [("apns-id", apns_id)])

    @staticmethod
    def _check_request(request: SimRequest, token: str | None) -> None:
        if token is None:
            raise Reject(404, "BadPath")
        if request.method != "POST":
            raise Reject(405, "MethodNotAllowed")
        if not token:
            raise Reject(400, "MissingDeviceToken")

    def _check_auth(self, authorization: str | None) -> None:
        if not authorization:
            raise Reject(403, "MissingProviderToken")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Reject(403, "InvalidProviderToken")
        try:
            header, claims = self._jwt.parse(token.strip())
            iat = number(claims, "iat")
        except JwtRejected as exc:
            raise Reject(403, "InvalidProviderToken") from exc
        if not isinstance(header.get("kid"), str) or not isinstance(claims.get("iss"), str):
            raise Reject(403, "InvalidProviderToken")
        if self.options.sandbox_keys and header["kid"] in self.options.sandbox_keys:
            raise Reject(403, "BadEnvironmentKeyInToken")
        if self.clock() - iat > TOKEN_MAX_AGE:
            raise Reject(403, "ExpiredProviderToken")


def _check_device_topic(topic: str | None, device_topic: str | None) -> None:
    if device_topic is not None and _app_topic(topic) != device_topic:
        raise Reject(400, "DeviceTokenNotForTopic")


def _app_topic(topic: str | None) -> str | None:
    """The bundle id of a topic (``com.example.app.voip`` and the other push types' suffixes
    belong to ``com.example.app``)."""
    if topic is None:
        return None
    for suffix in _TOPIC_SUFFIXES:
        if topic.endswith(suffix):
            return topic[: -len(suffix)]
    return topic


# the suffixes of pushcore.providers.apns.TOPIC_SUFFIXES, longest first
_TOPIC_SUFFIXES = (
    ".push-type.liveactivity",
    ".pushkit.fileprovider",
    ".location-query",
    ".complication",
    ".voip-ptt",
    ".voip",
)


def _check_token(token: str) -> fates.Fate:
    if _HEX_TOKEN.fullmatch(token) is None or len(token) % 2:
        raise Reject(400, "BadDeviceToken")
    fate = fates.apns_fate(token)
    if fate is fates.Fate.INVALID:
        raise Reject(400, "BadDeviceToken")
    return fate


def _check_headers(headers: Any, topics: list[str] | None) -> None:
    topic = headers.get("apns-topic")
    if not topic:
        raise Reject(400, "MissingTopic")
    if topics is not None and topic not in topics:
        raise Reject(400, "TopicDisallowed")
    push_type = headers.get("apns-push-type")
    if push_type is not None and push_type not in PUSH_TYPES:
        raise Reject(400, "InvalidPushType")
    apns_id = headers.get("apns-id")
    if apns_id is not None and _UUID.fullmatch(apns_id) is None:
        raise Reject(400, "BadMessageId")
    priority = headers.get("apns-priority")
    if priority is not None and priority not in ("1", "5", "10"):
        raise Reject(400, "BadPriority")
    expiration = headers.get("apns-expiration")
    if expiration is not None and not expiration.isdigit():
        raise Reject(400, "BadExpirationDate")
    collapse_id = headers.get("apns-collapse-id")
    if collapse_id is not None and len(collapse_id.encode()) > 64:
        raise Reject(400, "BadCollapseId")


def _check_payload(headers: Any, body: bytes) -> None:
    if not body:
        raise Reject(400, "PayloadEmpty")
    voip = headers.get("apns-push-type") == "voip"
    if len(body) > (VOIP_PAYLOAD_LIMIT if voip else PAYLOAD_LIMIT):
        raise Reject(413, "PayloadTooLarge")
