-- Per-recipient results, one row per finished batch, written by the statement that writes
-- the batch's results (no extra statement per batch).  Compact: `codes` holds one byte per
-- registration of the batch, in the order of batches.installation_ids, indexing `labels`
-- (at most 255 distinct "outcome/reason" strings per batch: "delivered/ok",
-- "invalid/Unregistered", "failed/gone", "retry/http-503", ...).  A registration deleted
-- as dead keeps its public id and external user id in `removed` (its installation row is
-- gone); the others are looked up in the registry when read.  Rows older than
-- PUSHCORE_RESULTS_RETENTION_DAYS are deleted by the workers' maintenance loop.
-- depends: 0007_transactional_lane
CREATE TABLE batch_results (
    batch_id    bigint PRIMARY KEY REFERENCES batches (id) ON DELETE CASCADE,
    message_id  bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    attempt     smallint NOT NULL,
    labels      text[] NOT NULL,
    codes       bytea NOT NULL,
    removed     jsonb,  -- {"<installation id>": ["<public id>", "<external user id>"|null]}
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- The results route pages through a message's rows in batch order.
CREATE INDEX batch_results_message ON batch_results (message_id, batch_id);
-- The retention sweep.
CREATE INDEX batch_results_age ON batch_results (created_at);

-- The retention sweep is one of the reaper's cluster-wide passes (hourly).
INSERT INTO reaper_passes (name) VALUES ('prune_results');
