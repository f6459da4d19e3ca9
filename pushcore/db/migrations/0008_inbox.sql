-- The inbox: messages kept for users, listed with unread counts, seen the same on every device.
-- depends: 0007_transactional_lane
--
-- Two shapes, chosen by the target (measured: README, "Inbox"):
-- * A whole-app send (`{"all": true}`) is stored ONCE, as an `inbox_messages` row with
--   audience 'all'; on read it belongs to every user of the app that existed when it was
--   sent (users.created_at <= sent_at).  A broadcast to 1,000,000 users writes one row, not
--   a million, so it never slows the push it goes out with.
-- * Every other target (users, emails, phones, installations, tags) is resolved to users by
--   the planner (or the lane's insert) and written as one `inbox_entries` row per user
--   (`personal`).  Tags are resolved at plan time, in bulk, because "was this user in the tag
--   audience when it was sent" cannot be answered on read once tags have changed.
-- A user's state on a broadcast (seen, deleted) is an `inbox_entries` row too, written only
-- when the user acts (`personal` false).  So an entry row is small: two ids, a time, flags.

ALTER TABLE messages ADD COLUMN inboxed bigint NOT NULL DEFAULT 0;  -- users it was stored for

CREATE TABLE inbox_messages (
    message_id  bigint PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    app_id      bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    audience    text NOT NULL CHECK (audience IN ('all', 'users')),
    topic       text,
    -- when it entered the inboxes (planning time: a scheduled message at its send_at)
    sent_at     timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    -- resolving a big audience to users is resumable like the push planning
    planned     boolean NOT NULL DEFAULT false,
    cursor      jsonb NOT NULL DEFAULT '{}'
);
-- A user's read of the broadcasts of its app, newest first; retention's scan.
CREATE INDEX inbox_messages_broadcast ON inbox_messages (app_id, sent_at DESC)
    WHERE audience = 'all';
CREATE INDEX inbox_messages_age ON inbox_messages (sent_at);

CREATE TABLE inbox_entries (
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message_id  bigint NOT NULL REFERENCES inbox_messages (message_id) ON DELETE CASCADE,
    personal    boolean NOT NULL,          -- stored for this user; false: state on a broadcast
    deleted     boolean NOT NULL DEFAULT false,
    seen_at     timestamptz,
    PRIMARY KEY (user_id, message_id)
);
-- Cancel and retention (the cascade) find entries by message.
CREATE INDEX inbox_entries_message ON inbox_entries (message_id);

-- A message's `seen` count.  Counting its entries would read 1,000,000 index entries for a
-- broadcast every user saw, at every GET of the message; one counter row would serialize
-- every user's seen on that row's lock.  So the counter is split into shards by user, and
-- a message's count is the sum of at most SEEN_SHARDS rows.  It outlives the inbox (the
-- report stays after retention or a user's erasure).
CREATE TABLE inbox_seen (
    message_id  bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    shard       smallint NOT NULL,
    n           bigint NOT NULL,
    PRIMARY KEY (message_id, shard)
);
