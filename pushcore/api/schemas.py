"""Request and response bodies of the API, as msgspec structs.

Request structs refuse unknown fields (a typo is an error, not silently ignored) and carry
the size limits that keep one request bounded: at most 100 tags of 128 characters, 100
device properties or user attributes, 100 events per report.  Formats that depend on other
fields (a push token's shape depends on the platform) are checked in ``validation.py``.
The same structs generate the OpenAPI schemas.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from pushcore.fanout.request import SendRequest
from pushcore.fanout.targets import TargetKind
from pushcore.fanout.throttle import PerMinute
from pushcore.fields import Email, ExternalId, Msisdn, Tag
from pushcore.providers import registry
from pushcore.providers.registry import Platform

Name = Annotated[str, Meta(min_length=1, max_length=200)]
Tags = Annotated[list[Tag], Meta(max_length=100)]
Key = Annotated[str, Meta(min_length=1, max_length=64)]
Scalar = Annotated[str, Meta(max_length=1024)] | int | float | bool | None
Properties = Annotated[dict[Key, Scalar], Meta(max_length=100)]
EventTime = Annotated[
    dt.datetime,
    Meta(
        tz=True,
        description="when it happened, with an offset; from 2000-01-01T00:00:00Z to one day "
        "after the server's clock (the time of the report when absent)",
    ),
]


class Request(Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body."""


# --- apps (admin) ---------------------------------------------------------------------------


class AppCreateBase(Request):
    name: Name
    identity_verification: bool = False


class Quota(Request):
    """A cap on an app's sends to one provider, shared by all of the app's messages and
    held across every worker (see the README's "Rate limits and quotas")."""

    per_minute: PerMinute


Quotas: type[Struct] = msgspec.defstruct(
    "Quotas",
    registry.per_provider_fields(lambda s: (Quota | UnsetType | None, UNSET)),
    bases=(Request,),
    module=__name__,
    kw_only=True,
)
Quotas.__doc__ = (
    "Per-provider quotas (keyed like the credentials): a provider left out keeps its "
    "quota, ``null`` removes it (unlimited)."
)


class AppPatchBase(Request):
    """Absent fields stay as they are; ``null`` removes a provider's credentials;
    ``quotas: null`` removes every quota."""

    name: Name | UnsetType = UNSET
    identity_verification: bool | UnsetType = UNSET
    quotas: Quotas | UnsetType | None = UNSET  # type: ignore[valid-type]  # built at import


class AppOutBase(Struct, kw_only=True):
    app_code: str
    name: str
    identity_verification: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    # the quotas set, by provider key (``{"fcm": {"per_minute": 600000}}``); unset: unlimited
    quotas: dict[str, Quota] = {}


def _with_providers(
    name: str, base: type[Struct], make: Any, doc: str | None = None, **options: Any
) -> Any:
    """``base`` plus one field per provider of the platform registry (its key: ``apns``,
    ``fcm``, ``webpush``); ``make(spec)`` gives the field's (type, default)."""
    made = msgspec.defstruct(
        name,
        registry.per_provider_fields(make),
        bases=(base,),
        module=__name__,
        kw_only=True,
        **options,
    )
    made.__doc__ = doc or base.__doc__
    return made


# The provider fields are read by key (``getattr(body, spec.key)``): see routes/apps.py.
AppCreate: type[AppCreateBase] = _with_providers(
    "AppCreate", AppCreateBase, lambda s: (s.credentials | None, None), forbid_unknown_fields=True
)
AppPatch: type[AppPatchBase] = _with_providers(
    "AppPatch",
    AppPatchBase,
    lambda s: (s.credentials | UnsetType | None, UNSET),
    forbid_unknown_fields=True,
)
# what may be shown of the credentials: ids, topic, fingerprints; never keys
AppOut: type[AppOutBase] = _with_providers(
    "AppOut", AppOutBase, lambda s: (dict[str, Any] | None, None)
)


AppCreated: type[AppOutBase] = msgspec.defstruct(  # type: ignore[assignment]
    "AppCreated",
    [
        ("key_id", str),
        ("server_key", str),  # shown once
        ("identity_secret", str),  # shown once; HMAC key of identity tokens
    ],
    bases=(AppOut,),
    module=__name__,
    kw_only=True,
)
AppList: type[Struct] = msgspec.defstruct(
    "AppList",
    [("apps", list[AppOut])],  # type: ignore[valid-type]  # a type built at import
    module=__name__,
    kw_only=True,
)


class KeyCreated(Struct, kw_only=True):
    key_id: str
    server_key: str  # shown once
    created_at: dt.datetime


class KeyOut(Struct, kw_only=True):
    key_id: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class KeyList(Struct, kw_only=True):
    keys: list[KeyOut]


# --- installations (device) -----------------------------------------------------------------


class SubscriptionKeys(Request):
    p256dh: Annotated[str, Meta(max_length=128)]
    auth: Annotated[str, Meta(max_length=64)]


class WebSubscription(Request):
    """The browser's ``PushSubscription.toJSON()``."""

    endpoint: Annotated[str, Meta(min_length=1, max_length=2048)]
    keys: SubscriptionKeys
    expirationTime: int | None = None


class InstallationCreate(Request):
    platform: Platform
    push_token: Annotated[str, Meta(max_length=4096)] | None = None
    web_subscription: WebSubscription | None = None
    device: Properties | None = None
    push_enabled: bool | None = None
    tags: Tags | None = None


class InstallationPatch(Request):
    push_token: Annotated[str, Meta(max_length=4096)] | UnsetType = UNSET
    web_subscription: WebSubscription | UnsetType = UNSET
    device: Properties | UnsetType = UNSET  # merged into the stored properties
    push_enabled: bool | UnsetType = UNSET
    tags: Tags | UnsetType = UNSET  # replaces the tags


class InstallationOut(Struct, kw_only=True):
    installation_id: uuid.UUID
    platform: Platform
    token_tail: str  # the last 8 characters; tokens are never shown in full
    push_enabled: bool
    tags: list[str]
    device: dict[str, Any]
    external_user_id: str | None
    primary: bool
    token_updated_at: dt.datetime
    created_at: dt.datetime
    updated_at: dt.datetime


class InstallationCreated(InstallationOut, kw_only=True):
    installation_secret: str  # shown once; the device's bearer token from now on


# --- users ----------------------------------------------------------------------------------


class Personalize(Request):
    external_user_id: ExternalId
    email: Email | None = None
    msisdn: Msisdn | None = None
    attributes: Properties | None = None
    force_depersonalize: bool = False
    identity_token: Annotated[str, Meta(max_length=128)] | None = None


class Primary(Request):
    primary: bool


class UserPatch(Request):
    """Absent fields stay; ``null`` clears email or msisdn; attributes are merged (a key set
    to ``null`` is removed); tags are replaced."""

    email: Email | UnsetType | None = UNSET
    msisdn: Msisdn | UnsetType | None = UNSET
    attributes: Properties | UnsetType = UNSET
    tags: Tags | UnsetType = UNSET


class UserOut(Struct, kw_only=True):
    external_user_id: str
    email: str | None
    msisdn: str | None
    attributes: dict[str, Any]
    tags: list[str]
    primary_installation_id: uuid.UUID | None
    installations: list[InstallationOut]
    created_at: dt.datetime
    updated_at: dt.datetime


class UserList(Struct, kw_only=True):
    users: list[UserOut]


# --- events ---------------------------------------------------------------------------------


class Event(Request):
    """``push.delivered``, ``push.opened``, ``push.dismissed``, ``session.start`` or any
    custom name."""

    name: Annotated[str, Meta(min_length=1, max_length=128)]
    at: EventTime | None = None
    message_id: uuid.UUID | None = None
    attributes: Properties | None = None


Events = Annotated[list[Event], Meta(min_length=1, max_length=100)]


class EventsAccepted(Struct, kw_only=True):
    accepted: int


# --- inbox (device and server) -------------------------------------------------------------

MAX_INBOX_PAGE = 100


class InboxMessage(Struct, kw_only=True):
    message_id: uuid.UUID
    sent_at: dt.datetime
    topic: str | None
    notification: dict[str, Any]  # as sent
    seen_at: dt.datetime | None  # the user's: the same on every device


class InboxPage(Struct, kw_only=True):
    """Newest first; ``*_filtered`` count what the topic and date filters leave;
    ``next_cursor`` (null on the last page) continues after this page, stable while new
    messages arrive."""

    messages: list[InboxMessage]
    count_total: int
    count_unread: int
    count_total_filtered: int
    count_unread_filtered: int
    next_cursor: str | None


class InboxSeen(Request):
    message_ids: Annotated[list[uuid.UUID], Meta(min_length=1, max_length=MAX_INBOX_PAGE)]


class InboxSeenResult(Struct, kw_only=True):
    """``ignored``: ids that are not in this user's inbox."""

    count_unread: int
    ignored: int


# --- messages (server) ----------------------------------------------------------------------
# The send body is :data:`pushcore.fanout.request.SendRequest` (the fan-out owns what a send
# means; the API decodes it with the same struct).


class Counts(Struct, kw_only=True):
    """Recipients by outcome.  ``pending`` = targeted less the answered ones; ``waiting``
    (part of pending) are those of a local-time send whose time has not come."""

    targeted: int
    delivered: int
    invalid_removed: int
    invalid: int  # raw tokens answered dead (in no registry: nothing removed)
    failed: int
    retrying: int
    pending: int
    # of pending: recipients of a local-time send (send_at_local) whose time has not come
    waiting: int
    opened: int
    inboxed: int  # users the message was stored for (inbox)
    seen: int  # users who marked it seen in their inbox


class MessageOut(Struct, kw_only=True):
    message_id: uuid.UUID
    status: str
    counts: Counts
    failure_reasons: dict[str, int]
    errors: list[str]
    platforms: list[str]
    created_at: dt.datetime
    send_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class MessageList(Struct, kw_only=True):
    messages: list[MessageOut]


class PreviewIn(Request):
    """``POST …/messages/preview``: a send body (its target is not used) and exactly one
    recipient: a user (each of their installations) or one installation."""

    message: SendRequest  # type: ignore[valid-type]  # a type built at import
    external_user_id: ExternalId | None = None
    installation_id: uuid.UUID | None = None


class PreviewPayload(Struct, kw_only=True, omit_defaults=True):
    """What one installation would get: ``payload`` is the provider's JSON (APNs body, the
    FCM ``message`` without its token, the Web Push plaintext), or ``failed`` says why it
    would not be sent (``template_error``, ``payload_too_large``)."""

    installation_id: uuid.UUID
    platform: Platform
    language: str | None = None
    payload: Any = None
    failed: str | None = None


class PreviewOut(Struct, kw_only=True):
    payloads: list[PreviewPayload]


MAX_SEND_BATCH = 1000


class SendBatchIn(Request):
    """What ``POST …/messages:batch`` decodes: the items stay raw, each is decoded and
    answered on its own."""

    messages: Annotated[list[msgspec.Raw], Meta(min_length=1, max_length=MAX_SEND_BATCH)]


SendBatch: type[Struct] = msgspec.defstruct(
    "SendBatch",
    [
        (
            "messages",
            Annotated[
                list[SendRequest],  # type: ignore[valid-type]  # a type built at import
                Meta(min_length=1, max_length=MAX_SEND_BATCH),
            ],
        )
    ],
    module=__name__,
    kw_only=True,
    forbid_unknown_fields=True,
)
SendBatch.__doc__ = (
    f"Up to {MAX_SEND_BATCH} send requests, each answered on its own in the same order."
)


class SendResult(Struct, kw_only=True, omit_defaults=True):
    """One item's answer: ``status`` as the single route would answer it (202 accepted,
    200 the message of an idempotency key seen before, 422 refused: ``error`` says why)."""

    status: int
    message: MessageOut | None = None
    error: ErrorDetail | None = None


class SendBatchResult(Struct, kw_only=True):
    results: list[SendResult]


# --- misc -----------------------------------------------------------------------------------


class ErrorDetail(Struct, kw_only=True):
    code: str
    message: str
    field: str | None = None


class ErrorBody(Struct, kw_only=True):
    error: ErrorDetail


class Health(Struct, kw_only=True):
    status: str


def encode(value: object) -> bytes:
    return msgspec.json.encode(value)


def _given(name: str) -> dict[str, Any]:
    """A JSON Schema that holds when ``name`` is present and not null (what "given" means
    for the optional fields below: null is the same as absent)."""
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


def cross_field_rules() -> dict[str, dict[str, Any]]:
    """{component name: schema keywords added to it}: the rules between fields that
    ``validation.py``, ``Target.kind`` and the handlers enforce, stated in the document so
    that generated clients and validators know them."""
    by_kind: dict[str, list[str]] = {}
    for spec in registry.PLATFORMS:
        by_kind.setdefault(spec.registration, []).append(spec.name)
    branches = [
        {
            "properties": {
                "platform": {"enum": platforms},
                **{other: {"type": "null"} for other in by_kind if other != kind},
            },
            "allOf": [_given(kind)],
        }
        for kind, platforms in sorted(by_kind.items())
    ]
    required = "; ".join(
        f"`{kind}` is required for {', '.join(platforms)}"
        for kind, platforms in sorted(by_kind.items())
    )
    return {
        "InstallationCreate": {"description": f"{required}; never both.", "oneOf": branches},
        "InstallationPatch": {
            "description": "Give `push_token` or `web_subscription`, not both.",
            "not": {"required": ["push_token", "web_subscription"]},
        },
        "Target": {
            "oneOf": [_given(kind.value) for kind in TargetKind],
            "if": {"required": ["match"], "properties": {"match": {"const": "all"}}},
            "then": _given("tags"),
        },
    }
