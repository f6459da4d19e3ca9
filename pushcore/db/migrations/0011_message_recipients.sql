-- Per-recipient data of a send to a user list (`target.recipients`): one row per user of
-- the message, read by the batch claim (joined on the installation's user) when the
-- message's templates are rendered.  The message's request keeps only the user ids.
-- depends: 0007_transactional_lane

CREATE TABLE message_recipients (
    message_id  bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    external_id text NOT NULL,
    data        jsonb NOT NULL,
    PRIMARY KEY (message_id, external_id)
);
