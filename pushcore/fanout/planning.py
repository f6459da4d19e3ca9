"""The planner: a message's audience becomes batches in the ledger, page by page.

``all`` and ``tags`` targets are keyset scans of the app's installations, one platform
after the other; list targets (users, emails, phones, installations) are resolved in
chunks of :data:`LIST_CHUNK` values with ``= ANY``.  Each page is one statement (see
``pushcore.db.planning``) followed by one enqueue of its batches; memory stays bounded by
the page size whatever the audience.  A crash resumes from the stored cursor: the batches a
crashed planner wrote but did not enqueue are picked up by the reaper.

A local-time message (``send_at_local``) is planned about a day ahead: each page is grouped
by the recipients' due times (``pushcore.fanout.localtime``), and the batches not yet due
are written held, not enqueued; the reaper releases them when due.

A message with ``inbox`` is then stored in its users' inboxes (``pushcore.db.inbox``: one
row for a whole-app send, one entry per user for the others, in pages with a cursor of
their own); with ``push: false`` that is all, and the message is done without batches.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from pushcore.config import Settings
from pushcore.db import inbox as inbox_queries
from pushcore.db import limits
from pushcore.db import planning as queries
from pushcore.db.inbox import InboxPlan
from pushcore.db.pool import Pool
from pushcore.fanout import localtime, raw_tokens, throttle
from pushcore.fanout.queue import BatchJob, Enqueuer
from pushcore.fanout.request import InboxOptions, SendRequest
from pushcore.fanout.targets import Target, TargetKind
from pushcore.providers import registry

log = logging.getLogger(__name__)

LIST_CHUNK = 5_000


def list_values(kind: TargetKind, target: Target) -> list[str]:
    """The values of a list target as the planner resolves them: de-duplicated, emails
    lower-cased."""
    values: list[Any] = getattr(target, kind.value)
    if kind is TargetKind.EMAILS:
        values = [v.lower() for v in values]
    # de-duplicate, keep order (a repeated id must not count twice)
    return list(dict.fromkeys(str(v) for v in values))


async def plan(pool: Pool, settings: Settings, enqueuer: Enqueuer, message_id: int) -> str | None:
    """Plan the message if it is due and nobody else is planning it; return its status
    afterwards, or None when there was nothing to do."""
    claimed = await queries.claim(pool, message_id, settings.lease_seconds)
    if claimed is None:
        return None
    request = claimed["request"]
    target = msgspec.convert(request["target"], Target)
    kind = target.kind()
    platforms: list[str] = [p for p in registry.NAMES if p in claimed["platforms"]]
    common: dict[str, Any] = {
        "message_id": message_id,
        "claim": claimed["plan_claims"],
        "app_id": claimed["app_id"],
        "batch_size": await _batch_size(pool, settings, claimed, platforms),
        "primary_only": claimed["primary_only"],
        "local": local_time(request) if claimed["local_from"] is not None else None,
    }
    cursor = claimed["plan_cursor"]
    if not request.get("push", True):
        owned = True  # inbox only: no batches
    elif kind is TargetKind.TOKENS and cursor.get("tokens") == "written":
        owned = True  # a planner before this one wrote the batches, then died
    elif kind is TargetKind.TOKENS:
        assert target.tokens is not None
        owned = await _plan_tokens(
            pool, addresses=raw_tokens.addresses(target.tokens), common=common,
            enqueuer=enqueuer, platforms=platforms,
        )  # fmt: skip
    elif kind in (TargetKind.ALL, TargetKind.TAGS):
        owned = await _plan_keyset(
            pool,
            settings=settings,
            enqueuer=enqueuer,
            target=target,
            platforms=platforms,
            cursor=cursor,
            common=common,
        )
    else:
        owned = await _plan_list(
            pool,
            enqueuer=enqueuer,
            kind=kind,
            target=target,
            platforms=platforms,
            cursor=cursor,
            common=common,
        )
    # The inbox after the push's batches are queued: the workers send while a tag
    # segment's or a long list's entries are written (a broadcast's is one row), so the
    # inbox never delays the push; the message is done only once both are.
    if owned and request.get("inbox"):
        owned = await _plan_inbox(pool, settings, claimed, target, kind)
    if not owned:
        log.info("message %d: planning taken over or stopped", message_id)
        return None
    done = await queries.finish(pool, message_id, common["claim"])
    return str(done["status"]) if done else None


async def _batch_size(pool: Pool, settings: Settings, claimed: Any, platforms: list[str]) -> int:
    """PUSHCORE_BATCH_SIZE, or the smaller batch a rate limit asks for (the message's own
    rate, its app's quota on one of its platforms): :func:`throttle.planned_batch`.  A
    throttled message's bucket is written here, before its first batch."""
    rate: int | None = claimed["request"].get("rate_per_minute")
    quotas = await limits.quotas_of(pool, claimed["app_id"], platforms)
    size = throttle.planned_batch(
        settings.batch_size,
        rate,
        list(quotas.values()),
        batch_seconds=settings.throttle_batch_seconds,
    )
    if rate is not None:
        spacing = throttle.spacing(rate, size, settings.throttle_late_seconds)
        await limits.start_message_rate(pool, claimed["id"], rate, spacing)
    return size


async def _plan_keyset(
    pool: Pool,
    *,
    settings: Settings,
    enqueuer: Enqueuer,
    target: Target,
    platforms: list[str],
    cursor: dict[str, Any],
    common: dict[str, Any],
) -> bool:
    limit = settings.batch_size * settings.plan_batches_per_statement
    start = platforms.index(cursor["platform"]) if cursor.get("platform") in platforms else 0
    for index, platform in enumerate(platforms[start:], start):
        after = int(cursor.get("after", 0)) if index == start else 0
        # a local-time message's pages run in (zone, id) order: the cursor holds both
        zone = str(cursor.get("zone", "")) if index == start else ""
        while True:
            row = await queries.keyset_page(
                pool,
                platform=platform,
                after=after,
                zone_after=zone,
                limit=limit,
                tags=target.tags,
                match_all=target.match == "all",
                cursor={"platform": platform},
                **common,
            )
            if not row["owned"]:
                return False
            await _enqueue(enqueuer, row)
            if row["seen"] < limit:
                break
            after, zone = row["last_id"], row["last_zone"] or ""
    return True


async def _plan_list(
    pool: Pool,
    *,
    enqueuer: Enqueuer,
    kind: TargetKind,
    target: Target,
    platforms: list[str],
    cursor: dict[str, Any],
    common: dict[str, Any],
) -> bool:
    values = list_values(kind, target)
    start = int(cursor.get("chunk", 0))
    for index in range(start, (len(values) + LIST_CHUNK - 1) // LIST_CHUNK):
        row = await queries.list_page(
            pool,
            kind=kind.value,
            chunk=values[index * LIST_CHUNK : (index + 1) * LIST_CHUNK],
            platforms=platforms,
            cursor={"chunk": index + 1},
            **common,
        )
        if not row["owned"]:
            return False
        await _enqueue(enqueuer, row)
    return True


async def _plan_inbox(
    pool: Pool, settings: Settings, claimed: Any, target: Target, kind: TargetKind
) -> bool:
    """Store the message in its users' inboxes: a whole-app send as one row, other targets
    as one entry per user, page by page (resumable from the inbox row's cursor); whether
    the planner still owned the message."""
    options = msgspec.convert(claimed["request"]["inbox"], bool | InboxOptions)
    assert isinstance(options, InboxOptions) or options is True
    plan = (
        InboxPlan(None, None) if options is True else InboxPlan(options.topic, options.expires_at)
    )
    common: dict[str, Any] = {
        "message_id": claimed["id"],
        "claim": claimed["plan_claims"],
        "app_id": claimed["app_id"],
    }
    audience = "all" if kind is TargetKind.ALL else "users"
    row = await inbox_queries.start(pool, audience=audience, plan=plan, **common)
    if row is None:
        return False
    if row["planned"]:
        return True
    cursor: dict[str, Any] = row["cursor"]
    if kind is TargetKind.TAGS:
        assert target.tags is not None
        after = int(cursor.get("after", 0))
        while True:
            owned, last = await inbox_queries.store_tag_page(
                pool,
                tags=target.tags,
                match_all=target.match == "all",
                after=after,
                limit=settings.batch_size * settings.plan_batches_per_statement,
                **common,
            )
            if not owned:
                return False
            if last is None:
                return True
            after = last
    values = list_values(kind, target)
    chunks = (len(values) + LIST_CHUNK - 1) // LIST_CHUNK
    for index in range(int(cursor.get("chunk", 0)), chunks):
        owned = await inbox_queries.store_list_chunk(
            pool,
            kind=kind.value,
            chunk=values[index * LIST_CHUNK : (index + 1) * LIST_CHUNK],
            cursor={"chunk": index + 1},
            done=index + 1 == chunks,
            **common,
        )
        if not owned:
            return False
    return True


async def _plan_tokens(
    pool: Pool,
    *,
    enqueuer: Enqueuer,
    addresses: list[raw_tokens.Address],
    platforms: list[str],
    common: dict[str, Any],
) -> bool:
    """A raw-token target: at most 10,000 addresses, written as batches in one statement
    (the tokens travel in the batch rows: they are in no registry)."""
    wanted = [a for a in addresses if a.platform in platforms]
    row = await queries.tokens_page(
        pool,
        platforms=[a.platform for a in wanted],
        tokens=[a.token for a in wanted],
        p256dh=[a.p256dh for a in wanted],
        auth=[a.auth for a in wanted],
        **{k: v for k, v in common.items() if k not in ("primary_only", "local")},
    )
    if not row["owned"]:
        return False
    await _enqueue(enqueuer, row)
    return True


def local_time(request: dict[str, Any]) -> queries.LocalTime:
    """A local-time message's due times (``send_at_local`` in every zone, the default
    zone's) and its TTL, which each batch counts from its own time."""
    send = msgspec.convert(request, SendRequest)
    assert send.send_at_local is not None
    assert send.default_time_zone is not None
    zones, dues = localtime.instants(send.send_at_local)
    default_due = localtime.instant(send.send_at_local, send.default_time_zone)
    return queries.LocalTime(zones, dues, default_due, send.ttl())


async def _enqueue(enqueuer: Enqueuer, row: Any) -> None:
    jobs = [BatchJob(b, p) for b, p in zip(row["batch_ids"], row["platforms"], strict=True)]
    await enqueuer.batches(jobs)
