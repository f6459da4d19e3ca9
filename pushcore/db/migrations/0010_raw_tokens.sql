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
