-- Registrations the registry deleted for a reason of its own, counted per app, hour and
-- reason, for the console's overview ("removed in the last 24 hours / 7 days, by reason"):
-- `stale` (the prune: the token was not refreshed for PUSHCORE_STALE_TOKEN_DAYS) and
-- `uninstalled` (the device deleted its installation).  Registrations a provider answered as
-- dead are counted on their message instead (messages.invalid_removed): counting them here
-- too would put a shared counter row into every batch's result statement.
-- One row per (app, hour, reason), added to by each deleting statement; the prune runs in
-- one process at a time, and uninstalls of one app in one hour share a row whose lock each
-- holds only for its own single-statement transaction.
CREATE TABLE registration_removals (
    app_id   bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    hour     timestamptz NOT NULL,
    reason   text NOT NULL,
    removed  bigint NOT NULL,
    PRIMARY KEY (app_id, hour, reason)
);
