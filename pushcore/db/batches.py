"""The send path's two statements per batch: claim (with the tokens), and finish.

Claim takes the batch under a lease and loads everything the send needs in the same
statement: the registrations still there, the message's state and notification, the app's
credentials for the batch's platform.  Finish writes every result of the batch in one
statement: the batch's state, the message's counters and status, the dead registrations
deleted, and the retry batch.  Both are guarded by the batch's claim number, so a worker
that lost its lease changes nothing.
"""

from __future__ import annotations

from pushcore.db.pool import Pool, Record

MAX_ERRORS = 20


async def claim(pool: Pool, batch_id: int, lease_seconds: float) -> Record | None:
    """Claim a queued (or abandoned: lease expired) batch that is due; None when another
    worker holds it, it is finished, or its back-off has not elapsed."""
    row: Record | None = await pool.fetchrow(
        """
        WITH b AS (
            UPDATE batches b SET state = 'sending', claims = b.claims + 1,
                lease_until = now() + make_interval(secs => $2)
            WHERE b.id = $1
              AND (b.state = 'queued' OR (b.state = 'sending' AND b.lease_until < now()))
              AND (b.not_before IS NULL OR b.not_before <= now() + interval '1 second')
            RETURNING b.id, b.claims, b.message_id, b.app_id, b.platform, b.attempt,
                      b.installation_ids
        )
        SELECT b.id, b.claims, b.message_id, b.app_id, b.platform, b.attempt,
               cardinality(b.installation_ids) AS size,
               m.status, m.notification, m.expires_at < now() AS expired,
               c.updated_at AS credentials_version, c.credentials,
               r.ids, r.tokens, r.p256dh, r.auth
        FROM b
        JOIN messages m ON m.id = b.message_id
        LEFT JOIN app_credentials c ON c.app_id = b.app_id AND c.platform = b.platform
        CROSS JOIN LATERAL (
            SELECT coalesce(array_agg(i.id ORDER BY i.id), '{}') AS ids,
                   coalesce(array_agg(i.token ORDER BY i.id), '{}') AS tokens,
                   coalesce(array_agg(i.p256dh ORDER BY i.id), '{}') AS p256dh,
                   coalesce(array_agg(i.auth ORDER BY i.id), '{}') AS auth
            FROM installations i
            WHERE i.id = ANY(b.installation_ids) AND i.push_enabled
        ) r
        """,
        batch_id,
        lease_seconds,
    )
    return row


async def finish(
    pool: Pool,
    *,
    batch_id: int,
    claim: int,
    delivered: int,
    failed: int,
    reasons: dict[str, int],
    invalid_ids: list[int],
    invalid_tokens: list[str],
    retry_ids: list[int],
    retry_delay: float,
    sender_error: str | None,
) -> Record | None:
    """Write the batch's results; None when this worker no longer owns the batch.

    Deletion is race-safe: a registration is deleted only if its token is still the one
    that was sent to (a token refreshed meanwhile stays, counted as failed
    ``token_changed``).  The retry batch is written only while the message is still being
    sent (after a cancel or a sender error its registrations count as failed)."""
    row: Record | None = await pool.fetchrow(
        """
        WITH b AS (
            UPDATE batches SET state = 'done', delivered = $3, failed = $4,
                retried = cardinality($8::bigint[]), finished_at = now(), lease_until = NULL
            WHERE id = $1 AND claims = $2 AND state = 'sending'
            RETURNING id, message_id, app_id, platform, attempt,
                      cardinality(installation_ids) AS size
        ), mm AS (
            SELECT m.id, m.status IN ('queued', 'sending') AND $10::text IS NULL AS live
            FROM messages m JOIN b ON m.id = b.message_id
            FOR UPDATE OF m
        ), del AS (
            DELETE FROM installations i
            USING unnest($6::bigint[], $7::text[]) AS d(id, token), b
            WHERE i.id = d.id AND i.token = d.token AND i.app_id = b.app_id
            RETURNING i.id
        ), retry AS (
            INSERT INTO batches (message_id, app_id, platform, installation_ids, attempt,
                                 not_before)
            SELECT b.message_id, b.app_id, b.platform, $8::bigint[], b.attempt + 1,
                   now() + make_interval(secs => $9)
            FROM b, mm WHERE cardinality($8::bigint[]) > 0 AND mm.live
            RETURNING id, platform
        ), n AS (
            SELECT (SELECT count(*) FROM del) AS deleted,
                   (SELECT count(*) FROM retry) AS retry_batches,
                   cardinality($6::bigint[]) - (SELECT count(*) FROM del) AS token_changed,
                   CASE WHEN EXISTS (SELECT 1 FROM retry) THEN 0
                        ELSE cardinality($8::bigint[]) END AS retries_dropped
        ), upd AS (
            UPDATE messages m SET
                delivered = m.delivered + $3,
                invalid_removed = m.invalid_removed + n.deleted,
                failed = m.failed + $4 + n.token_changed + n.retries_dropped,
                retrying = m.retrying - CASE WHEN b.attempt > 0 THEN b.size ELSE 0 END
                           + CASE WHEN n.retry_batches > 0 THEN cardinality($8::bigint[])
                                  ELSE 0 END,
                open_batches = m.open_batches - 1 + n.retry_batches,
                failure_reasons = add_counts(m.failure_reasons, $5::jsonb
                    || jsonb_build_object('token_changed', n.token_changed)
                    || jsonb_build_object('not_retried', n.retries_dropped)),
                errors = CASE WHEN $10::text IS NULL THEN m.errors
                    ELSE (SELECT coalesce(jsonb_agg(e), '[]') FROM (
                            SELECT e FROM jsonb_array_elements(m.errors || to_jsonb($10::text))
                                          WITH ORDINALITY AS x(e, k)
                            ORDER BY k DESC LIMIT {MAX_ERRORS}) last) END,
                status = CASE
                    WHEN $10::text IS NOT NULL AND m.status IN ('queued', 'sending') THEN 'failed'
                    WHEN m.status IN ('queued', 'sending') AND m.planned
                         AND m.open_batches - 1 + n.retry_batches = 0 THEN 'done'
                    ELSE m.status END,
                finished_at = CASE
                    WHEN m.finished_at IS NULL AND ($10::text IS NOT NULL OR (m.planned
                         AND m.open_batches - 1 + n.retry_batches = 0)) THEN now()
                    ELSE m.finished_at END
            FROM b, n WHERE m.id = b.message_id
            RETURNING m.status
        )
        SELECT (SELECT status FROM upd) AS status, (SELECT deleted FROM n) AS deleted,
               (SELECT id FROM retry) AS retry_id, (SELECT platform FROM retry) AS retry_platform
        WHERE EXISTS (SELECT 1 FROM b)
        """.replace("{MAX_ERRORS}", str(MAX_ERRORS)),
        batch_id,
        claim,
        delivered,
        failed,
        reasons,
        invalid_ids,
        invalid_tokens,
        retry_ids,
        retry_delay,
        sender_error,
    )
    return row
