"""The transport layer's exception root.

Only construction and configuration problems raise (a bad CA file, a client key without a
certificate, use from the wrong event loop, use after :meth:`aclose`).  Everything that goes
wrong with one request -- refused connection, timeout, reset stream -- comes back as a
:class:`~pushcore.transport.base.Response` with a ``failure`` instead, so that one bad
registration never costs the rest of its batch.
"""

from __future__ import annotations

from pushcore.errors import PushcoreError


class TransportError(PushcoreError):
    """The transport was configured or used wrongly; never raised for a single request."""
