"""Webhooks: signed, durable, retried notices of status changes and removed registrations
to the endpoints an app registers (``pushcore.db.webhooks`` holds the outbox)."""
