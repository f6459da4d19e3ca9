"""Providers: APNs, FCM and Web Push as pure request builders and response classifiers.

Nothing in this package does I/O; :mod:`pushcore.transport` moves the bytes and
:mod:`pushcore.delivery` joins the two.  :mod:`~pushcore.providers.base` holds the contract
(``Provider``, ``Registration``, ``Result``, ``Outcome``),
:mod:`~pushcore.providers.notification` the one notification model, and one module per
provider renders it, builds requests and classifies answers by table.

Provider modules are imported on first use (:func:`provider_class`): the API process needs
only :mod:`~pushcore.providers.credentials` and should not pay for the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pushcore.providers.apns import ApnsProvider
    from pushcore.providers.base import Platform
    from pushcore.providers.fcm import FcmProvider
    from pushcore.providers.webpush import WebPushProvider

# platform of an installation -> (module, class) of its provider
PROVIDERS: dict[str, tuple[str, str]] = {
    "ios": ("pushcore.providers.apns", "ApnsProvider"),
    "android": ("pushcore.providers.fcm", "FcmProvider"),
    "web": ("pushcore.providers.webpush", "WebPushProvider"),
}


def provider_class(
    platform: Platform,
) -> type[ApnsProvider] | type[FcmProvider] | type[WebPushProvider]:
    """The provider class for an installation's platform (``KeyError`` if unknown)."""
    module, name = PROVIDERS[platform]
    cls: type[ApnsProvider] | type[FcmProvider] | type[WebPushProvider]
    cls = getattr(importlib.import_module(module), name)
    return cls
