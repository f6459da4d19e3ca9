-- The transactional lane.  A send to a small target (a few users, installations, emails or
-- phone numbers, not scheduled) is planned when it is accepted: its batches are written in
-- the statement that inserts the message, marked `lane`, and no plan job or broker message
-- is needed.  Send workers claim lane batches many at a time (FOR UPDATE SKIP LOCKED, oldest
-- first) from every message, send them together and write all their results in one
-- statement, so a message costs about what one notification costs.
ALTER TABLE batches ADD COLUMN lane boolean NOT NULL DEFAULT false;

-- What the lane's claim scans: unfinished lane batches in id order (finished ones drop
-- out, so the index stays as small as the backlog).
CREATE INDEX batches_lane ON batches (id) WHERE lane AND state <> 'done';

-- Workers LISTEN on this channel; a lane message's insert notifies it (payload: nothing),
-- so a worker wakes within milliseconds instead of at its next poll.
