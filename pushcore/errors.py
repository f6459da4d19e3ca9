"""The root of pushcore's exceptions.

Each layer has one root of its own that derives from :class:`PushcoreError`
(``pushcore.db.errors.DatabaseError``, ``pushcore.transport.errors.TransportError``, ...)
and converts foreign exceptions at its boundary with ``raise ... from``.  Callers above a
layer catch that layer's root, never asyncpg's or pycurl's exceptions.
"""


class PushcoreError(Exception):
    """Root of every exception pushcore raises on purpose."""


class ConfigError(PushcoreError):
    """The configuration is invalid; the process refuses to start."""
