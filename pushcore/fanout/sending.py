"""One batch: claim it, deliver it, write the results back.  Two SQL statements per batch.

Outcomes map to the ledger as follows: delivered → ``delivered``; invalid → the
registration is deleted (``invalid_removed``); retry → a smaller retry batch after back-off
(``retrying``), or ``failed`` (``retries_exhausted:<reason>``) when the retry would come
due after PUSHCORE_RETRY_WINDOW_SECONDS from the message's start or after its TTL, or
PUSHCORE_MAX_ATTEMPTS is reached; permanent → ``failed``; sender error → the message stops
as ``failed`` with the error, and nothing is deleted.  Registrations deleted or disabled
since planning count as ``failed`` (reason ``gone``).

A request that may have been processed without an answer (lost connection, reset stream,
timeout: :attr:`~pushcore.transport.base.Failure.unprocessed` is false) is retried only
with PUSHCORE_DELIVERY_GUARANTEE=at-least-once, and counted in
``pushcore_uncertain_resends_total``: each is a possible duplicate.  With at-most-once it
counts as failed (``uncertain:<reason>``).

Storms and 429s (:mod:`pushcore.fanout.storms`): a batch whose answers were mostly
retryable counts towards a provider-wide pause, and a 429 with Retry-After starts one at
once; while it lasts no worker claims that app's batches for that platform, and a batch
message that finds its batch paused puts it off past the pause.

Rate limits (:mod:`pushcore.fanout.throttle`): the claim takes the batch's permit; a batch
a limit holds has its slot reserved by that claim and goes back on the broker until then,
unclaimed (no lease, no thread held).

Write-back (:mod:`pushcore.fanout.writeback`): when the results cannot be written
(PostgreSQL unreachable, a timeout), the worker keeps them and tries again with back-off
while it can still hold the lease, extending the lease whenever PostgreSQL answers,
instead of dropping them (which would send the whole batch again after the lease).

A message with per-recipient content is rendered per recipient (``render.py``); a
recipient whose render fails or whose payload is too large counts ``failed``
(``template_error``, ``payload_too_large``).

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
from pushcore.db import pauses
from pushcore.db.lane import Waker
from pushcore.db.pool import Pool, Record
from pushcore.fanout import metrics, results, storms, valve
from pushcore.fanout.backoff import retry_delay
from pushcore.fanout.delivery import PerRecipient, deliver
from pushcore.fanout.errors import DB_UNREACHABLE
from pushcore.fanout.priority import LanePriority
from pushcore.fanout.providers import ProviderCache
from pushcore.fanout.queue import BatchJob, Enqueuer
from pushcore.fanout.render import TEMPLATE_ERROR, Programs, is_templated, render_batch
from pushcore.fanout.writeback import write_back
from pushcore.providers import registry
from pushcore.providers.base import Outcome, Provider, Registration, Result
from pushcore.providers.errors import AuthError, ProviderError
from pushcore.providers.registry import Notification
from pushcore.templates.errors import InvalidTemplate
from pushcore.transport.base import Failure, Transport

log = logging.getLogger(__name__)

RENDER_CACHE = 64  # messages whose rendered payloads a process keeps
# Recipients of a templated batch rendered between two yields to the event loop: ~40-65 µs
# each, so a batch of 1,000 would otherwise hold the loop (and the lane) for ~50 ms.
RENDER_SLICE = 100
# Results of transport failures after which the provider may have processed the request.
UNCERTAIN = frozenset(f"transport-{f.value}" for f in Failure if not f.unprocessed)


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
    programs: Programs = field(default_factory=Programs)  # templated messages, compiled
    # the platforms whose send queues this process consumes (``pushcore worker --queues``):
    # its lane loops claim only their lane batches
    platforms: tuple[str, ...] = registry.NAMES


@dataclass
class Tally:
    delivered: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    invalid_ids: list[int] = field(default_factory=list)
    invalid_tokens: list[str] = field(default_factory=list)
    invalid_reasons: list[str] = field(default_factory=list)  # for registrations.removed
    retry_ids: list[int] = field(default_factory=list)
    retry_reasons: list[str] = field(default_factory=list)  # parallel to retry_ids
    retry_after: float | None = None
    quota_retry_after: float | None = None  # the longest Retry-After of a 429 answer
    sender_error: str | None = None
    sent: int = 0  # registrations sent to the provider
    retryable: int = 0  # of them, answered with a retryable outcome
    uncertain: int = 0  # retried although the provider may have processed them
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
    claimed = await queries.claim(
        ctx.pool, batch_id, ctx.settings.lease_seconds, ctx.settings.throttle_late_seconds
    )
    if claimed is None:
        if ctx.settings.storm_batches or ctx.settings.quota_pause_max_seconds:
            # only on a miss (duplicate message, not due, paused): no statement otherwise
            spread = ctx.settings.storm_pause_seconds  # the next pause's length
            postponed = await pauses.postpone_if_paused(ctx.pool, batch_id, spread=spread)
            if postponed is not None:
                platform, delay = postponed
                await ctx.enqueuer.batches([BatchJob(batch_id, platform, delay)])
        return None
    row = claimed.row
    if row is None:
        # a rate limit holds it: its slot is reserved (charged once), it comes back then
        await ctx.enqueuer.batches([BatchJob(batch_id, claimed.platform, claimed.wait)])
        metrics.THROTTLED.labels(registry.spec(claimed.platform).metrics_label).inc()
        return None
    result, tally = await _process(ctx, row)
    done = await _finish(ctx, [row], [(result, tally)], started)
    return done.statuses.get(row["message_id"]) if done.owned else None


async def claim_lane(ctx: SendContext) -> list[Record]:
    """Claim due lane batches of any messages on the process's platforms (up to
    PUSHCORE_LANE_CLAIM_BATCHES)."""
    return await queries.claim_lane(
        ctx.pool, ctx.settings.lane_claim_batches, ctx.settings.lease_seconds, ctx.platforms
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
    if row["status"] not in ("scheduled", "queued", "sending"):  # scheduled: local time
        tally.fail_all(f"message_{row['status']}", len(row["ids"]))
    elif row["passed"]:  # their local time was over before the send was accepted
        tally.fail_all("local_time_passed", len(row["ids"]))
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
        if not _may_retry(ctx.settings, row, delay):
            for reason in tally.retry_reasons:
                tally.fail(f"retries_exhausted:{reason}")
            for iid, reason in zip(tally.retry_ids, tally.retry_reasons, strict=True):
                tally.answers[iid] = results.label(results.FAILED, f"retries_exhausted:{reason}")
            tally.retry_ids.clear()
            tally.retry_reasons.clear()
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


def _may_retry(settings: Settings, row: Record, delay: float) -> bool:
    """Whether a retry due in ``delay`` seconds is still within the budget: the retry window
    (from the message's start), the message's TTL, and the attempt cap."""
    if row["attempt"] + 1 >= settings.max_attempts:
        return False
    if row["age"] + delay > settings.retry_window_seconds:
        return False
    ttl_left = row["ttl_left"]
    return ttl_left is None or delay < ttl_left


async def _finish(
    ctx: SendContext,
    rows: list[Record],
    outcomes: list[tuple[queries.BatchResult, Tally]],
    started: float,
) -> queries.Finished:
    """Write the results, count them, and enqueue the broadcast retry batches."""
    done = await write_back(ctx.pool, ctx.settings, rows, [result for result, _ in outcomes])
    owned = set(done.owned)
    elapsed = time.monotonic() - started
    for row, (result, tally) in zip(rows, outcomes, strict=True):
        label = registry.spec(row["platform"]).metrics_label
        metrics.BATCH_SECONDS.labels(label).observe(elapsed)
        if result.batch_id not in owned:
            log.warning("batch %d: lease lost before the results were written", row["id"])
            continue
        metrics.record(label, tally.delivered, done.deleted.get(result.batch_id, 0), tally.reasons)
        if tally.uncertain and result.retry_ids:
            metrics.UNCERTAIN_RESENDS.labels(label).inc(tally.uncertain)
    if done.retries:
        await ctx.enqueuer.batches(
            [BatchJob(batch_id, platform, delay) for batch_id, platform, delay in done.retries]
        )
    answers = [
        storms.BatchAnswers(
            row["app_id"], row["platform"], tally.sent, tally.retryable, tally.quota_retry_after
        )
        for row, (result, tally) in zip(rows, outcomes, strict=True)
        if result.batch_id in owned
    ]
    try:
        await storms.after_batches(ctx.pool, ctx.settings, answers)
    except DB_UNREACHABLE as exc:  # the results are written: a missed count is harmless
        log.warning("storm count or pause not recorded: %s", exc)
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
        templated = is_templated(row["notification"])
        rendered = None if templated else _rendered(ctx, row, provider)
    except (ProviderError, msgspec.ValidationError) as exc:
        # credentials removed or unusable, or a payload the API should have refused
        tally.sender_error = f"{platform}: {exc}"
        tally.fail_all("sender_error", len(ids))
        return
    registrations = [
        Registration(installation_id=i, token=t, p256dh=k, auth=a)
        for i, t, k, a in zip(ids, tokens, row["p256dh"], row["auth"], strict=True)
    ]
    if rendered is None:
        registrations, rendered = await _per_recipient(ctx, row, provider, registrations, tally)
        if not registrations:
            return
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
    tally.sent = len(registrations)
    if _valve_tripped(ctx, tally, registrations, answers, provider.name):
        return
    at_most_once = ctx.settings.delivery_guarantee == "at-most-once"
    for reg, result in zip(registrations, answers, strict=True):
        _count(tally, reg, result, at_most_once, provider.name)
    if tally.sender_error is not None:
        # a sender error deletes nothing and retries nothing: the message stops
        tally.fail("sender_error", len(tally.invalid_ids) + len(tally.retry_ids))
        for iid in (*tally.invalid_ids, *tally.retry_ids):
            tally.answers[iid] = results.label(results.FAILED, "sender_error")
        tally.invalid_ids.clear()
        tally.invalid_tokens.clear()
        tally.invalid_reasons.clear()
        tally.retry_ids.clear()
        tally.retry_reasons.clear()


async def _per_recipient(
    ctx: SendContext,
    row: Record,
    provider: Provider[Any],
    registrations: list[Registration],
    tally: Tally,
) -> tuple[list[Registration], Any]:
    """The registrations of a templated batch that rendered, with their payloads; the
    others are tallied as failed."""
    try:
        program = ctx.programs.get(row["message_id"], row["notification"])
    except InvalidTemplate:  # accepted at submit: only a changed sandbox gets here
        tally.fail(TEMPLATE_ERROR, len(registrations))
        return [], None
    recipients = row["recipients"] or []
    kept: list[Registration] = []
    payloads: list[Any] = []
    seen: dict[bytes, Any] = {}
    first_error: str | None = None
    for start in range(0, len(registrations), RENDER_SLICE):
        if start:
            await asyncio.sleep(0)
        end = start + RENDER_SLICE
        out = render_batch(
            program,
            provider,
            row["notification"],
            registrations[start:end],
            recipients[start:end],
            render_seconds=ctx.settings.template_render_seconds,
            seen=seen,
        )
        kept += out.registrations
        payloads += out.payloads.payloads
        for reason, n in out.failed.items():
            tally.fail(reason, n)
        first_error = first_error or out.first_error
    if first_error is not None:  # what the templates made of one recipient, never its data
        log.warning(
            "batch %d: %d of %d recipients not rendered (first: %s)",
            row["id"],
            len(registrations) - len(kept),
            len(registrations),
            first_error[:200],
        )
    return kept, PerRecipient(payloads)


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


def _count(tally: Tally, reg: Registration, result: Result, at_most_once: bool, name: str) -> None:
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
        tally.retryable += 1
        if result.reason in UNCERTAIN:
            if at_most_once:
                tally.fail(f"uncertain:{result.reason}")
                tally.answers[reg.installation_id] = results.label(
                    results.FAILED, f"uncertain:{result.reason}"
                )
                return
            tally.uncertain += 1
        tally.retry_ids.append(reg.installation_id)
        tally.retry_reasons.append(result.reason)
        answer = results.label(results.RETRY, result.reason)
        if result.retry_after is not None:
            tally.retry_after = max(tally.retry_after or 0.0, result.retry_after)
            if result.status == 429:  # FCM QUOTA_EXCEEDED, APNs TooManyRequests, Web Push
                tally.quota_retry_after = max(tally.quota_retry_after or 0.0, result.retry_after)
    elif outcome is Outcome.SENDER_ERROR:
        tally.sender_error = f"{name}: {result.reason} (HTTP {result.status})"
        tally.fail(f"sender_error:{result.reason}")
        answer = results.label(results.FAILED, f"sender_error:{result.reason}")
    else:
        tally.fail(result.reason)
    tally.answers[reg.installation_id] = answer
