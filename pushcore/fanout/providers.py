"""Provider instances for an app's stored credentials, configured from the settings.

The API builds them to check payload sizes before anything is queued; workers keep them in
a small per-process cache keyed by the credentials' ``updated_at`` (a credentials change
makes a new provider: a new JWT signer, a new FCM token).
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from typing import Any

from pushcore.config import Settings
from pushcore.providers import registry
from pushcore.providers.base import Provider


def make_provider(platform: str, stored: Any, settings: Settings) -> Provider[Any]:
    """The provider for ``platform`` from the app's stored credentials JSON."""
    return registry.spec(platform).make_provider(stored, settings)


class ProviderCache:
    """(app id, platform, credentials version) → provider; bounded LRU, per process."""

    def __init__(self, settings: Settings, size: int = 256) -> None:
        self._settings = settings
        self._size = size
        self._entries: OrderedDict[tuple[int, str, dt.datetime], Provider[Any]] = OrderedDict()

    def get(self, app_id: int, platform: str, version: dt.datetime, stored: Any) -> Provider[Any]:
        key = (app_id, platform, version)
        provider = self._entries.get(key)
        if provider is None:
            provider = make_provider(platform, stored, self._settings)
            self._entries[key] = provider
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        return provider
