"""The send path's two statements: claim (with the tokens), and finish; for one batch
(broadcast batches, one Dramatiq message each) or many (the transactional lane).

Claim takes the batch under a lease and loads everything the send needs in the same
statement: the registrations still there, the message's state and notification, the app's
credentials for the batch's platform.  Finish writes every result of the batch in one
statement: the batch's state, the message's counters and status, the dead registrations
deleted, and the retry batch.  Both are guarded by the batch's claim number, so a worker
that lost its lease changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pushcore.db import webhooks
from pushcore.db.pool import Pool, Record
from pushcore.db.recipients import RECIPIENT_JSON, unread_json

MAX_ERRORS = 20


# What a claim loads for each batch ``b`` (a CTE of claimed batch rows): the registrations
# still there (a raw-token batch carries its addresses: ids -1, -2, ...), the message's
# state and notification, and the credentials of the batch's platform; for a message with
# per-recipient content (its notification has ``templated``), also what its templates read
# of each recipient, in the order of the ids (with the recipient's own data of a
# ``recipients`` send, and the user's unread count when a template reads ``inbox``: one
# bounded index scan per user, in this same statement).  For any other message that
# lateral is a one-time filter that is false: no scan, no cost.  (Raw-token sends never
# carry templates: submit refuses them.)  A local-time batch's TTL and age count from its
# own due time (``due_at``), and ``passed`` says its recipients' time was over before the
# message was accepted.
_LOADED = (
    """
SELECT b.id, b.claims, b.message_id, b.app_id, b.platform, b.attempt,
       cardinality(b.installation_ids) AS size, b.installation_ids AS planned,
       m.status, m.notification, coalesce(b.expires_at, m.expires_at) < clock_now() AS expired,
       coalesce(b.due_at < m.local_from, false) AS passed,
       extract(epoch FROM clock_now() - coalesce(b.due_at, m.send_at, m.created_at))::float8
           AS age,
       extract(epoch FROM coalesce(b.expires_at, m.expires_at) - clock_now())::float8
           AS ttl_left,
       c.updated_at AS credentials_version, c.credentials,
       CASE WHEN b.raw_tokens IS NULL THEN r.ids ELSE b.installation_ids END AS ids,
       coalesce(b.raw_tokens, r.tokens) AS tokens, coalesce(b.raw_p256dh, r.p256dh) AS p256dh,
       coalesce(b.raw_auth, r.auth) AS auth, t.recipients
FROM b
JOIN messages m ON m.id = b.message_id
LEFT JOIN app_credentials c ON c.app_id = b.app_id AND c.platform = b.platform
CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(i.id ORDER BY i.id), '{}') AS ids,
           coalesce(array_agg(i.token ORDER BY i.id), '{}') AS tokens,
           coalesce(array_agg(i.p256dh ORDER BY i.id), '{}') AS p256dh,
           coalesce(array_agg(i.auth ORDER BY i.id), '{}') AS auth
    FROM installations i
    WHERE b.raw_tokens IS NULL AND i.id = ANY(b.installation_ids) AND i.push_enabled
) r
LEFT JOIN LATERAL (
    SELECT jsonb_agg("""
    + RECIPIENT_JSON
    + """ || jsonb_build_object('recipient', CASE WHEN mr.data IS NULL THEN NULL
                                   ELSE jsonb_build_object('data', mr.data) END)
                      || CASE WHEN m.notification -> 'templated' ? 'unread' AND u.id IS NOT NULL
                         THEN jsonb_build_object('inbox', """
    + unread_json("u", "b.message_id", "(m.notification -> 'templated' ->> 'unread')::int")
    + """) ELSE '{}' END
                      ORDER BY i.id) AS recipients
    FROM installations i LEFT JOIN users u ON u.id = i.user_id
    LEFT JOIN message_recipients mr
        ON mr.message_id = b.message_id AND mr.external_id = u.external_id
    WHERE m.notification ? 'templated' AND i.id = ANY(b.installation_ids) AND i.push_enabled
) t ON true
"""
)
_CLAIMED = """b.id, b.claims, b.message_id, b.app_id, b.platform, b.attempt, b.installation_ids,
    b.tokens AS raw_tokens, b.p256dh AS raw_p256dh, b.auth AS raw_auth, b.due_at, b.expires_at"""
# due (by the schedule's clock) and not held for its local time
_CLAIMABLE = """(b.state = 'queued' OR (b.state = 'sending' AND b.lease_until < now()))
  AND NOT b.held AND (b.not_before IS NULL OR b.not_before <= clock_now() + interval '1 second')
  AND NOT EXISTS (SELECT 1 FROM provider_pauses p WHERE p.app_id = b.app_id
                  AND p.platform = b.platform AND p.paused_until > now())"""


@dataclass(frozen=True, slots=True)
class Claim:
    """A campaign batch's claim: the loaded ``row`` when it is ours to send now; else, when
    a rate limit holds it, ``wait``: the seconds until its reserved slot (it is not
    claimed meanwhile, so it holds no lease)."""

    row: Record | None
    wait: float = 0.0
    platform: str = ""


async def claim(
    pool: Pool, batch_id: int, lease_seconds: float, late_seconds: float
) -> Claim | None:
    """Claim a queued (or abandoned: lease expired) batch that is due and has its permit
    from the rate limits of its message and app (``send_permit``, 0016 migration: a batch
    that has to wait reserves its slot then and is charged once); None when another worker
    holds it, it is finished, paused, or its back-off has not elapsed.

    The batch row is locked first (``cand``), so the permit is taken only for a batch
    that this statement then claims: a duplicate broker message charges nothing.  A batch
    back more than ``late_seconds`` after its slot takes a new one (once)."""
    row: Record | None = await pool.fetchrow(
        f"""
        WITH cand AS MATERIALIZED (
            SELECT b.id, b.message_id, b.app_id, b.platform,
                   cardinality(b.installation_ids) AS n
            FROM batches b WHERE b.id = $1 AND {_CLAIMABLE} FOR UPDATE
        ), permit AS MATERIALIZED (
            SELECT send_permit(cand.id, cand.message_id, cand.app_id, cand.platform, cand.n,
                               $3) AS wait
            FROM cand
        ), b AS (
            UPDATE batches b SET state = 'sending', claims = b.claims + 1,
                lease_until = now() + make_interval(secs => $2)
            FROM permit
            WHERE b.id = $1 AND permit.wait <= 0
            RETURNING {_CLAIMED}
        ), loaded AS ({_LOADED})
        SELECT permit.wait AS permit_wait, (SELECT platform FROM cand) AS permit_platform,
               loaded.*
        FROM permit LEFT JOIN loaded ON true
        """,
        batch_id,
        lease_seconds,
        late_seconds,
    )
    if row is None:
        return None
    if row["id"] is None:
        wait: float = row["permit_wait"]
        return Claim(None, wait, row["permit_platform"]) if wait > 0 else None
    return Claim(row)


async def load(pool: Pool, batch_id: int) -> Record | None:
    """What :func:`claim` loads for a batch, without claiming it (whatever its state): the
    batch-load cost measured on its own (``benchmarks/templates``)."""
    row: Record | None = await pool.fetchrow(
        f"WITH b AS (SELECT {_CLAIMED} FROM batches b WHERE b.id = $1) {_LOADED}", batch_id
    )
    return row


async def extend_leases(
    pool: Pool, batch_ids: list[int], claims: list[int], lease_seconds: float
) -> int:
    """Extend the leases this worker still holds (same claim number, still sending);
    return how many it still holds."""
    held: int = await pool.fetchval(
        """
        WITH x AS (
            UPDATE batches b SET lease_until = now() + make_interval(secs => $3)
            FROM unnest($1::bigint[], $2::int[]) AS t(id, claim)
            WHERE b.id = t.id AND b.claims = t.claim AND b.state = 'sending'
            RETURNING 1
        ) SELECT count(*) FROM x
        """,
        batch_ids,
        claims,
        lease_seconds,
    )
    return held


async def claim_lane(
    pool: Pool, limit: int, lease_seconds: float, platforms: Sequence[str]
) -> list[Record]:
    """Claim up to ``limit`` due lane batches of any message on ``platforms`` (those whose
    queues the worker consumes), oldest first; batches other workers hold are skipped, not
    waited for.

    Lane batches wait for no rate limit (a transactional message never waits behind a
    campaign), but they are charged to their app's quotas: the quota buckets move on by
    what the claim took, so the app's campaign batches leave that room to them.  The quota
    rows are locked in key order (``quota_locks``), as every claim of one row does."""
    rows: list[Record] = await pool.fetch(
        f"""
        WITH pick AS (
            SELECT b.id FROM batches b
            WHERE b.lane AND b.state <> 'done' AND b.platform = ANY($3::text[])
              AND {_CLAIMABLE}
            ORDER BY b.id LIMIT $1
            FOR UPDATE SKIP LOCKED
        ), b AS (
            UPDATE batches b SET state = 'sending', claims = b.claims + 1,
                lease_until = now() + make_interval(secs => $2)
            FROM pick WHERE b.id = pick.id
            RETURNING {_CLAIMED}
        ), used AS (
            SELECT b.app_id, b.platform, sum(cardinality(b.installation_ids)) AS n
            FROM b GROUP BY b.app_id, b.platform
        ), quota_locks AS (
            SELECT q.app_id, q.platform FROM app_quotas q
            WHERE (q.app_id, q.platform) IN (SELECT app_id, platform FROM used)
            ORDER BY q.app_id, q.platform FOR UPDATE
        ), charged AS (
            UPDATE app_quotas q
            SET tat = greatest(q.tat, clock_timestamp())
                      + make_interval(secs => ceil(used.n * q.spacing * 1e6) / 1e6)
            FROM used, quota_locks l
            WHERE l.app_id = q.app_id AND l.platform = q.platform
              AND used.app_id = q.app_id AND used.platform = q.platform
        ) {_LOADED} ORDER BY b.id
        """,
        limit,
        lease_seconds,
        list(platforms),
    )
    return rows


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What sending one claimed batch came to, as :func:`finish` writes it."""

    batch_id: int
    claim: int
    delivered: int
    failed: int
    reasons: dict[str, int]
    invalid_ids: list[int]
    invalid_tokens: list[str]
    invalid_reasons: list[str]
    retry_ids: list[int]
    retry_delay: float
    sender_error: str | None
    # per-recipient results (batch_results): distinct labels, one byte per planned id
    labels: list[str]
    codes: bytes


@dataclass(frozen=True, slots=True)
class Finished:
    """What :func:`finish` wrote: the batches this worker still owned (others' results
    were dropped: their lease had expired), each message's status after it, registrations
    deleted per batch, and the retry batches to enqueue on the broker (lane retries are
    claimed from the ledger when due, so they are not among them)."""

    owned: list[int]
    statuses: dict[int, str]
    deleted: dict[int, int]
    retries: list[tuple[int, str, float]]  # (batch id, platform, seconds until due)


async def finish(pool: Pool, results: list[BatchResult]) -> Finished:
    """Write the results of claimed batches, of one message or many, in one statement.

    Per batch: its state and counts, only while this worker still holds its claim.  Per
    message: the counters (summed over its batches), its status (``done`` when no batch is
    left open; ``failed`` at a sender error) and its last errors.  Deletion is race-safe: a
    registration is deleted only if its token is still the one that was sent to (a token
    refreshed meanwhile stays, counted as failed ``token_changed``).  A retry batch is
    written only while the message is still being sent and no batch of it in this write had
    a sender error (otherwise its registrations count as failed ``not_retried``).  Messages
    are locked in id order, so two workers writing overlapping messages cannot deadlock."""
    results = sorted(results, key=lambda r: r.batch_id)
    inv = [
        (r.batch_id, i, t, why)
        for r in results
        for i, t, why in zip(r.invalid_ids, r.invalid_tokens, r.invalid_reasons, strict=True)
    ]
    retry = [(r.batch_id, i) for r in results for i in r.retry_ids]
    row = await pool.fetchrow(
        _FINISH,
        [r.batch_id for r in results],
        [r.claim for r in results],
        [r.delivered for r in results],
        [r.failed for r in results],
        [r.reasons for r in results],
        [r.sender_error for r in results],
        [r.retry_delay for r in results],
        [b for b, _, _, _ in inv],
        [i for _, i, _, _ in inv],
        [t for _, _, t, _ in inv],
        [b for b, _ in retry],
        [i for _, i in retry],
        [r.codes for r in results],
        # a dict, not the list itself: asyncpg would take a list of lists for a 2-D array
        [{"labels": r.labels} for r in results],
        [why for _, _, _, why in inv],
    )
    assert row is not None  # the final SELECT always returns one row
    return Finished(
        owned=list(row["owned"]),
        statuses={int(k): v for k, v in row["statuses"].items()},
        deleted={int(k): int(v) for k, v in row["deleted"].items()},
        retries=list(
            zip(row["retry_ids"], row["retry_platforms"], row["retry_delays"], strict=True)
        ),
    )


_FINISH = """
WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::int[], $4::int[], $5::jsonb[],
                         $6::text[], $7::float8[], $13::bytea[], $14::jsonb[])
        AS t(id, claim, delivered, failed, reasons, sender_error, retry_delay, codes, labels)
), retry_in AS (
    SELECT r.bid, array_agg(r.iid ORDER BY r.iid) AS ids
    FROM unnest($11::bigint[], $12::bigint[]) AS r(bid, iid) GROUP BY r.bid
), b AS (
    UPDATE batches bt SET state = 'done', delivered = i.delivered, failed = i.failed,
        retried = coalesce(cardinality(ri.ids), 0), finished_at = now(), lease_until = NULL
    FROM input i LEFT JOIN retry_in ri ON ri.bid = i.id
    WHERE bt.id = i.id AND bt.claims = i.claim AND bt.state = 'sending'
    RETURNING bt.id, bt.message_id, bt.app_id, bt.platform, bt.attempt, bt.lane,
              cardinality(bt.installation_ids) AS size, i.delivered, i.failed, i.reasons,
              i.sender_error, i.retry_delay, ri.ids AS retry_ids, i.codes, i.labels,
              bt.installation_ids AS planned, bt.tokens AS raw_tokens, bt.p256dh AS raw_p256dh,
              bt.auth AS raw_auth, bt.due_at, bt.expires_at
), mm AS (
    SELECT m.id, m.status IN ('scheduled', 'queued', 'sending') AS open,
           m.status AS old_status
    FROM messages m WHERE m.id IN (SELECT message_id FROM b)
    ORDER BY m.id
    FOR UPDATE OF m
), merr AS (
    SELECT b.message_id, min(b.sender_error) AS sender_error FROM b GROUP BY b.message_id
), del AS (
    DELETE FROM installations i
    USING unnest($8::bigint[], $9::bigint[], $10::text[], $15::text[])
          AS d(bid, id, token, reason), b
    WHERE b.id = d.bid AND d.id > 0 AND i.id = d.id AND i.token = d.token
      AND i.app_id = b.app_id
    RETURNING d.bid, i.id, i.public_id, i.user_id, d.reason
), del_raw AS (
    -- a dead raw token deletes the app's registration of the same address, if any
    DELETE FROM installations i
    USING unnest($8::bigint[], $9::bigint[], $10::text[], $15::text[])
          AS d(bid, id, token, reason), b
    WHERE b.id = d.bid AND d.id < 0 AND b.raw_tokens IS NOT NULL AND i.app_id = b.app_id
      AND i.platform = b.platform AND i.token_digest = token_digest(d.token)
      AND i.token = d.token
    RETURNING d.bid, i.id, i.public_id, i.user_id, d.reason
), removed AS (
    -- what the results route shows of a deleted registration: its row is gone
    SELECT del.bid, jsonb_object_agg(del.id::text, jsonb_build_array(del.public_id,
                                                                     u.external_id)) AS ids
    FROM del LEFT JOIN users u ON u.id = del.user_id GROUP BY del.bid
), pb AS (
    SELECT b.id, b.message_id, b.app_id, b.platform, b.attempt, b.lane, b.size,
           b.delivered, b.failed, b.reasons, b.retry_delay, b.retry_ids, b.codes, b.labels,
           b.planned, b.raw_tokens, b.raw_p256dh, b.raw_auth, b.raw_tokens IS NOT NULL AS raw,
           b.due_at, b.expires_at,
           (SELECT count(*) FROM del WHERE del.bid = b.id) AS deleted,
           (SELECT count(*) FROM unnest($8::bigint[]) AS x(bid) WHERE x.bid = b.id) AS invalid_n,
           coalesce(cardinality(b.retry_ids), 0) AS retry_n,
           (b.retry_ids IS NOT NULL AND mm.open AND merr.sender_error IS NULL) AS retried
    FROM b JOIN mm ON mm.id = b.message_id JOIN merr ON merr.message_id = b.message_id
), retry AS (
    INSERT INTO batches (message_id, app_id, platform, installation_ids, attempt, not_before,
                         lane, due_at, expires_at, tokens, p256dh, auth)
    SELECT pb.message_id, pb.app_id, pb.platform, pb.retry_ids, pb.attempt + 1,
           clock_now() + make_interval(secs => pb.retry_delay), pb.lane, pb.due_at,
           pb.expires_at,
           -- a raw-token retry takes its addresses along, in the order of its ids
           CASE WHEN pb.raw THEN ARRAY(
               SELECT pb.raw_tokens[x.k] FROM unnest(pb.planned) WITH ORDINALITY AS x(id, k)
               WHERE x.id = ANY(pb.retry_ids) ORDER BY x.id) END,
           CASE WHEN pb.raw THEN ARRAY(
               SELECT pb.raw_p256dh[x.k] FROM unnest(pb.planned) WITH ORDINALITY AS x(id, k)
               WHERE x.id = ANY(pb.retry_ids) ORDER BY x.id) END,
           CASE WHEN pb.raw THEN ARRAY(
               SELECT pb.raw_auth[x.k] FROM unnest(pb.planned) WITH ORDINALITY AS x(id, k)
               WHERE x.id = ANY(pb.retry_ids) ORDER BY x.id) END
    FROM pb WHERE pb.retried
    RETURNING id, platform, lane, extract(epoch FROM not_before - clock_now())::float8 AS delay
), results AS (
    -- a retry that is not written (the message stopped) is the recipient's last answer:
    -- its "retry/<reason>" label becomes "failed/not_retried:<reason>"
    INSERT INTO batch_results (batch_id, message_id, attempt, labels, codes, removed)
    SELECT pb.id, pb.message_id, pb.attempt,
           ARRAY(SELECT CASE WHEN pb.retried THEN l
                             ELSE regexp_replace(l, '^retry/', 'failed/not_retried:') END
                 FROM jsonb_array_elements_text(pb.labels -> 'labels')
                      WITH ORDINALITY AS x(l, k)
                 ORDER BY k),
           pb.codes, rm.ids
    FROM pb LEFT JOIN removed rm ON rm.bid = pb.id
), pm AS (
    SELECT pb.message_id,
           sum(pb.delivered) AS delivered,
           sum(pb.failed) AS failed,
           sum(pb.deleted) AS deleted,
           sum(CASE WHEN pb.raw THEN pb.invalid_n ELSE 0 END) AS raw_invalid,
           sum(CASE WHEN pb.raw THEN 0 ELSE pb.invalid_n - pb.deleted END) AS token_changed,
           sum(CASE WHEN pb.retried THEN 0 ELSE pb.retry_n END) AS not_retried,
           sum(CASE WHEN pb.retried THEN pb.retry_n ELSE 0 END)
             - sum(CASE WHEN pb.attempt > 0 THEN pb.size ELSE 0 END) AS retrying_delta,
           count(*) FILTER (WHERE pb.retried) - count(*) AS open_delta
    FROM pb GROUP BY pb.message_id
), rs AS (
    SELECT x.message_id, jsonb_object_agg(x.key, x.n) AS counts
    FROM (
        SELECT pb.message_id, e.key, sum(e.value::bigint) AS n
        FROM pb CROSS JOIN LATERAL jsonb_each_text(pb.reasons) AS e
        GROUP BY pb.message_id, e.key
    ) x GROUP BY x.message_id
), upd AS (
    UPDATE messages m SET
        delivered = m.delivered + pm.delivered,
        invalid_removed = m.invalid_removed + pm.deleted,
        invalid = m.invalid + pm.raw_invalid,
        failed = m.failed + pm.failed + pm.token_changed + pm.not_retried,
        retrying = m.retrying + pm.retrying_delta,
        open_batches = m.open_batches + pm.open_delta,
        failure_reasons = add_counts(m.failure_reasons, coalesce(rs.counts, '{}')
            || jsonb_build_object('token_changed', pm.token_changed)
            || jsonb_build_object('not_retried', pm.not_retried)),
        errors = CASE WHEN merr.sender_error IS NULL THEN m.errors
            ELSE (SELECT coalesce(jsonb_agg(e), '[]') FROM (
                    SELECT e FROM jsonb_array_elements(m.errors || to_jsonb(merr.sender_error))
                                  WITH ORDINALITY AS x(e, k)
                    ORDER BY k DESC LIMIT {MAX_ERRORS}) last) END,
        status = CASE
            WHEN merr.sender_error IS NOT NULL AND m.status IN ('scheduled', 'queued', 'sending')
                THEN 'failed'
            WHEN m.status IN ('scheduled', 'queued', 'sending') AND m.planned
                 AND m.open_batches + pm.open_delta = 0 THEN 'done'
            ELSE m.status END,
        finished_at = CASE
            WHEN m.finished_at IS NULL AND (merr.sender_error IS NOT NULL OR (m.planned
                 AND m.open_batches + pm.open_delta = 0)) THEN now()
            ELSE m.finished_at END
    FROM pm JOIN merr ON merr.message_id = pm.message_id
         LEFT JOIN rs ON rs.message_id = pm.message_id
    WHERE m.id = pm.message_id
    RETURNING {MESSAGE_COLUMNS}
), hook_status AS ({STATUS_EVENTS}
), hook_removed AS ({REMOVED_EVENTS}
), hook_tokens AS ({TOKEN_EVENTS}
)
SELECT coalesce((SELECT array_agg(b.id ORDER BY b.id) FROM b), '{}') AS owned,
       coalesce((SELECT jsonb_object_agg(upd.id::text, upd.status) FROM upd), '{}') AS statuses,
       coalesce((SELECT jsonb_object_agg(x.bid::text, x.n)
                 FROM (SELECT bid, count(*) AS n
                       FROM (SELECT bid FROM del UNION ALL SELECT bid FROM del_raw) d
                       GROUP BY bid) x), '{}') AS deleted,
       coalesce((SELECT array_agg(id ORDER BY id) FROM retry WHERE NOT lane), '{}')
           AS retry_ids,
       coalesce((SELECT array_agg(platform ORDER BY id) FROM retry WHERE NOT lane), '{}')
           AS retry_platforms,
       coalesce((SELECT array_agg(delay ORDER BY id) FROM retry WHERE NOT lane), '{}')
           AS retry_delays
"""
# Webhook events in the same statement (committed with the change they report): the
# messages' status changes, registrations deleted as dead and dead raw tokens, up to
# WEBHOOK_LIST items per event.
WEBHOOK_LIST = 1000
_REMOVED = f"""(
    SELECT r.app_id, u.public_id AS message_id,
           jsonb_agg(jsonb_build_object('installation_id', r.public_id,
                     'external_user_id', r.external_id, 'platform', r.platform,
                     'reason', r.reason) ORDER BY r.n) AS list
    FROM (SELECT dl.*, b.app_id, b.platform, b.message_id, usr.external_id,
                 row_number() OVER (PARTITION BY dl.bid ORDER BY dl.id) AS n
          FROM (SELECT bid, id, public_id, user_id, reason FROM del
                UNION ALL SELECT bid, id, public_id, user_id, reason FROM del_raw) dl
          JOIN b ON b.id = dl.bid LEFT JOIN users usr ON usr.id = dl.user_id) r
    JOIN upd u ON u.id = r.message_id
    GROUP BY r.bid, r.app_id, u.public_id, (r.n - 1) / {WEBHOOK_LIST}) ev"""
_TOKENS = f"""(
    SELECT b.app_id, u.public_id AS message_id,
           jsonb_agg(jsonb_build_object('platform', b.platform, 'token', d.token,
                     'reason', d.reason) ORDER BY d.n) AS list
    FROM (SELECT x.*, row_number() OVER (PARTITION BY x.bid ORDER BY x.id DESC) AS n
          FROM unnest($8::bigint[], $9::bigint[], $10::text[], $15::text[])
               AS x(bid, id, token, reason) WHERE x.id < 0) d
    JOIN b ON b.id = d.bid AND b.raw_tokens IS NOT NULL
    JOIN upd u ON u.id = b.message_id
    GROUP BY d.bid, b.app_id, u.public_id, (d.n - 1) / {WEBHOOK_LIST}) ev"""
_FINISH = (
    _FINISH.replace("{MAX_ERRORS}", str(MAX_ERRORS))
    .replace("{MESSAGE_COLUMNS}", webhooks.MESSAGE_COLUMNS)
    .replace(
        "{STATUS_EVENTS}",
        webhooks.status_events("upd u JOIN mm ON mm.id = u.id", "mm.old_status"),
    )
    .replace(
        "{REMOVED_EVENTS}",
        webhooks.outbox_insert(
            _REMOVED,
            app_id="ev.app_id",
            type_="'registrations.removed'",
            data="jsonb_build_object('message_id', ev.message_id, 'registrations', ev.list)",
        ),
    )
    .replace(
        "{TOKEN_EVENTS}",
        webhooks.outbox_insert(
            _TOKENS,
            app_id="ev.app_id",
            type_="'tokens.invalid'",
            data="jsonb_build_object('message_id', ev.message_id, 'tokens', ev.list)",
        ),
    )
)
