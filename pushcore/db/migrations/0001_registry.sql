-- The device registry: apps and their credentials, server keys, users, installations, events.
--
-- Ids: every table has a bigint identity key used internally (joins, batches, the fan-out's
-- keyset scans); what the API exposes is a separate random value (apps.code,
-- installations.public_id, api_keys.key_id) so that ids cannot be enumerated.
-- Tags are text[] columns with GIN indexes rather than a join table: the fan-out filters an
-- app's keyset scan with `tags && $1` / `tags @> $1`, which a join table would turn into a
-- semi-join per batch.

-- convert_to() is only STABLE (it depends on the database encoding, which never changes for a
-- database), so the digest used in a generated column needs this IMMUTABLE wrapper.
CREATE FUNCTION token_digest(token text) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT sha256(convert_to(token, 'UTF8')) $$;

CREATE TABLE apps (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code                  text NOT NULL UNIQUE,          -- public app_code
    name                  text NOT NULL,
    identity_verification boolean NOT NULL DEFAULT false,
    -- HMAC key for identity tokens; it must be kept in clear to verify them, so it is
    -- write-only through the API (returned once at creation, never by a GET)
    identity_secret       text NOT NULL,
    -- provider credentials as validated JSON; write-only through the API
    apns                  jsonb,
    fcm                   jsonb,
    webpush               jsonb,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_id      text NOT NULL UNIQUE,                    -- public, to list and revoke
    app_id      bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    key_hash    bytea NOT NULL UNIQUE,                   -- sha256 of the whole key
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_app ON api_keys (app_id);

CREATE TABLE users (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id                  bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    external_id             text NOT NULL,
    email                   text,
    msisdn                  text,
    attributes              jsonb NOT NULL DEFAULT '{}',
    tags                    text[] NOT NULL DEFAULT '{}',
    -- At most one primary installation per user is structural: it is a column of the user.
    -- (A boolean on installations with a partial unique index cannot be moved from one row
    -- to another in one statement: non-deferrable unique indexes are checked per row.)
    -- The foreign key is added below, after installations exists.
    primary_installation_id bigint,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, external_id)
);
CREATE INDEX users_email ON users (app_id, lower(email)) WHERE email IS NOT NULL;
CREATE INDEX users_msisdn ON users (app_id, msisdn) WHERE msisdn IS NOT NULL;
CREATE INDEX users_tags ON users USING gin (tags);

CREATE TABLE installations (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    public_id         uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    app_id            bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    platform          text NOT NULL CHECK (platform IN ('ios', 'android', 'web')),
    -- APNs device token (hex), FCM registration token, or the Web Push endpoint URL
    token             text NOT NULL,
    -- FCM tokens reach 4096 characters and endpoints are long: uniqueness is on a digest
    token_digest      bytea NOT NULL GENERATED ALWAYS AS (token_digest(token)) STORED,
    p256dh            text,                               -- Web Push subscription keys
    auth              text,
    secret_hash       bytea NOT NULL,                     -- sha256 of the installation secret
    user_id           bigint REFERENCES users (id) ON DELETE SET NULL,
    push_enabled      boolean NOT NULL DEFAULT true,
    tags              text[] NOT NULL DEFAULT '{}',
    device            jsonb NOT NULL DEFAULT '{}',        -- free device properties
    token_updated_at  timestamptz NOT NULL DEFAULT now(), -- age of the token, for staleness
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((platform = 'web') = (p256dh IS NOT NULL AND auth IS NOT NULL))
);
CREATE UNIQUE INDEX installations_token ON installations (app_id, platform, token_digest);
-- The fan-out's keyset scan: one app's installations of one platform in id order.
CREATE INDEX installations_fanout ON installations (app_id, platform, id) WHERE push_enabled;
CREATE INDEX installations_user ON installations (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX installations_tags ON installations USING gin (tags);
-- Stale-token sweeps.
CREATE INDEX installations_token_age ON installations (token_updated_at);

ALTER TABLE users ADD FOREIGN KEY (primary_installation_id)
    REFERENCES installations (id) ON DELETE SET NULL;

-- Interaction reports from devices.  No foreign key to installations: reports outlive the
-- registration (an uninstall must not erase the history of what was opened).
CREATE TABLE events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id           bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    installation_id  bigint NOT NULL,
    message_id       uuid,
    name             text NOT NULL,
    at               timestamptz NOT NULL,
    attributes       jsonb NOT NULL DEFAULT '{}',
    received_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_app_time ON events (app_id, received_at);
CREATE INDEX events_message ON events (message_id, name) WHERE message_id IS NOT NULL;
