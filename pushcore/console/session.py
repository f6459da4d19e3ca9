"""The console's session: a signed cookie (itsdangerous) with an expiry, and CSRF tokens.

The cookie holds who signed in (the admin, or a server key by its public ``key_id``, never
the key), a mark of the admin token (so that changing the token ends every admin session)
and the session's CSRF token; it is signed with PUSHCORE_CONSOLE_SECRET and refused once
older than PUSHCORE_CONSOLE_SESSION_HOURS (the signature carries its time).  It is
``HttpOnly``, ``SameSite=Strict`` and ``Secure`` when the request came over https.  Signed,
not encrypted: what it carries is public ids and random tokens, nothing secret.

A session without a sign-in still carries a CSRF token, so that the sign-in form is
protected as well (login CSRF).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from typing import Any, Literal

import itsdangerous
from aiohttp import web

COOKIE = "pushcore_console"
_SALT = "pushcore.console.session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

Kind = Literal["anonymous", "admin", "server"]


@dataclass(frozen=True, slots=True)
class Session:
    csrf: str
    kind: Kind = "anonymous"
    key_id: str | None = None  # the server key's public id (kind "server")
    admin_mark: str | None = None  # kind "admin": the mark of the admin token signed in with

    @classmethod
    def fresh(cls) -> Session:
        return cls(csrf=secrets.token_urlsafe(32))

    def signed_in(
        self, kind: Kind, *, key_id: str | None = None, mark: str | None = None
    ) -> Session:
        # a new CSRF token at sign-in: one seen before it is worth nothing after
        return replace(Session.fresh(), kind=kind, key_id=key_id, admin_mark=mark)


class Sessions:
    def __init__(self, secret: str, max_age_seconds: float) -> None:
        self._secret = secret.encode()
        self._serializer = itsdangerous.URLSafeTimedSerializer(secret, salt=_SALT)
        self.max_age = int(max_age_seconds)

    def admin_mark(self, admin_token: str) -> str:
        """What the cookie keeps of the admin token: a keyed digest, so the token is never
        in the cookie and a new token invalidates the old sessions."""
        return hmac.new(self._secret, admin_token.encode(), hashlib.sha256).hexdigest()[:32]

    def load(self, request: web.Request) -> Session | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data: Any = self._serializer.loads(raw, max_age=self.max_age)
        except itsdangerous.BadData:  # tampered, signed with another secret, or expired
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        kind = data.get("k", "anonymous")
        if kind not in ("anonymous", "admin", "server"):
            return None
        return Session(csrf=data["c"], kind=kind, key_id=data.get("i"), admin_mark=data.get("m"))

    def save(self, request: web.Request, response: web.StreamResponse, session: Session) -> None:
        data = {"c": session.csrf, "k": session.kind}
        if session.key_id is not None:
            data["i"] = session.key_id
        if session.admin_mark is not None:
            data["m"] = session.admin_mark
        response.set_cookie(
            COOKIE,
            self._serializer.dumps(data),
            max_age=self.max_age,
            path="/console/",
            httponly=True,
            samesite="Strict",
            secure=is_https(request),
        )

    @staticmethod
    def clear(response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE, path="/console/")


def is_https(request: web.Request) -> bool:
    # behind a TLS-terminating proxy the request arrives over http; the proxy says so
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


def csrf_ok(session: Session, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(session.csrf.encode(), presented.encode())
