"""The one notification model every provider renders from.

A send request names a notification; each provider turns it into its own wire form once per
message (``Provider.render``).  :class:`Content` holds the fields every platform shares; the
notification type of the API adds one override block per provider (``ApnsOverrides`` and
the others below), built from the platform registry
(:data:`pushcore.providers.registry.Notification`).

Limits are checked here when they are the same everywhere (``collapse_key`` fits APNs'
64-byte ``apns-collapse-id`` and is printable ASCII so that it can go into a header;
``ttl_seconds`` is at most FCM's 28 days).  Payload size limits differ per platform and are
checked by each provider's ``render``.

Override dictionaries are merged into what the provider generates with :func:`deep_merge`:
nested objects merge key by key, other values replace, and ``null`` removes a generated key.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

# FCM refuses a TTL above 28 days; APNs and Web Push accept it, so it is the common maximum.
MAX_TTL_SECONDS = 28 * 24 * 3600

CollapseKey = Annotated[str, msgspec.Meta(pattern=r"^[\x21-\x7e]{1,64}$")]
Ttl = Annotated[int, msgspec.Meta(ge=0, le=MAX_TTL_SECONDS)]
Text = Annotated[str, msgspec.Meta(max_length=4096)]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]

ApnsPushType = Literal[
    "alert",
    "background",
    "voip",
    "complication",
    "fileprovider",
    "mdm",
    "location",
    "liveactivity",
    "pushtotalk",
    "widgets",
    "controls",
]


class ApnsOverrides(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """APNs-only settings.  ``expiration`` is an absolute Unix time (``0`` = do not store);
    it wins over ``ttl_seconds``.  ``aps`` is deep-merged into the generated ``aps``
    dictionary, ``payload`` adds or replaces top-level keys beside it."""

    push_type: ApnsPushType | None = None
    expiration: Annotated[int, msgspec.Meta(ge=0)] | None = None
    collapse_id: CollapseKey | None = None
    priority: Literal[10, 5, 1] | None = None
    aps: dict[str, Any] = {}
    payload: dict[str, Any] = {}


class FcmOverrides(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Blocks of the FCM v1 ``message`` (``AndroidConfig``, ``ApnsConfig``,
    ``WebpushConfig``), deep-merged into the generated ones."""

    android: dict[str, Any] = {}
    apns: dict[str, Any] = {}
    webpush: dict[str, Any] = {}


class WebPushOverrides(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """RFC 8030 options.  ``topic`` is at most 32 base64url characters (RFC 8030 §5.4).
    ``payload``, when given, is the JSON the service worker receives, sent as is instead of
    the generated one."""

    ttl: Ttl | None = None
    urgency: Literal["very-low", "low", "normal", "high"] | None = None
    topic: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_\-]{1,32}$")] | None = None
    payload: dict[str, Any] | None = None


class Content(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What to show (or hand silently to the app when there is no title/body), and how.

    ``priority`` ``high`` means deliver now (APNs 10, FCM HIGH, Web Push ``high``);
    ``normal`` lets the device save power.  ``ttl_seconds`` ``None`` leaves each provider's
    default storage time; ``0`` means deliver now or never.
    """

    title: Text | None = None
    body: Text | None = None
    data: dict[str, str] = {}
    badge: Annotated[int, msgspec.Meta(ge=0)] | None = None
    sound: Short | None = None
    image: Url | None = None
    url: Url | None = None
    category: Short | None = None
    thread_id: Short | None = None
    priority: Literal["high", "normal"] = "high"
    ttl_seconds: Ttl | None = None
    collapse_key: CollapseKey | None = None

    @property
    def visible(self) -> bool:
        """True when the notification shows something (otherwise it is a data-only push)."""
        return bool(self.title or self.body)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``override``: nested dicts merge recursively, ``None``
    removes the key, any other value replaces.  Neither argument is modified."""
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def compact(values: dict[str, Any]) -> dict[str, Any]:
    """Drop ``None`` values (unset options are left out of the wire form)."""
    return {key: value for key, value in values.items() if value is not None}
