-- Raw-token sends: the addresses of a `tokens` target are in no registry, so their batches
-- carry them.  `installation_ids` then numbers them -1, -2, ... (no installation has a
-- negative id) and `tokens` / `p256dh` / `auth` are aligned with it; they stay NULL for the
-- registry's batches, whose addresses are loaded from `installations` at claim.
-- A raw token answered dead deletes nothing it does not match in the registry, and is
-- counted in `messages.invalid` (not `invalid_removed`).
-- depends: 0009_results
ALTER TABLE batches ADD COLUMN tokens text[];
ALTER TABLE batches ADD COLUMN p256dh text[];
ALTER TABLE batches ADD COLUMN auth text[];
ALTER TABLE messages ADD COLUMN invalid integer NOT NULL DEFAULT 0;

-- Webhooks: an app's endpoints, and the outbox their events wait in.
CREATE TABLE webhooks (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    public_id       uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    app_id          bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    url             text NOT NULL,
    events          text[] NOT NULL,
    description     text,
    -- the Standard Webhooks signing secret (whsec_...): needed in the clear to sign, so
    -- write-only through the API (shown once) and never logged
    secret          text NOT NULL,
    enabled         boolean NOT NULL DEFAULT true,
    disabled_reason text,
    failing_since   timestamptz,   -- first failure of the current run; NULL while healthy
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_app ON webhooks (app_id) WHERE enabled;

-- One row per (event, endpoint), written in the transaction of the change it reports and
-- delivered at least once by the workers; `id` makes the stable `webhook-id` (msg_<id>).
CREATE TABLE webhook_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id      bigint NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    type            text NOT NULL,
    body            jsonb NOT NULL,   -- {"type", "timestamp", "data"}
    state           text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
-- The delivery loops' claim: due pending events (finished ones drop out of the index).
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_outbox_webhook ON webhook_outbox (webhook_id, id);
CREATE INDEX webhook_outbox_finished ON webhook_outbox (finished_at) WHERE state <> 'pending';

-- Every delivery attempt, for GET .../webhooks/{id}/deliveries.
CREATE TABLE webhook_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id   bigint NOT NULL REFERENCES webhook_outbox (id) ON DELETE CASCADE,
    webhook_id  bigint NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    status      integer,          -- the HTTP status; NULL when no answer came
    latency_ms  integer NOT NULL,
    error       text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_webhook ON webhook_attempts (webhook_id, id);
CREATE INDEX webhook_attempts_outbox ON webhook_attempts (outbox_id);
