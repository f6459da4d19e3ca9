"""One batch: claim it, deliver it, write the results back.  Two SQL statements per batch.

Outcomes map to the ledger as follows: delivered → ``delivered``; invalid → the
registration is deleted (``invalid_removed``); retry → a smaller retry batch after back-off
(``retrying``), or ``failed`` once PUSHCORE_MAX_ATTEMPTS is reached; permanent → ``failed``;
sender error → the message stops as ``failed`` with the error, and nothing is deleted.
Registrations deleted or disabled since planning count as ``failed`` (reason ``gone``).
A batch answered mostly dead for a misconfiguration-class reason trips the deletion safety
valve (:mod:`pushcore.fanout.valve`): a sender error, nothing deleted.  Every registration's
answer also goes into the batch's per-recipient results (:mod:`pushcore.fanout.results`),
written by the same finish statement.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from pushcore.config import Settings
from pushcore.db import batches as queries
from pushcore.db.lane import Waker
from pushcore.db.pool import Pool, Record
from pushcore.fanout import metrics, results, valve
from pushcore.fanout.backoff import retry_delay
from pushcore.fanout.delivery import deliver
from pushcore.fanout.priority import LanePriority
from pushcore.fanout.providers import ProviderCache
from pushcore.fanout.queue import BatchJob, Enqueuer
from pushcore.providers import registry
from pushcore.providers.base import Outcome, Provider, Registration, Result
from pushcore.providers.errors import AuthError, ProviderError
from pushcore.providers.registry import Notification
from pushcore.transport.base import Transport

log = logging.getLogger(__name__)

RENDER_CACHE = 64  # messages whose rendered payloads a process keeps


class Transports(Protocol):
    """The transport to use for an app's platform (one shared, or one per APNs
    certificate)."""

    def for_batch(self, platform: str, app_id: int, provider: Provider[Any]) -> Transport: ...


@dataclass
class SendContext:
    """Process-wide resources of a send worker, created on its event loop."""

    pool: Pool
    settings: Settings
    transports: Transports
    enqueuer: Enqueuer
    providers: ProviderCache
    priority: LanePriority | None = None  # the lane's priority over campaign batches
    waker: Waker | None = None  # wakes lane loops after a submit_message of a small send
    rng: random.Random = field(default_factory=random.Random)
    rendered: OrderedDict[tuple[int, str], Any] = field(default_factory=OrderedDict)


@dataclass
class Tally:
    delivered: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    invalid_ids: list[int] = field(default_factory=list)
    invalid_tokens: list[str] = field(default_factory=list)
    invalid_reasons: list[str] = field(default_factory=list)  # for registrations.removed
    retry_ids: list[int] = field(default_factory=list)
    retry_after: float | None = None
    sender_error: str | None = None
    # per-recipient results (pushcore.fanout.results): label per answered installation id,
    # and the label of every loaded one when the whole batch was decided without sending
    answers: dict[int, str] = field(default_factory=dict)
    blanket: str | None = None

    def fail(self, reason: str, n: int = 1) -> None:
        if n:
            self.failed += n
            self.reasons[reason] += n

    def fail_all(self, reason: str, n: int) -> None:
        """The whole batch failed for one reason, before or instead of sending."""
        self.fail(reason, n)
        self.blanket = results.label(results.FAILED, reason)
        self.answers.clear()


async def send_batch(ctx: SendContext, batch_id: int) -> str | None:
    """Process one batch message; return the message's status after it, or None when the
    batch was not ours to send (finished, held by another worker, not yet due)."""
    started = time.monotonic()
    if ctx.priority is not None:
        await ctx.priority.yield_to_lane()  # before the claim: the lease starts after it
    row = await queries.claim(ctx.pool, batch_id, ctx.settings.lease_seconds)
    if row is None:
        return None
    result, tally = await _process(ctx, row)
    done = await _finish(ctx, [row], [(result, tally)], started)
    return done.statuses.get(row["message_id"]) if done.owned else None


async def claim_lane(ctx: SendContext) -> list[Record]:
    """Claim due lane batches of any messages (up to PUSHCORE_LANE_CLAIM_BATCHES)."""
    return await queries.claim_lane(
        ctx.pool, ctx.settings.lane_claim_batches, ctx.settings.lease_seconds
    )


async def send_claimed(ctx: SendContext, rows: list[Record]) -> None:
    """Send claimed lane batches all at once and write their results in one statement."""
    started = time.monotonic()
    outcomes = await asyncio.gather(*(_process(ctx, row) for row in rows))
    await _finish(ctx, rows, list(outcomes), started)


async def _process(ctx: SendContext, row: Record) -> tuple[queries.BatchResult, Tally]:
    """Deliver one claimed batch (or decide it without sending) and tally the answers."""
    tally = Tally()
    tally.fail("gone", row["size"] - len(row["ids"]))
    if row["status"] not in ("queued", "sending"):
        tally.fail_all(f"message_{row['status']}", len(row["ids"]))
    elif row["expired"]:
        tally.fail_all("expired", len(row["ids"]))
    elif row["ids"]:
        await _deliver(ctx, row, tally)
    delay = 0.0
    if tally.retry_ids:
        delay = retry_delay(
            row["attempt"],
            base=ctx.settings.retry_base_seconds,
            cap=ctx.settings.retry_max_seconds,
            retry_after=tally.retry_after,
            rng=ctx.rng,
        )
    encoded = results.encode(row["planned"], row["ids"], tally.answers, tally.blanket)
    result = queries.BatchResult(
        batch_id=row["id"],
        claim=row["claims"],
        delivered=tally.delivered,
        failed=tally.failed,
        reasons=dict(tally.reasons),
        invalid_ids=tally.invalid_ids,
        invalid_tokens=tally.invalid_tokens,
        invalid_reasons=tally.invalid_reasons,
        retry_ids=tally.retry_ids,
        retry_delay=delay,
        sender_error=tally.sender_error,
        labels=encoded.labels,
        codes=encoded.codes,
    )
    return result, tally


async def _finish(
    ctx: SendContext,
    rows: list[Record],
    outcomes: list[tuple[queries.BatchResult, Tally]],
    started: float,
) -> queries.Finished:
    """Write the results, count them, and enqueue the broadcast retry batches."""
    done = await queries.finish(ctx.pool, [result for result, _ in outcomes])
    owned = set(done.owned)
    elapsed = time.monotonic() - started
    for row, (result, tally) in zip(rows, outcomes, strict=True):
        label = registry.spec(row["platform"]).metrics_label
        metrics.BATCH_SECONDS.labels(label).observe(elapsed)
        if result.batch_id not in owned:
            log.warning("batch %d: lease lost before the results were written", row["id"])
            continue
        metrics.record(label, tally.delivered, done.deleted.get(result.batch_id, 0), tally.reasons)
    if done.retries:
        await ctx.enqueuer.batches(
            [BatchJob(batch_id, platform, delay) for batch_id, platform, delay in done.retries]
        )
    return done


def _rendered(ctx: SendContext, row: Record, provider: Provider[Any]) -> Any:
    key = (row["message_id"], row["platform"])
    cached = ctx.rendered.get(key)
    if cached is None:
        notification = msgspec.convert(row["notification"], Notification)
        cached = provider.render(notification)
        ctx.rendered[key] = cached
        if len(ctx.rendered) > RENDER_CACHE:
            ctx.rendered.popitem(last=False)
    return cached


async def _deliver(ctx: SendContext, row: Record, tally: Tally) -> None:
    platform = row["platform"]
    ids: list[int] = row["ids"]
    tokens: list[str] = row["tokens"]
    try:
        provider = ctx.providers.get(
            row["app_id"], platform, row["credentials_version"], row["credentials"]
        )
        rendered = _rendered(ctx, row, provider)
    except (ProviderError, msgspec.ValidationError) as exc:
        # credentials removed or unusable, or a payload the API should have refused
        tally.sender_error = f"{platform}: {exc}"
        tally.fail_all("sender_error", len(ids))
        return
    registrations = [
        Registration(installation_id=i, token=t, p256dh=k, auth=a)
        for i, t, k, a in zip(ids, tokens, row["p256dh"], row["auth"], strict=True)
    ]
    transport = ctx.transports.for_batch(platform, row["app_id"], provider)
    try:
        answers = await deliver(
            provider,
            transport,
            rendered,
            registrations,
            timeout=ctx.settings.send_timeout_seconds,
        )
    except AuthError as exc:
        if exc.retryable:
            answers = [Result(Outcome.RETRY, "auth_unavailable")] * len(ids)
        else:
            tally.sender_error = f"{provider.name}: {exc}"
            tally.fail_all("sender_error", len(ids))
            return
    if _valve_tripped(ctx, tally, registrations, answers, provider.name):
        return
    last_attempt = row["attempt"] + 1 >= ctx.settings.max_attempts
    for reg, result in zip(registrations, answers, strict=True):
        _count(tally, reg, result, last_attempt, provider.name)
    if tally.sender_error is not None:
        # a sender error deletes nothing and retries nothing: the message stops
        tally.fail("sender_error", len(tally.invalid_ids) + len(tally.retry_ids))
        for iid in (*tally.invalid_ids, *tally.retry_ids):
            tally.answers[iid] = results.label(results.FAILED, "sender_error")
        tally.invalid_ids.clear()
        tally.invalid_tokens.clear()
        tally.invalid_reasons.clear()
        tally.retry_ids.clear()


def _valve_tripped(
    ctx: SendContext,
    tally: Tally,
    registrations: list[Registration],
    answers: list[Result],
    name: str,
) -> bool:
    """The deletion safety valve (:mod:`pushcore.fanout.valve`): when the batch's answers
    look like our misconfiguration, count the batch as failed by a sender error, deleting
    and retrying nothing, and say so."""
    suspect = valve.suspect_reasons(answers)
    total = sum(suspect.values())
    if not valve.tripped(
        total,
        len(answers),
        share=ctx.settings.deletion_valve_share,
        minimum=ctx.settings.deletion_valve_min_registrations,
    ):
        return False
    named = ", ".join(f"{n} {reason}" for reason, n in suspect.most_common())
    tally.sender_error = (
        f"{name}: deletion safety valve: {total} of {len(answers)} registrations answered "
        f"dead ({named}); a wrong project, topic or environment? nothing deleted"
    )
    for reg, result in zip(registrations, answers, strict=True):
        if result.outcome is Outcome.DELIVERED:
            tally.delivered += 1
            tally.answers[reg.installation_id] = results.label(results.DELIVERED, result.reason)
            continue
        reason = f"deletion_valve:{result.reason}" if result.suspect else "sender_error"
        tally.fail(reason)
        tally.answers[reg.installation_id] = results.label(results.FAILED, reason)
    log.warning("%s", tally.sender_error)
    return True


def _count(tally: Tally, reg: Registration, result: Result, last: bool, name: str) -> None:
    outcome = result.outcome
    answer = results.label(results.FAILED, result.reason)
    if outcome is Outcome.DELIVERED:
        tally.delivered += 1
        answer = results.label(results.DELIVERED, result.reason)
    elif outcome is Outcome.INVALID:
        tally.invalid_ids.append(reg.installation_id)
        tally.invalid_tokens.append(reg.token)
        tally.invalid_reasons.append(result.reason)
        answer = results.label(results.INVALID, result.reason)
    elif outcome is Outcome.RETRY:
        if last:
            tally.fail(f"retries_exhausted:{result.reason}")
            answer = results.label(results.FAILED, f"retries_exhausted:{result.reason}")
        else:
            tally.retry_ids.append(reg.installation_id)
            answer = results.label(results.RETRY, result.reason)
            if result.retry_after is not None:
                tally.retry_after = max(tally.retry_after or 0.0, result.retry_after)
    elif outcome is Outcome.SENDER_ERROR:
        tally.sender_error = f"{name}: {result.reason} (HTTP {result.status})"
        tally.fail(f"sender_error:{result.reason}")
        answer = results.label(results.FAILED, f"sender_error:{result.reason}")
    else:
        tally.fail(result.reason)
    tally.answers[reg.installation_id] = answer
