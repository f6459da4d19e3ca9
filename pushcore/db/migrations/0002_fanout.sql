-- Messages and the batch ledger of the fan-out engine.
-- depends: 0001_registry
--
-- PostgreSQL is the source of truth for every message and batch; Redis only carries batch ids.
-- A batch is a list of installation ids of one platform; the Dramatiq message that points at it
-- can be lost, duplicated or redelivered without harm because every state change is a guarded
-- UPDATE (state and claim number) done in one statement.

-- Adds per-reason counters: {"expired": 3} + {"expired": 1, "gone": 2} = {"expired": 4, "gone": 2}
CREATE FUNCTION add_counts(a jsonb, b jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
        SELECT coalesce(a, '{}') || coalesce((
            SELECT jsonb_object_agg(key, coalesce((a ->> key)::bigint, 0) + value::bigint)
            FROM jsonb_each_text(coalesce(b, '{}'))
            WHERE value::bigint <> 0
        ), '{}')
    $$;

CREATE TABLE messages (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    public_id        uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    app_id           bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    status           text NOT NULL
        CHECK (status IN ('scheduled', 'queued', 'sending', 'done', 'cancelled', 'failed')),
    -- the send request as accepted (target, options) and the notification to render; the
    -- request may hold a list of 100,000 ids, so workers read only the notification
    request          jsonb NOT NULL,
    notification     jsonb NOT NULL,
    platforms        text[] NOT NULL,
    primary_only     boolean NOT NULL DEFAULT false,
    send_at          timestamptz,
    expires_at       timestamptz,            -- (send_at or created_at) + ttl_seconds
    idempotency_key  text,
    -- planning is resumable: plan_cursor says how far it got; plan_claims fences a planner
    -- whose lease expired (it can no longer write)
    plan_cursor      jsonb NOT NULL DEFAULT '{}',
    planned          boolean NOT NULL DEFAULT false,
    plan_claims      integer NOT NULL DEFAULT 0,
    plan_lease_until timestamptz,
    open_batches     integer NOT NULL DEFAULT 0,
    -- counters; pending = targeted - delivered - invalid_removed - failed - retrying
    targeted         bigint NOT NULL DEFAULT 0,
    delivered        bigint NOT NULL DEFAULT 0,
    invalid_removed  bigint NOT NULL DEFAULT 0,
    failed           bigint NOT NULL DEFAULT 0,
    retrying         bigint NOT NULL DEFAULT 0,
    opened           bigint NOT NULL DEFAULT 0,
    failure_reasons  jsonb NOT NULL DEFAULT '{}',  -- reason -> count of failed
    errors           jsonb NOT NULL DEFAULT '[]',  -- sender errors, newest last (bounded)
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    CHECK (open_batches >= 0)
);

-- Listing recent messages of an app (keyset on id).
CREATE INDEX messages_app_recent ON messages (app_id, id DESC);
-- An idempotency key is unique per app while it is held; after 24 h the API releases it
-- (sets it to NULL on the old message) before reusing it.
CREATE UNIQUE INDEX messages_idempotency ON messages (app_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The reaper's scan: messages waiting for their plan job or their send_at.
CREATE INDEX messages_unplanned ON messages (created_at)
    WHERE NOT planned AND status IN ('scheduled', 'queued', 'sending');

CREATE TABLE batches (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id       bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    app_id           bigint NOT NULL,
    platform         text NOT NULL CHECK (platform IN ('ios', 'android', 'web')),
    installation_ids bigint[] NOT NULL,
    attempt          smallint NOT NULL DEFAULT 0,   -- 0: first delivery; n: n-th retry
    state            text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'sending', 'done')),
    -- each claim increments claims; a worker may only finish the claim it holds, so a worker
    -- whose lease expired (and whose batch was handed to another) cannot overwrite results
    claims           integer NOT NULL DEFAULT 0,
    lease_until      timestamptz,
    not_before       timestamptz,                   -- back-off of retry batches
    enqueued_at      timestamptz NOT NULL DEFAULT now(),
    delivered        integer NOT NULL DEFAULT 0,
    failed           integer NOT NULL DEFAULT 0,
    retried          integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);

CREATE INDEX batches_message ON batches (message_id);
-- The reaper's two scans, kept small by partial indexes (finished batches drop out).
CREATE INDEX batches_leased ON batches (lease_until) WHERE state = 'sending';
CREATE INDEX batches_waiting ON batches (enqueued_at) WHERE state = 'queued';
