"""Who a message is for: exactly one of the six target kinds.  Pure."""

from __future__ import annotations

import enum
import uuid
from typing import Annotated, Literal

import msgspec

from pushcore.fields import Email, ExternalId, Msisdn, Tag

MAX_TARGET_LIST = 100_000


class TargetKind(enum.Enum):
    ALL = "all"
    TAGS = "tags"
    EXTERNAL_USER_IDS = "external_user_ids"
    EMAILS = "emails"
    MSISDNS = "msisdns"
    INSTALLATION_IDS = "installation_ids"


class Target(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Exactly one of: ``{"all": true}``; ``{"tags": [...], "match": "any"|"all"}`` (an
    installation matches on its own tags and its user's tags); ``{"external_user_ids": [...]}``;
    ``{"emails": [...]}``; ``{"msisdns": [...]}``; ``{"installation_ids": [...]}``.  Lists hold
    up to 100,000 entries; duplicates are ignored."""

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

    def kind(self) -> TargetKind:
        """The one kind given; raise ValueError naming the problem otherwise."""
        given = [k for k in TargetKind if getattr(self, k.value) is not None]
        if len(given) != 1:
            names = ", ".join(k.value for k in TargetKind)
            raise ValueError(f"give exactly one of {names}")
        if self.match != "any" and given[0] is not TargetKind.TAGS:
            raise ValueError("match applies to tags only")
        return given[0]
