"""Interaction reports from devices (delivered, opened, dismissed, session start, custom).
The delivered/opened/dismissed ones of a report also become one ``interactions`` webhook
event (written in the same statement).

``push.opened`` reports that name a message of the same app add to its ``opened`` count in
the same statement; a message id of another app is stored but counts nowhere."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pushcore.db import webhooks
from pushcore.db.pool import Pool

# the report's delivered/opened/dismissed interactions as one ``interactions`` webhook event
# (at most 100: a report's bound), committed with the report
_INTERACTIONS = webhooks.outbox_insert(
    """(SELECT i.app_id, jsonb_agg(jsonb_build_object('name', e.name, 'at', e.at,
                                   'message_id', e.message_id) ORDER BY e.at, e.name) AS list
        FROM e, i WHERE e.name IN ('push.delivered', 'push.opened', 'push.dismissed')
        GROUP BY i.app_id) ev""",
    app_id="ev.app_id",
    type_="'interactions'",
    data="jsonb_build_object('installation_id', $1::uuid, 'interactions', ev.list)",
)


async def insert(
    pool: Pool,
    *,
    public_id: uuid.UUID,
    secret_hash: bytes,
    names: list[str],
    ats: list[dt.datetime | None],
    message_ids: list[uuid.UUID | None],
    attributes: list[dict[str, Any] | None],
) -> int | None:
    """Store a report in one statement; None when the installation/secret do not match."""
    rows = await pool.fetch(
        """
        WITH i AS (
            SELECT i.id, i.app_id FROM installations i
            WHERE i.public_id = $1 AND i.secret_hash = $2
        ), e AS (
            INSERT INTO events (app_id, installation_id, name, at, message_id, attributes)
            SELECT i.app_id, i.id, e.name, coalesce(e.at, now()), e.message_id,
                   coalesce(e.attributes, '{}')
            FROM i, unnest($3::text[], $4::timestamptz[], $5::uuid[], $6::jsonb[])
                 AS e(name, at, message_id, attributes)
            RETURNING message_id, name, at
        ), opened AS (
            -- reports count into their message's "opened" (at most once per report)
            UPDATE messages m SET opened = m.opened + o.n
            FROM (SELECT message_id, count(*) AS n FROM e
                  WHERE name = 'push.opened' AND message_id IS NOT NULL
                  GROUP BY message_id) o, i
            WHERE m.public_id = o.message_id AND m.app_id = i.app_id
        ), hooks AS ({_INTERACTIONS}
        )
        SELECT (SELECT count(*) FROM e) AS n FROM i
        """.replace("{_INTERACTIONS}", _INTERACTIONS),
        public_id,
        secret_hash,
        names,
        ats,
        message_ids,
        attributes,
    )
    return int(rows[0]["n"]) if rows else None
