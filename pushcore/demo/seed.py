"""Bulk-load simulated installations for the demo and the benchmarks.

Tokens come from the simulators' fate rules (``pushcore.gateways.fates``), so which
registrations are dead is known in advance.  Rows go in with COPY, not row inserts: a
million installations load in seconds.  Users own one to three devices; every third user
has a primary installation.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from pushcore.db.pool import Connection, Pool
from pushcore.gateways import fates

# platform mix of a typical consumer app
MIX = (("ios", 45), ("android", 40), ("web", 15))
DEAD_EVERY = 20  # 5% dead tokens
SEED = 2026
SEED_TIMEOUT = 900.0  # a million rows in one COPY outlast PUSHCORE_DB_COMMAND_TIMEOUT


@dataclass
class Seeded:
    live: dict[str, set[str]] = field(
        default_factory=lambda: {"ios": set(), "android": set(), "web": set()}
    )
    dead: dict[str, set[str]] = field(
        default_factory=lambda: {"ios": set(), "android": set(), "web": set()}
    )
    users: int = 0

    @property
    def total(self) -> int:
        return sum(len(s) for s in self.live.values()) + sum(len(s) for s in self.dead.values())


def platform_of(i: int) -> str:
    slot = i % 100
    for platform, share in MIX:
        if slot < share:
            return platform
        slot -= share
    return "ios"


def sim_key(platform: str, token: str) -> str:
    """The key under which the simulator counts a registration."""
    return token.rsplit("/", 1)[1] if platform == "web" else token


COLUMNS = ["app_id", "platform", "token", "p256dh", "auth", "secret_hash", "user_id", "tags"]
# one row of COLUMNS, as COPY takes it
InstallationRow = tuple[int, str, str, str | None, str | None, bytes, int | None, list[str]]


async def seed(pool: Pool, app_id: int, devices: int, webpush_origin: str) -> Seeded:
    """``devices`` installations of the app, half as many users; which tokens are dead."""
    out = Seeded()
    users = max(1, devices // 2)
    async with pool.acquire() as conn:
        user_ids = await _insert_users(conn, app_id, users)
        records = _records(out, app_id, devices, user_ids, webpush_origin)
        await conn.copy_records_to_table(
            "installations", records=records, columns=COLUMNS, timeout=SEED_TIMEOUT
        )
        await _set_primaries(conn, app_id)
    out.users = users
    return out


async def _insert_users(conn: Connection, app_id: int, users: int) -> list[int]:
    """``users`` users (``user-<n>``, with an email each); their ids in order."""
    user_ids: list[int] = await conn.fetchval(
        """
        WITH u AS (
            INSERT INTO users (app_id, external_id, email)
            SELECT $1, 'user-' || g, 'user' || g || '@example.com'
            FROM generate_series(1, $2) g
            RETURNING id
        ) SELECT array_agg(id ORDER BY id) FROM u
        """,
        app_id,
        users,
    )
    return user_ids


def _records(
    out: Seeded, app_id: int, devices: int, user_ids: list[int], webpush_origin: str
) -> list[InstallationRow]:
    """The installations' rows; each token's key goes into ``out.live`` or ``out.dead``."""
    secret = hashlib.sha256(secrets.token_bytes(16)).digest()
    records: list[InstallationRow] = []
    for i in range(devices):
        platform = platform_of(i)
        fate = fates.Fate.DEAD if i % DEAD_EVERY == 0 else fates.Fate.LIVE
        token, p256dh, auth = _token(platform, i, fate, webpush_origin)
        (out.live if fate is fates.Fate.LIVE else out.dead)[platform].add(sim_key(platform, token))
        # two of three devices belong to a user (some users get several); one in three
        # is anonymous
        user = user_ids[(i * 7919) % len(user_ids)] if i % 3 else None
        tags = ["news"] if i % 2 else ["news", "sports"]
        records.append((app_id, platform, token, p256dh, auth, secret, user, tags))
    return records


def _token(
    platform: str, i: int, fate: fates.Fate, webpush_origin: str
) -> tuple[str, str | None, str | None]:
    """Device ``i``'s token, and for Web Push its subscription's keys."""
    if platform == "ios":
        return fates.apns_token(i, fate, seed=SEED), None, None
    if platform == "android":
        return fates.fcm_token(i, fate, seed=SEED), None, None
    sub = fates.webpush_subscription(i, fate, seed=SEED, origin=webpush_origin)
    return sub.endpoint, sub.p256dh, sub.auth


async def _set_primaries(conn: Connection, app_id: int) -> None:
    """Every third user's first installation becomes its primary."""
    # fresh statistics first: planned without them (a new database) this join can take
    # minutes instead of a second
    await conn.execute("ANALYZE users, installations", timeout=SEED_TIMEOUT)
    await conn.execute(
        """
        UPDATE users u SET primary_installation_id = p.id
        FROM (SELECT user_id, min(id) AS id FROM installations
              WHERE app_id = $1 AND user_id IS NOT NULL GROUP BY user_id) p
        WHERE u.id = p.user_id AND u.app_id = $1 AND u.id % 3 = 0
        """,
        app_id,
        timeout=SEED_TIMEOUT,
    )
    # the primaries just set change what the planner should know of users
    await conn.execute("ANALYZE users", timeout=SEED_TIMEOUT)
