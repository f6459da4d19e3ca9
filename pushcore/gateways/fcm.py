"""FCM simulator: the HTTP v1 send API and Google's OAuth2 token endpoint.

``POST /token`` (form ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` and
``assertion=<RS256 JWT>`` of a service account) answers an access token; ``POST
/v1/projects/<project>/messages:send`` with ``Authorization: Bearer <access token>`` answers
``{"name": "projects/<p>/messages/<id>"}``, or an error in Google's JSON format with an
``FcmError`` detail.  Token fates come from :mod:`pushcore.gateways.fates`.

Access tokens are stateless (HMAC of their claims with a key fixed in this module), so
every engine worker and every simulator instance accepts every other's tokens; they are
not secrets, just a way to tell "went through /token" from "made up".

A message targets exactly one of ``token``, ``fid`` (a Firebase installation id, which
firebase-admin 7.7 sends in place of the now deprecated ``token``), ``topic`` or
``condition``; a ``fid`` has the same fates as a token.

With ``FcmOptions.project`` set, the simulator plays that one Firebase project: every
token sent through another project's URL answers 403 ``SENDER_ID_MISMATCH`` (the token was
registered for another sender), as FCM does for an app configured with the wrong project.

Not simulated: per-project quotas, topic/condition syntax checks.

Pure: no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from cryptography.hazmat.primitives.serialization import load_pem_public_key

from pushcore.gateways import fates
from pushcore.gateways.auth import JwtChecker, JwtRejected, b64url_decode, number
from pushcore.gateways.core import Counters, Reject, SimRequest, SimResponse, json_response

TOKEN_PATH = "/token"  # noqa: S105 (a path)
TARGETS = ("token", "fid", "topic", "condition")
DEVICE_TARGETS = ("token", "fid")
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL)
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/firebase.messaging",
        "https://www.googleapis.com/auth/cloud-platform",
    }
)
PAYLOAD_LIMIT = 4096  # FCM's limit on data + notification
ACCESS_TOKEN_SECONDS = 3600
ACCESS_CACHE_SIZE = 1024
_TOKEN_KEY = b"pushcore-gateways-fcm-simulator"
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_AUTH_HELP = (
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


@dataclass(frozen=True, slots=True)
class FcmOptions:
    """``keys``: private_key_id -> PEM public key of service accounts; when given, the
    assertion's signature is verified.  ``static_tokens``: access tokens accepted without
    going through ``/token`` (handy for h2load and curl).  ``project``: the project the
    simulated tokens were registered for; sends through another project answer
    SENDER_ID_MISMATCH (None: every project is the right one)."""

    keys: dict[str, str] | None = None
    static_tokens: list[str] | None = None
    record_payloads: bool = False  # keep accepted request bodies per token (Counters.payloads)
    project: str | None = None


def google_error(
    status: int, code: str, message: str, error_code: str | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "message": message, "status": code}
    if error_code is not None:
        error["details"] = [{"@type": _FCM_ERROR, "errorCode": error_code}]
    return {"error": error}


@dataclass(slots=True)
class FcmSimulator:
    options: FcmOptions = field(default_factory=FcmOptions)
    clock: Callable[[], float] = time.time
    counters: Counters = field(default_factory=Counters)
    name: str = "fcm"
    _jwt: JwtChecker = field(init=False)
    _sent: int = 0
    # access token -> claims of tokens whose MAC passed (bounded; only exp is re-checked):
    # the HMAC and decoding cost as much as the rest of a send
    _access: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        keys = None
        if self.options.keys is not None:
            keys = {
                kid: load_pem_public_key(pem.encode()) for kid, pem in self.options.keys.items()
            }
        self._jwt = JwtChecker("RS256", keys)

    # --- access tokens ------------------------------------------------------------------
    def mint_access_token(self, subject: str, scopes: list[str]) -> str:
        exp = int(self.clock()) + ACCESS_TOKEN_SECONDS
        claims = {"sub": subject, "scope": " ".join(scopes), "exp": exp}
        raw = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
        mac = hmac.new(_TOKEN_KEY, raw, hashlib.sha256).digest()[:18]
        return "ya29.sim." + raw.decode() + "." + base64.urlsafe_b64encode(mac).decode()

    def _access_claims(self, token: str) -> dict[str, Any] | None:
        if self.options.static_tokens and token in self.options.static_tokens:
            return {"scope": " ".join(SCOPES), "exp": float("inf")}
        cached = self._access.get(token)
        if cached is not None:
            return cached if cached.get("exp", 0) > self.clock() else None
        parts = token.split(".")
        if len(parts) != 4 or parts[:2] != ["ya29", "sim"]:
            return None
        mac = hmac.new(_TOKEN_KEY, parts[2].encode(), hashlib.sha256).digest()[:18]
        try:
            if not hmac.compare_digest(mac, base64.urlsafe_b64decode(parts[3])):
                return None
            claims: dict[str, Any] = json.loads(b64url_decode(parts[2]))
        except ValueError:
            return None
        if len(self._access) >= ACCESS_CACHE_SIZE:
            self._access.clear()
        self._access[token] = claims
        return claims if claims.get("exp", 0) > self.clock() else None

    # --- routes -------------------------------------------------------------------------
    def handle(self, request: SimRequest) -> SimResponse:
        if request.path == TOKEN_PATH and request.method == "POST":
            try:
                return self._token(request)
            except Reject as exc:
                self.counters.record(400, exc.reason)
                body = {"error": exc.reason, "error_description": exc.message}
                return json_response(400, body)
        token: str | None = None
        try:
            project = _project_of(request)
            self._check_auth(request.headers.get("authorization") or "")
            message, validate_only = _parse_message(request.body)
            token = _check_token(message, self.options.project not in (None, project))
        except Reject as exc:
            return self._error(exc, token)
        if validate_only:
            self.counters.record(200, "validate_only")
            return json_response(200, {"name": f"projects/{project}/messages/fake_message_id"})
        self._sent += 1
        self.counters.record(200, "", token)
        if self.options.record_payloads and token:
            self.counters.keep(token, request.body)
        message_id = f"0:{int(self.clock() * 1_000_000)}%{self._sent:016x}"
        return json_response(200, {"name": f"projects/{project}/messages/{message_id}"})

    def _token(self, request: SimRequest) -> SimResponse:
        form = parse_qs(request.body.decode("utf-8", "replace"))
        grant_type = form.get("grant_type", [""])[0]
        if grant_type != JWT_BEARER:
            raise Reject(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        assertion = form.get("assertion", [""])[0]
        try:
            _, claims = self._jwt.parse(assertion)
            iat, exp = number(claims, "iat"), number(claims, "exp")
        except JwtRejected as exc:
            raise Reject(400, "invalid_grant", f"Invalid JWT: {exc}") from exc
        now = self.clock()
        if not (exp > now and iat <= now + 300 and 0 < exp - iat <= 3600):
            raise Reject(
                400,
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe. Check your iat and exp values in the JWT claim.",
            )
        if claims.get("aud") not in (GOOGLE_TOKEN_URI, f"https://{request.authority}/token"):
            raise Reject(400, "invalid_grant", "Invalid JWT: aud is not the token URI.")
        iss, scope = claims.get("iss"), claims.get("scope")
        if not isinstance(iss, str) or not iss:
            raise Reject(400, "invalid_grant", "Invalid JWT: No iss claim.")
        if not isinstance(scope, str) or not scope.strip():
            raise Reject(400, "invalid_scope", "Empty or missing scope not allowed.")
        self.counters.record(200, "token")
        body = {
            "access_token": self.mint_access_token(iss, scope.split()),
            "expires_in": ACCESS_TOKEN_SECONDS,
            "token_type": "Bearer",
        }
        return json_response(200, body, [("cache-control", "no-store")])

    def _check_auth(self, authorization: str) -> None:
        if not authorization:
            raise Reject(
                401,
                "UNAUTHENTICATED",
                "Request is missing required authentication credential. " + _AUTH_HELP,
            )
        scheme, _, token = authorization.partition(" ")
        claims = self._access_claims(token.strip()) if scheme.lower() == "bearer" else None
        if claims is None:
            raise Reject(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. " + _AUTH_HELP,
            )
        if not SCOPES.intersection(str(claims.get("scope", "")).split()):
            raise Reject(
                403, "PERMISSION_DENIED", "Request had insufficient authentication scopes."
            )

    def throttled(self, request: SimRequest, status: int, retry_after: int) -> SimResponse:
        code, error_code, text = {
            429: ("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded."),
            500: ("INTERNAL", "INTERNAL", "Internal error encountered."),
            503: ("UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
        }[status]
        self.counters.record(status, error_code, _token_of(request))
        return json_response(
            status,
            google_error(status, code, text, error_code),
            [("retry-after", str(retry_after))],
        )

    def _error(self, exc: Reject, token: str | None) -> SimResponse:
        self.counters.record(exc.status, exc.detail or exc.reason, token)
        headers = None
        if exc.status == 401:
            headers = [("www-authenticate", 'Bearer realm="https://accounts.google.com/"')]
        body = google_error(exc.status, exc.reason, exc.message, exc.detail or None)
        return json_response(exc.status, body, headers)


def _parse_message(body: bytes) -> tuple[dict[str, Any], bool]:
    """(message, validate_only) of a send request's JSON body."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Reject(400, "INVALID_ARGUMENT", "Invalid JSON payload received.") from None
    message = payload.get("message") if isinstance(payload, dict) else None
    if not isinstance(message, dict):
        raise Reject(400, "INVALID_ARGUMENT", "Invalid JSON payload received. No 'message'.")
    if sum(k in message for k in TARGETS) != 1:
        raise Reject(
            400,
            "INVALID_ARGUMENT",
            "Exactly one of message.token, fid, topic or condition is needed.",
        )
    data = message.get("data", {})
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise Reject(
            400, "INVALID_ARGUMENT", "Invalid value at 'message.data': values must be strings."
        )
    # data + notification, compact, in UTF-8 bytes: never longer than the body they came
    # from, so they need measuring only when the body itself is over the limit
    if len(body) > PAYLOAD_LIMIT and _payload_size(data, message) > PAYLOAD_LIMIT:
        raise Reject(400, "INVALID_ARGUMENT", "Android message is too big", "INVALID_ARGUMENT")
    return message, payload.get("validate_only") is True


def _payload_size(data: dict[str, Any], message: dict[str, Any]) -> int:
    compact = json.dumps(
        [data, message.get("notification")], separators=(",", ":"), ensure_ascii=False
    )
    return len(compact.encode("utf-8", "surrogatepass"))


def _check_token(message: dict[str, Any], wrong_project: bool = False) -> str | None:
    field = next((k for k in DEVICE_TARGETS if k in message), None)
    if field is None:
        return None  # a topic or condition send
    token = message[field]
    invalid = "The registration token is not a valid FCM registration token"
    if not isinstance(token, str) or not token:
        raise Reject(400, "INVALID_ARGUMENT", invalid, "INVALID_ARGUMENT")
    if wrong_project:
        # the token belongs to another sender: FCM says so before anything else about it
        raise Reject(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH")
    fate = fates.fcm_fate(token)
    if fate is fates.Fate.DEAD:
        raise Reject(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
    if fate is fates.Fate.INVALID:
        raise Reject(400, "INVALID_ARGUMENT", invalid, "INVALID_ARGUMENT")
    return token


def _project_of(request: SimRequest) -> str:
    path = request.path
    if not (path.startswith("/v1/projects/") and path.endswith("/messages:send")):
        raise Reject(404, "NOT_FOUND", "Not found.")
    project = path[len("/v1/projects/") : -len("/messages:send")]
    if not project or "/" in project:
        raise Reject(404, "NOT_FOUND", "Not found.")
    if request.method != "POST":
        raise Reject(405, "INVALID_ARGUMENT", "Use POST.")
    return project


def _token_of(request: SimRequest) -> str | None:
    # Only for counting throttled requests per token; a malformed body counts without one.
    try:
        message = json.loads(request.body)["message"]
        token = next(message[k] for k in DEVICE_TARGETS if k in message)
    except (ValueError, KeyError, TypeError, StopIteration):
        return None
    return token if isinstance(token, str) else None
