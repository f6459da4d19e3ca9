-- When the reaper's passes last ran, cluster-wide.  Every worker process runs the reaper
-- loop; the advisory lock only keeps two passes from overlapping, so without this row each
-- process would scan once per interval (N processes, N scans).  A pass starts only when its
-- row is old enough, checked and moved under the same lock.
-- depends: 0003_primary_index

CREATE TABLE reaper_passes (
    name    text PRIMARY KEY,
    ran_at  timestamptz NOT NULL DEFAULT '-infinity'
);
INSERT INTO reaper_passes (name) VALUES ('reap'), ('prune');
