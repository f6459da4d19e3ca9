-- Personalize in one round trip.  The steps are those of a short transaction holding the
-- installation's row lock (lock, read the current user, refuse or attach), but run by the
-- server: five round trips (BEGIN, lock, read, attach, COMMIT) become one, which is most of
-- what personalize cost.  pushcore.db.installations.personalize calls it and documents the
-- outcomes; its result columns are those of installations.COLUMNS, kept in step by hand.
--
-- Each statement of a VOLATILE PL/pgSQL function takes a fresh snapshot (READ COMMITTED):
-- after waiting for the row lock, the read of the current user sees what the previous
-- holder committed, exactly as a second statement of a client transaction would.
-- depends: 0004_reaper_passes

CREATE FUNCTION personalize_installation(
    p_public_id uuid,
    p_secret_hash bytea,        -- device-side call: the installation secret's digest
    p_app_id bigint,            -- server-side call: the caller's app
    p_external_id text,
    p_email text,
    p_msisdn text,
    p_attributes jsonb,
    p_force boolean,
    p_identity_checked boolean  -- the caller verified the identity token already
) RETURNS TABLE (
    outcome text,               -- ok | not_found | identity_needed | conflict
    identity_secret text,       -- with identity_needed only: to verify the token with
    public_id uuid,
    platform text,
    token_tail text,
    push_enabled boolean,
    tags text[],
    device jsonb,
    token_updated_at timestamptz,
    created_at timestamptz,
    updated_at timestamptz,
    external_id text,
    is_primary boolean
)
LANGUAGE plpgsql VOLATILE
AS $$
#variable_conflict use_column
DECLARE
    v_id bigint;
    v_user_id bigint;
    v_verify boolean;
    v_secret text;
    v_current text;
BEGIN
    SELECT i.id, i.user_id, a.identity_verification, a.identity_secret
      INTO v_id, v_user_id, v_verify, v_secret
      FROM installations i JOIN apps a ON a.id = i.app_id
     WHERE i.public_id = p_public_id
       AND (p_secret_hash IS NULL OR i.secret_hash = p_secret_hash)
       AND (p_app_id IS NULL OR i.app_id = p_app_id)
       AND (p_secret_hash IS NOT NULL OR p_app_id IS NOT NULL)
       FOR UPDATE OF i;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_secret_hash IS NOT NULL AND v_verify AND NOT p_identity_checked THEN
        -- the lock ends with this call; the caller checks the token and calls again
        outcome := 'identity_needed';
        identity_secret := v_secret;
        RETURN NEXT;
        RETURN;
    END IF;
    IF v_user_id IS NOT NULL THEN
        SELECT u.external_id INTO v_current FROM users u WHERE u.id = v_user_id;
    END IF;
    IF v_current IS NOT NULL AND v_current <> p_external_id AND NOT p_force THEN
        outcome := 'conflict';
        RETURN NEXT;
        RETURN;
    END IF;
    -- Upsert the user and attach the installation; when it moves away from another user
    -- whose primary it was, that user has no primary any more.
    RETURN QUERY
    WITH u AS (
        INSERT INTO users AS u (app_id, external_id, email, msisdn, attributes)
        SELECT i.app_id, p_external_id, p_email, p_msisdn, coalesce(p_attributes, '{}')
        FROM installations i WHERE i.id = v_id
        ON CONFLICT (app_id, external_id) DO UPDATE SET
            email = coalesce(p_email, u.email),
            msisdn = coalesce(p_msisdn, u.msisdn),
            attributes = CASE WHEN p_attributes IS NULL THEN u.attributes
                              ELSE jsonb_strip_nulls(u.attributes || p_attributes) END,
            updated_at = CASE WHEN (u.email, u.msisdn, u.attributes) IS DISTINCT FROM
                (coalesce(p_email, u.email), coalesce(p_msisdn, u.msisdn),
                 CASE WHEN p_attributes IS NULL THEN u.attributes
                      ELSE jsonb_strip_nulls(u.attributes || p_attributes) END)
                THEN now() ELSE u.updated_at END
        RETURNING u.*
    ), i AS (
        UPDATE installations i
        SET user_id = u.id,
            updated_at = CASE WHEN i.user_id IS DISTINCT FROM u.id
                              THEN now() ELSE i.updated_at END
        FROM u WHERE i.id = v_id
        RETURNING i.*
    ), previous AS (
        UPDATE users p SET primary_installation_id = NULL, updated_at = now()
        FROM u
        WHERE p.id = v_user_id AND p.id <> u.id AND p.primary_installation_id = v_id
    )
    SELECT 'ok'::text, NULL::text,
        i.public_id, i.platform, right(i.token, 8), i.push_enabled, i.tags,
        i.device, i.token_updated_at, i.created_at, i.updated_at, u.external_id,
        (u.primary_installation_id IS NOT DISTINCT FROM i.id AND u.id IS NOT NULL)
    FROM i, u;
END
$$;
