"""libcurl error -> :class:`~pushcore.transport.base.Failure`, without I/O.

The one question that matters to a caller is whether the server may have processed the
request: only failures where it certainly did not are ``unprocessed`` (CONNECT, REFUSED).
Codes we do not know map to CONNECTION_LOST, never to an unprocessed failure.
"""

from __future__ import annotations

from pushcore.transport.base import Failure

_E_HTTP2_STREAM = 92  # CURLE_HTTP2_STREAM; pycurl does not export it

# libcurl error code -> Failure.  Anything not listed is CONNECTION_LOST: we do not know
# whether the server processed the request, so it must not be called unprocessed.
_FAILURES: dict[int, Failure] = {
    1: Failure.CONNECT,  # UNSUPPORTED_PROTOCOL
    3: Failure.CONNECT,  # URL_MALFORMAT
    5: Failure.CONNECT,  # COULDNT_RESOLVE_PROXY
    6: Failure.CONNECT,  # COULDNT_RESOLVE_HOST
    7: Failure.CONNECT,  # COULDNT_CONNECT
    35: Failure.CONNECT,  # SSL_CONNECT_ERROR (handshake failed, ALPN, client cert refused)
    53: Failure.CONNECT,  # SSL_ENGINE_NOTFOUND
    58: Failure.CONNECT,  # SSL_CERTPROBLEM (our client certificate)
    59: Failure.CONNECT,  # SSL_CIPHER
    60: Failure.CONNECT,  # PEER_FAILED_VERIFICATION (wrong CA, wrong host name)
    77: Failure.CONNECT,  # SSL_CACERT_BADFILE
    83: Failure.CONNECT,  # SSL_ISSUER_ERROR
    90: Failure.CONNECT,  # SSL_PINNEDPUBKEYNOTOK
    91: Failure.CONNECT,  # SSL_INVALIDCERTSTATUS
    8: Failure.PROTOCOL,  # WEIRD_SERVER_REPLY
    16: Failure.PROTOCOL,  # HTTP2 framing layer error
    28: Failure.TIMEOUT,  # OPERATION_TIMEDOUT
    18: Failure.CONNECTION_LOST,  # PARTIAL_FILE
    52: Failure.CONNECTION_LOST,  # GOT_NOTHING
    55: Failure.CONNECTION_LOST,  # SEND_ERROR
    56: Failure.CONNECTION_LOST,  # RECV_ERROR
}


# libcurl's messages for a deadline that passed while resolving, connecting or in the TLS
# handshake: the request was never sent, so the failure is CONNECT, not TIMEOUT.
_CONNECT_TIMEOUTS = ("Resolving timed out", "Connection timed out", "SSL connection timeout")


def classify(code: int, message: str, *, before_deadline: bool = False) -> Failure:
    """Map a libcurl error code and message to a :class:`Failure`.  ``before_deadline`` says
    the transfer ended clearly before its batch deadline: TIMEOUT_MS is set to the deadline,
    so a timeout then can only be CONNECTTIMEOUT, which also hits transfers that were
    waiting for that connection (their message is the generic "Operation timed out")."""
    if code == _E_HTTP2_STREAM:
        # "HTTP/2 stream 9 reset by server (error 0x2 INTERNAL_ERROR)"; REFUSED_STREAM only
        # shows up here once libcurl's own retries on fresh connections are used up.
        return Failure.REFUSED if "REFUSED_STREAM" in message else Failure.RESET
    if code == 28 and (before_deadline or message.startswith(_CONNECT_TIMEOUTS)):
        return Failure.CONNECT
    return _FAILURES.get(code, Failure.CONNECTION_LOST)
