-- A provider-wide pause on a storm.  When many batches of one app and platform fail
-- mostly with retryable errors (503, 429, lost connections) within a short window, every
-- worker stops claiming that app's batches for that platform until `paused_until`, instead
-- of each batch burning its attempts alone.  One row per app and platform that ever failed
-- so; workers read it inside their claim statement (the table stays tiny).
-- depends: 0007_transactional_lane
CREATE TABLE provider_pauses (
    app_id         bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    platform       text NOT NULL,
    -- the current window of failing batches and how many failed in it
    window_started timestamptz NOT NULL DEFAULT now(),
    failures       integer NOT NULL DEFAULT 0,
    paused_until   timestamptz,
    pauses         bigint NOT NULL DEFAULT 0,  -- how many pauses began, for operators
    PRIMARY KEY (app_id, platform)
);
