-- depends: 0010_delivery_control
-- The delivery loops' claim takes at most a few due events per endpoint (so that one
-- endpoint's backlog cannot crowd the others out): a lookup per enabled endpoint.
CREATE INDEX webhook_outbox_endpoint_due ON webhook_outbox (webhook_id, next_attempt_at)
    WHERE state = 'pending';
