-- Local-time delivery (`send_at_local`): a message's batches are written per effective time
-- zone, each with its own instant in `not_before`, and are neither claimed nor enqueued
-- before it.  (`batches.not_before` itself dates from the fan-out ledger, where it holds
-- the back-off of retry batches; the claim already refuses a batch before it.)
-- depends: 0014_webhook_outbox_per_endpoint

-- The instant the batch's recipients are due (their wall-clock time in their zone);
-- retries copy it.  Their TTL and the retry window count from it, not from the message.
ALTER TABLE batches ADD COLUMN due_at timestamptz;
ALTER TABLE batches ADD COLUMN expires_at timestamptz;
-- Written before its time: no broker message exists for it until the reaper's release pass
-- clears the flag at `not_before` (the ledger, not a broker delay of up to ~27 h, is what
-- remembers it).  Counted in `messages.waiting` while set.
ALTER TABLE batches ADD COLUMN held boolean NOT NULL DEFAULT false;
-- The release pass: held batches by due time (released ones drop out of the index).
CREATE INDEX batches_held ON batches (not_before) WHERE held;

-- The planner reads a local-time message's `all`/`tags` audience in (zone, id) order, so
-- that each page holds few zones and its batches stay full.  Registration pays one more
-- index entry per installation (an update that leaves `device` alone stays HOT).
CREATE INDEX installations_zone_keyset
    ON installations (app_id, platform, (coalesce(device ->> 'time_zone', '')), id)
    WHERE push_enabled;

-- Recipients in held batches: the message stays `scheduled` while any are planned or
-- waiting.  Kept by the statements that hold or release batches, so reading it is free.
ALTER TABLE messages ADD COLUMN waiting bigint NOT NULL DEFAULT 0;
-- A local-time message: the clock when it was accepted.  Recipients whose local time was
-- already before it are skipped (counted failed, reason `local_time_passed`).
ALTER TABLE messages ADD COLUMN local_from timestamptz;

-- The clock that decides when scheduled sends, local-time batches and retries are due, and
-- when a TTL has run out: now(), shifted by the session's `pushcore.clock_offset` seconds
-- (PUSHCORE_CLOCK_OFFSET_SECONDS, set on every pooled connection; 0 in production).
CREATE FUNCTION clock_now() RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT now() + make_interval(secs => coalesce(
            nullif(current_setting('pushcore.clock_offset', true), '')::float8, 0))
    $$;
