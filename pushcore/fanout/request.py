"""The send request as the API accepts it, and the notification it resolves to.  Pure.

:data:`SendRequest` is :class:`SendRequestBase` plus one top-level override block per
provider of the platform registry (``apns``, ``fcm``, ``webpush``), which wins over the
same block inside ``notification``.

Per-recipient content (``pushcore.templates``): template strings in the notification, a
``badge`` given as a string (a template that renders a number), and ``localizations``;
:meth:`SendRequestBase.templated` says whether a send has any.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from pushcore.fanout.targets import Target
from pushcore.fanout.throttle import PerMinute
from pushcore.providers import registry
from pushcore.providers.notification import CollapseKey, Content, Short, Text, Ttl, Url
from pushcore.providers.registry import Platform
from pushcore.templates import content as templates

# a badge given as a string is a template that must render a whole number (``{{ ... }}``)
Badge = Annotated[int, msgspec.Meta(ge=0)] | Annotated[str, msgspec.Meta(max_length=1024)]
# BCP 47 in form; whether the subtags are registered ones is checked at submit
LanguageTag = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Za-z]{1,8}([-_][A-Za-z0-9]{1,8})*$", max_length=35)
]
MAX_LOCALIZATIONS = 100


class Localization(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A partial notification for installations of one language: the fields it gives
    replace the default's, ``data`` keys are added to the default's."""

    title: Text | None = None
    body: Text | None = None
    url: Url | None = None
    image: Url | None = None
    badge: Badge | None = None
    sound: Short | None = None
    data: dict[str, str] = {}


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
    send_at_local: (
        Annotated[
            dt.datetime,
            msgspec.Meta(
                tz=False,
                description="a wall-clock time without an offset: each installation gets the "
                "message at this time in its registered time zone (device.time_zone), or in "
                "default_time_zone; not with send_at. Recipients whose time had already passed "
                "when the send was accepted are skipped (failed, local_time_passed)",
                examples=["2026-12-24T09:00:00"],
            ),
        ]
        | None
    ) = None
    default_time_zone: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                max_length=64,
                description="IANA time zone for installations that registered none; required "
                "with send_at_local (and only with it)",
                examples=["Europe/Lisbon"],
            ),
        ]
        | None
    ) = None
    idempotency_key: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    # also store the message in the inbox of every user the target reaches
    inbox: bool | InboxOptions = False
    # false: inbox only, nothing is sent to devices
    push: bool = True
    localizations: (
        Annotated[dict[LanguageTag, Localization], msgspec.Meta(max_length=MAX_LOCALIZATIONS)]
        | None
    ) = None
    # spread the push evenly at this rate, counted across every worker (a list target
    # with a rate goes through the planner, not the transactional lane)
    rate_per_minute: PerMinute | None = None

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

    def templated(self) -> bool:
        """Whether the content differs per recipient (templates, a string badge or
        localizations): such a message is rendered per recipient, not once per batch."""
        if self.localizations or isinstance(self.notification.badge, str):
            return True
        blocks = {key: getattr(self, key) for key in registry.KEYS if getattr(self, key)}
        return templates.templated(
            msgspec.to_builtins(self.notification), msgspec.to_builtins(blocks), None
        )


def _notification_type() -> type[Content]:
    """The notification a send request takes: the providers' plus a ``badge`` that may be
    a template string (rendered to a number before any provider sees it)."""
    made = msgspec.defstruct(
        "Notification",
        [("badge", Badge | None, None)],
        bases=(registry.Notification,),
        module=__name__,
        frozen=True,
        forbid_unknown_fields=True,
        kw_only=True,
    )
    made.__doc__ = registry.Notification.__doc__
    return made  # type: ignore[return-value]  # defstruct types its result as Struct


SendNotification: type[Content] = _notification_type()


def _send_request_type() -> type[SendRequestBase]:
    made = msgspec.defstruct(
        "SendRequest",
        [
            ("notification", SendNotification),
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
