"""The asyncio HTTP/2 client shared by all providers; the only code that touches sockets
on the sending side.

Layer contract (:mod:`pushcore.transport.base`): providers are pure and build
:class:`~pushcore.transport.base.Request` objects; a
:class:`~pushcore.transport.base.Transport` sends a batch of them and returns one
:class:`~pushcore.transport.base.Response` per request, in order, within the batch
deadline, never raising for a per-request problem.  A failed request carries a
:class:`~pushcore.transport.base.Failure` that says whether the server may have processed
it (``unprocessed``), which is what decides between "send again" and "count as failed".
:class:`~pushcore.transport.errors.TransportError` is raised only for misconfiguration or
misuse.

Engine: :class:`~pushcore.transport.curl.CurlTransport`, libcurl's multi interface with
nghttp2 (the pycurl wheel bundles both) driven by the running asyncio loop through
``socket_action`` -- no thread, no blocking call.  It was chosen on measurement (see
``benchmarks/transport.py``, ``benchmarks/transport_ceiling.py`` and the README's
Performance section): HTTP/2 framing, HPACK,
TLS and flow control run in C, so the client costs ~5x less CPU per request than the best
pure-Python HTTP/2 stack and ~50x less than httpx; libcurl also handles what hand-written
clients get wrong (returning flow-control windows, RST_STREAM, GOAWAY, several connections
per origin).  What libcurl does on GOAWAY, REFUSED_STREAM and dropped connections, and what
that means for duplicates, is written down in :mod:`pushcore.transport.curl`.

One transport per process, created on the loop that uses it (for Dramatiq workers: the
AsyncIO middleware's loop, in ``after_worker_boot``).  Tests run it against real HTTP/2 +
TLS servers (the simulators' HTTP/2 fault server), not a mock.  Nothing here knows the
providers: :mod:`pushcore.fanout.delivery` composes a provider with a transport.
"""
