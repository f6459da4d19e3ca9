"""The send request as the API accepts it, and the notification it resolves to.  Pure.

:data:`SendRequest` is :class:`SendRequestBase` plus one top-level override block per
provider of the platform registry (``apns``, ``fcm``, ``webpush``), which wins over the
same block inside ``notification``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from pushcore.fanout.targets import Target
from pushcore.providers import registry
from pushcore.providers.notification import CollapseKey, Content, Ttl
from pushcore.providers.registry import Platform

# fields of the request that override the same field of ``notification`` when given
_OVERRIDING = ("ttl_seconds", "priority", "collapse_key", *registry.KEYS)


class InboxOptions(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``inbox`` as an object: the message's topic (the app filters by it) and when it
    leaves the inboxes."""

    topic: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
        | None
    ) = None
    expires_at: Annotated[dt.datetime, msgspec.Meta(tz=True)] | None = None


class SendRequestBase(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """``POST /v1/apps/{app_code}/messages``.  The top-level provider blocks,
    ``ttl_seconds``, ``priority`` and ``collapse_key`` override the same fields of
    ``notification``.  ``inbox`` (true, or an object with ``topic`` and ``expires_at``)
    also stores the message in the inbox of every user the target reaches; ``push: false``
    sends nothing to devices (it then needs ``inbox``)."""

    target: Target
    notification: Content
    platforms: (
        Annotated[list[Platform], msgspec.Meta(min_length=1, max_length=len(registry.NAMES))] | None
    ) = None
    primary_only: bool = False
    ttl_seconds: Ttl | None = None
    priority: Literal["high", "normal"] | None = None
    collapse_key: CollapseKey | None = None
    send_at: (
        Annotated[
            dt.datetime,
            msgspec.Meta(
                tz=True,
                description="when to send, with an offset; from 2000-01-01T00:00:00Z to 365 "
                "days after the server's clock (a time already past sends at once; the TTL "
                "counts from it)",
            ),
        ]
        | None
    ) = None
    idempotency_key: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    # also store the message in the inbox of every user the target reaches
    inbox: bool | InboxOptions = False
    # false: inbox only, nothing is sent to devices
    push: bool = True

    def inbox_options(self) -> InboxOptions | None:
        """The inbox part of the send, None when it is not stored in inboxes."""
        if isinstance(self.inbox, InboxOptions):
            return self.inbox
        return InboxOptions() if self.inbox else None

    def effective_notification(self) -> Content:
        n = self.notification
        changes: dict[str, Any] = {
            name: getattr(self, name) for name in _OVERRIDING if getattr(self, name) is not None
        }
        return msgspec.structs.replace(n, **changes) if changes else n

    def ttl(self) -> int | None:
        return self.effective_notification().ttl_seconds


def _send_request_type() -> type[SendRequestBase]:
    made = msgspec.defstruct(
        "SendRequest",
        [
            ("notification", registry.Notification),
            *registry.per_provider_fields(lambda s: (s.overrides | None, None)),
        ],
        bases=(SendRequestBase,),
        module=__name__,
        frozen=True,
        forbid_unknown_fields=True,
        kw_only=True,
    )
    made.__doc__ = SendRequestBase.__doc__
    return made  # type: ignore[return-value]  # defstruct types its result as Struct


SendRequest: type[SendRequestBase] = _send_request_type()
