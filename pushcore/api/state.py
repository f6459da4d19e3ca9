"""Typed application state of the aiohttp app: one key per resource."""

from __future__ import annotations

from aiohttp import web

from pushcore.api.auth import ServerKeyCache, TtlCache
from pushcore.config import Settings
from pushcore.db.lane import Waker
from pushcore.db.pool import Pool, Record
from pushcore.fanout.providers import ProviderCache
from pushcore.fanout.queue import Enqueuer
from pushcore.fanout.render import Programs

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", Pool)
SERVER_KEYS = web.AppKey("server_keys", ServerKeyCache)
ENQUEUER = web.AppKey("enqueuer", Enqueuer)
PROVIDERS = web.AppKey("providers", ProviderCache)  # the submit check's, per process
# app_code → the app's row (credentials included) for the send routes; a credentials change
# reaches other API processes within PUSHCORE_AUTH_CACHE_SECONDS, as a key revocation does
APPS = web.AppKey("apps", TtlCache[str, Record])
LANE_WAKER = web.AppKey("lane_waker", Waker)  # NOTIFY after lane sends, coalesced
# message id → compiled templates, for rendering templated inbox messages for readers
PROGRAMS = web.AppKey("programs", Programs)
