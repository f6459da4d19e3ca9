-- Provider credentials become rows, one per app and platform, instead of one column per
-- provider on apps: adding a provider (a row in pushcore.providers.registry) then needs no
-- schema change, and the send path joins the one row of its batch's platform instead of
-- choosing a column with a CASE over every platform.
--
-- `platform` is the installations' platform name (ios, android, web); the API shows the
-- row under its provider's key (apns, fcm, webpush).  `updated_at` versions the credentials:
-- workers cache one provider (JWT signer, OAuth token) per (app, platform, updated_at).
CREATE TABLE app_credentials (
    app_id      bigint NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    platform    text NOT NULL,
    -- validated JSON; write-only through the API (GETs show only public parts)
    credentials jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, platform)
);

INSERT INTO app_credentials (app_id, platform, credentials, updated_at)
SELECT id, 'ios', apns, updated_at FROM apps WHERE apns IS NOT NULL
UNION ALL
SELECT id, 'android', fcm, updated_at FROM apps WHERE fcm IS NOT NULL
UNION ALL
SELECT id, 'web', webpush, updated_at FROM apps WHERE webpush IS NOT NULL;

ALTER TABLE apps DROP COLUMN apns, DROP COLUMN fcm, DROP COLUMN webpush;

-- Which platforms exist is the registry's to say (the API refuses any other name), not a
-- CHECK to widen per provider.  What stays checked here is what the rows must hold
-- whatever the platform: Web Push keys come as a pair.
ALTER TABLE installations DROP CONSTRAINT installations_platform_check;
ALTER TABLE installations DROP CONSTRAINT installations_check;
ALTER TABLE installations ADD CONSTRAINT installations_keys_pair
    CHECK ((p256dh IS NULL) = (auth IS NULL));
ALTER TABLE batches DROP CONSTRAINT batches_platform_check;
