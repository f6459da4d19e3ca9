"""Who a message is for: exactly one of the seven target kinds.  Pure."""

from __future__ import annotations

import enum
import uuid
from typing import Annotated, Literal

import msgspec

from pushcore.fields import Email, ExternalId, Msisdn, Tag
from pushcore.providers.registry import Platform

MAX_TARGET_LIST = 100_000
RecipientKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
RecipientValue = Annotated[str, msgspec.Meta(max_length=1024)] | int | float | bool | None
MAX_RAW_TOKENS = 10_000


class TargetKind(enum.Enum):
    ALL = "all"
    TAGS = "tags"
    EXTERNAL_USER_IDS = "external_user_ids"
    EMAILS = "emails"
    MSISDNS = "msisdns"
    INSTALLATION_IDS = "installation_ids"
    RECIPIENTS = "recipients"
    TOKENS = "tokens"


class RawSubscriptionKeys(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    p256dh: Annotated[str, msgspec.Meta(max_length=128)]
    auth: Annotated[str, msgspec.Meta(max_length=64)]


class RawSubscription(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A browser's ``PushSubscription.toJSON()``, as a registration carries it."""

    endpoint: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
    keys: RawSubscriptionKeys
    expirationTime: int | None = None


class RawToken(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One address the sender keeps itself: a push token (``ios``, ``android``) or a Web
    Push subscription (``web``), checked as a registration would be."""

    platform: Platform
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)] | None = None
    web_subscription: RawSubscription | None = None


class Recipient(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """A user of a ``recipients`` target and the values its templates read as
    ``recipient.data.*``."""

    external_user_id: ExternalId
    data: Annotated[dict[RecipientKey, RecipientValue], msgspec.Meta(max_length=50)] = {}


class Target(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Exactly one of: ``{"all": true}``; ``{"tags": [...], "match": "any"|"all"}`` (an
    installation matches on its own tags and its user's tags); ``{"external_user_ids": [...]}``;
    ``{"emails": [...]}``; ``{"msisdns": [...]}``; ``{"installation_ids": [...]}``;
    ``{"recipients": [{"external_user_id", "data"}, ...]}`` (users, each with values of its
    own for the templates); ``{"tokens": [{"platform", "token" | "web_subscription"}]}``
    (raw tokens, up to 10,000, not looked up in the registry).  Lists hold up to 100,000
    entries; duplicates are ignored (of a user given twice in ``recipients``, the first
    entry counts)."""

    all: Literal[True] | None = None
    tags: Annotated[list[Tag], msgspec.Meta(min_length=1, max_length=100)] | None = None
    match: Literal["any", "all"] = "any"
    external_user_ids: (
        Annotated[list[ExternalId], msgspec.Meta(min_length=1, max_length=MAX_TARGET_LIST)] | None
    ) = None
    emails: (
        Annotated[list[Email], msgspec.Meta(min_length=1, max_length=MAX_TARGET_LIST)] | None
    ) = None
    msisdns: (
        Annotated[list[Msisdn], msgspec.Meta(min_length=1, max_length=MAX_TARGET_LIST)] | None
    ) = None
    installation_ids: (
        Annotated[list[uuid.UUID], msgspec.Meta(min_length=1, max_length=MAX_TARGET_LIST)] | None
    ) = None
    tokens: (
        Annotated[list[RawToken], msgspec.Meta(min_length=1, max_length=MAX_RAW_TOKENS)] | None
    ) = None

    recipients: (
        Annotated[list[Recipient], msgspec.Meta(min_length=1, max_length=MAX_TARGET_LIST)] | None
    ) = None

    def users(self) -> Target:
        """A ``recipients`` target as the ``external_user_ids`` target the planner resolves
        (the data is stored beside the message); any other target as it is."""
        if self.recipients is None:
            return self
        return Target(external_user_ids=[r.external_user_id for r in self.recipients])

    def kind(self) -> TargetKind:
        """The one kind given; raise ValueError naming the problem otherwise."""
        given = [k for k in TargetKind if getattr(self, k.value) is not None]
        if len(given) != 1:
            names = ", ".join(k.value for k in TargetKind)
            raise ValueError(f"give exactly one of {names}")
        if self.match != "any" and given[0] is not TargetKind.TAGS:
            raise ValueError("match applies to tags only")
        return given[0]
