-- Deleting an installation sets users.primary_installation_id to NULL where it pointed at
-- it (ON DELETE SET NULL); without this index every deleted registration scanned all users,
-- which made the send path's batch results (deleting dead tokens) slow.
-- depends: 0002_fanout

CREATE INDEX users_primary_installation ON users (primary_installation_id)
    WHERE primary_installation_id IS NOT NULL;
