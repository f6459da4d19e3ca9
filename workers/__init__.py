"""Dramatiq workers of the fan-out: the broker, the actors and their process resources.

Queues: ``pushcore.plan`` (planning messages into batches), ``pushcore.apns``,
``pushcore.fcm``, ``pushcore.webpush`` (sending batches; SREs scale each pool on its own)
and ``pushcore.maintenance``.  Start them with ``pushcore worker``.
"""
