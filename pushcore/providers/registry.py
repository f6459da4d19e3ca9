"""The platforms pushcore sends to: one row each, and everything else iterates the rows.

An installation's ``platform`` (``ios``, ``android``, ``web``) picks its row; the row names
the provider that serves it and everything that follows from that: the API field of the
app's credentials and of a send's override block (the provider's ``key``: ``apns``,
``fcm``, ``webpush``), the credentials type and the provider class, what the device
registers (a push token and its rule, or a Web Push subscription), the Dramatiq queue and
actor of its send workers, and the label of its metrics.  The API schemas, the OpenAPI
document, the planner, the ledger's SQL (credentials are rows of ``app_credentials`` keyed
by platform), the actors and the broker's queue list are all built from :data:`PLATFORMS`.

Adding a provider is one provider module, one row here and one simulator; the list of
files is in ``docs/providers.md``.

The request types that carry a block per provider (the ``Notification`` of a send, the
app's credentials) are built here from the rows with :func:`msgspec.defstruct`, on top of
static base classes that hold the common fields; code outside reads a provider's block by
its key (:func:`overrides_of`), never by a hard-coded attribute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import msgspec

from pushcore.config import Settings
from pushcore.providers import apns, fcm, webpush
from pushcore.providers.base import Provider
from pushcore.providers.credentials import ApnsCredentials, FcmCredentials, WebPushCredentials
from pushcore.providers.notification import (
    ApnsOverrides,
    Content,
    FcmOverrides,
    WebPushOverrides,
)

# The static form of the platform names, for type checkers and JSON Schema enums; the
# assertion below keeps it equal to the rows.
Platform = Literal["ios", "android", "web"]
Credentials = ApnsCredentials | FcmCredentials | WebPushCredentials

# ``push_token``: the device sends a token checked by ``token_rule``; ``web_subscription``:
# the browser's PushSubscription (endpoint + P-256 keys), checked by the API's validation.
Registration = Literal["push_token", "web_subscription"]


@dataclass(frozen=True, slots=True)
class PlatformSpec:
    name: Platform
    key: str  # the provider: credentials and override field, queue and actor suffix
    title: str  # for people: logs, docs, the console
    provider: Callable[[Any, Settings], Provider[Any]]  # (credentials struct, settings)
    credentials: type[Credentials]
    overrides: type[msgspec.Struct]
    registration: Registration
    # push_token platforms: the stored form of a valid token, None when it is not one
    token_rule: Callable[[str], str | None] | None
    registration_help: str  # what a valid registration looks like (error messages)

    @property
    def queue(self) -> str:
        return f"pushcore.{self.key}"

    @property
    def actor(self) -> str:
        return f"send_{self.key}"

    @property
    def metrics_label(self) -> str:
        return self.name

    def make_provider(self, stored: Any, settings: Settings) -> Provider[Any]:
        """The provider for an app's stored credentials JSON (``msgspec.ValidationError``
        when they no longer decode; ``CredentialsError`` when a key no longer loads)."""
        return self.provider(msgspec.convert(stored, self.credentials), settings)


PLATFORMS: tuple[PlatformSpec, ...] = (
    PlatformSpec(
        name="ios",
        key="apns",
        title="APNs",
        provider=apns.ApnsProvider.configured,
        credentials=ApnsCredentials,
        overrides=ApnsOverrides,
        registration="push_token",
        token_rule=apns.normalize_token,
        registration_help="an APNs device token is even-length hex, 64-200 chars",
    ),
    PlatformSpec(
        name="android",
        key="fcm",
        title="FCM",
        provider=fcm.FcmProvider.configured,
        credentials=FcmCredentials,
        overrides=FcmOverrides,
        registration="push_token",
        token_rule=fcm.normalize_token,
        registration_help="an FCM token is printable ASCII without spaces, ≤ 4096",
    ),
    PlatformSpec(
        name="web",
        key="webpush",
        title="Web Push",
        provider=webpush.WebPushProvider.configured,
        credentials=WebPushCredentials,
        overrides=WebPushOverrides,
        registration="web_subscription",
        token_rule=None,
        registration_help="a web_subscription: https endpoint, 65-byte p256dh, 16-byte auth",
    ),
)

BY_NAME: dict[str, PlatformSpec] = {spec.name: spec for spec in PLATFORMS}
BY_KEY: dict[str, PlatformSpec] = {spec.key: spec for spec in PLATFORMS}
NAMES: tuple[Platform, ...] = tuple(spec.name for spec in PLATFORMS)
KEYS: tuple[str, ...] = tuple(spec.key for spec in PLATFORMS)
SEND_QUEUES: tuple[str, ...] = tuple(spec.queue for spec in PLATFORMS)

assert set(get_args(Platform)) == set(NAMES), "Platform must list exactly the rows' names"


def spec(platform: str) -> PlatformSpec:
    """The row of an installation's platform (``KeyError`` when unknown)."""
    return BY_NAME[platform]


def overrides_of(notification: Content, platform: str) -> Any:
    """The notification's override block for ``platform``'s provider, or None."""
    return getattr(notification, BY_NAME[platform].key, None)


def per_provider_fields(make: Callable[[PlatformSpec], tuple[Any, Any]]) -> list[Any]:
    """``defstruct`` fields, one per provider, named by its key: ``make(spec)`` gives the
    field's (type, default)."""
    return [(spec.key, *make(spec)) for spec in PLATFORMS]


def _notification_type() -> type[Content]:
    made = msgspec.defstruct(
        "Notification",
        per_provider_fields(lambda s: (s.overrides | None, None)),
        bases=(Content,),
        module=__name__,
        frozen=True,
        forbid_unknown_fields=True,
        kw_only=True,
    )
    made.__doc__ = (Content.__doc__ or "") + (
        "\n\nOne block per provider (" + ", ".join(KEYS) + ") reaches what only it has."
    )
    return made  # type: ignore[return-value]  # defstruct types its result as Struct


Notification: type[Content] = _notification_type()


def notification(**fields: Any) -> Content:
    """A :data:`Notification` (with any provider blocks) from keyword arguments."""
    return Notification(**fields)
