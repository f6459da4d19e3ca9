"""Standard Webhooks signatures (https://www.standardwebhooks.com), made with the
``standardwebhooks`` package so that receivers verify with any off-the-shelf library:
``webhook-id`` (stable per event and endpoint: retries repeat it, receivers deduplicate on
it), ``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`` keyed with the endpoint's
secret).  Pure."""

from __future__ import annotations

import base64
import datetime as dt
import secrets

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix, not a secret)
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def event_id(outbox_id: int) -> str:
    return f"msg_{outbox_id}"


def headers(secret: str, msg_id: str, body: bytes, now: dt.datetime) -> dict[str, str]:
    signature = Webhook(secret).sign(msg_id, now, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
