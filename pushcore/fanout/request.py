"""The send request as the API accepts it, and the notification it resolves to.  Pure."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from pushcore.fanout.targets import Target
from pushcore.providers.notification import (
    ApnsOverrides,
    CollapseKey,
    FcmOverrides,
    Notification,
    Ttl,
    WebPushOverrides,
)

Platform = Literal["ios", "android", "web"]
PLATFORMS: tuple[Platform, ...] = ("ios", "android", "web")


class SendRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``POST /v1/apps/{app_code}/messages``.  The top-level ``apns``/``fcm``/``webpush``,
    ``ttl_seconds``, ``priority`` and ``collapse_key`` override the same fields of
    ``notification``."""

    target: Target
    notification: Notification
    apns: ApnsOverrides | None = None
    fcm: FcmOverrides | None = None
    webpush: WebPushOverrides | None = None
    platforms: Annotated[list[Platform], msgspec.Meta(min_length=1, max_length=3)] | None = None
    primary_only: bool = False
    ttl_seconds: Ttl | None = None
    priority: Literal["high", "normal"] | None = None
    collapse_key: CollapseKey | None = None
    send_at: Annotated[dt.datetime, msgspec.Meta(tz=True)] | None = None
    idempotency_key: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None

    def effective_notification(self) -> Notification:
        n = self.notification
        changes = {
            name: getattr(self, name)
            for name in ("apns", "fcm", "webpush", "ttl_seconds", "priority", "collapse_key")
            if getattr(self, name) is not None
        }
        return msgspec.structs.replace(n, **changes) if changes else n

    def ttl(self) -> int | None:
        return self.effective_notification().ttl_seconds
