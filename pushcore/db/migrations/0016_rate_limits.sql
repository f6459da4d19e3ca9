-- depends: 0015_batch_not_before
-- Cluster-wide rate limits: a send's `rate_per_minute` and an app's per-provider quotas.
-- Each is a bucket row scheduled GCRA-style: `tat` is the earliest time its next batch may
-- start, `spacing` the seconds each notification occupies (set by the application from
-- the rate and the largest batch it lets through, so that no 60-second window gets more
-- than the rate).  A batch takes a permit in its claim statement (send_permit below); when
-- the buckets are busy it reserves the next slot instead (a rate_permits row, charged
-- then) and comes back at it, so waiting batches never poll and never hold a lease.
CREATE TABLE message_rates (
    message_id  bigint PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    per_minute  integer NOT NULL CHECK (per_minute > 0),
    spacing     float8 NOT NULL CHECK (spacing > 0),
    tat         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE app_quotas (
    app_id      bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    platform    text NOT NULL,
    per_minute  integer NOT NULL CHECK (per_minute > 0),
    spacing     float8 NOT NULL CHECK (spacing > 0),
    tat         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, platform)
);

-- A slot reserved (and charged) for a batch that could not start at once; used up by the
-- claim that sends it.  A batch whose worker died is claimed at its slot by the reaper's
-- re-enqueue and finds its permit still here: it is never charged twice.  `retaken`: the
-- batch came back too late for its first slot and got this second one.
CREATE TABLE rate_permits (
    batch_id    bigint PRIMARY KEY REFERENCES batches (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    retaken     boolean NOT NULL DEFAULT false
);

-- The permit of one claimable batch (its row locked by the caller): 0 when it may start
-- now, else the seconds until its reserved slot.  Locks the app's quota row, then the
-- message's rate row (always in that order: no deadlock), so concurrent claims of one
-- bucket serialize for the length of a claim.  A message no longer sending is decided
-- without sending: no permit needed.  A batch with no bucket costs two index probes.
--
-- A batch back more than `p_late` seconds after its slot (the broker late, every thread
-- busy) does not send then: late batches would bunch up and burst.  It takes a new slot
-- instead, once (a second late return sends: under a backlog that outlasts a slot, better
-- late than never); the buckets are spaced for sends up to `p_late` after their slots.
-- Steps are rounded up to whole microseconds, timestamptz's resolution: rounding down
-- would add up to a permit early in a window.
CREATE FUNCTION send_permit(p_batch bigint, p_message bigint, p_app bigint,
                            p_platform text, p_size integer, p_late float8) RETURNS float8
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    reserved timestamptz;
    was_retaken boolean;
    retaking boolean := false;
    q_tat timestamptz;
    q_spacing float8;
    m_tat timestamptz;
    m_spacing float8;
    slot timestamptz;
BEGIN
    SELECT at, retaken INTO reserved, was_retaken FROM rate_permits
        WHERE batch_id = p_batch FOR UPDATE;
    IF FOUND THEN
        IF reserved > clock_timestamp() + interval '20 milliseconds' THEN
            RETURN extract(epoch FROM reserved - clock_timestamp());  -- early: keep it
        END IF;
        DELETE FROM rate_permits WHERE batch_id = p_batch;
        IF was_retaken OR reserved >= clock_timestamp() - make_interval(secs => p_late) THEN
            RETURN 0;
        END IF;
        retaking := true;
    END IF;
    SELECT tat, spacing INTO q_tat, q_spacing FROM app_quotas
        WHERE app_id = p_app AND platform = p_platform FOR UPDATE;
    SELECT tat, spacing INTO m_tat, m_spacing FROM message_rates
        WHERE message_id = p_message FOR UPDATE;
    IF q_spacing IS NULL AND m_spacing IS NULL THEN
        RETURN 0;
    END IF;
    -- (`scheduled`: a local-time message sends while its later zones are still held)
    IF NOT EXISTS (SELECT 1 FROM messages WHERE id = p_message
                   AND status IN ('scheduled', 'queued', 'sending')) THEN
        RETURN 0;
    END IF;
    -- clock_timestamp(), not now(): the statement may have waited on the row locks
    slot := greatest(clock_timestamp(), coalesce(q_tat, '-infinity'),
                     coalesce(m_tat, '-infinity'));
    IF q_spacing IS NOT NULL THEN
        UPDATE app_quotas SET tat = slot + make_interval(secs => ceil(p_size * q_spacing * 1e6) / 1e6)
            WHERE app_id = p_app AND platform = p_platform;
    END IF;
    IF m_spacing IS NOT NULL THEN
        UPDATE message_rates SET tat = slot + make_interval(secs => ceil(p_size * m_spacing * 1e6) / 1e6)
            WHERE message_id = p_message;
    END IF;
    IF slot <= clock_timestamp() + interval '20 milliseconds' THEN
        RETURN 0;
    END IF;
    INSERT INTO rate_permits (batch_id, at, retaken) VALUES (p_batch, slot, retaking);
    -- not handed out again by the reaper before its slot (it re-enqueues only batches
    -- due for a while without a claim)
    UPDATE batches SET not_before = slot, enqueued_at = now() WHERE id = p_batch;
    RETURN extract(epoch FROM slot - clock_timestamp());
END;
$$;
