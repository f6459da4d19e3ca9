"""The libcurl error table, without I/O."""

from __future__ import annotations

import pytest

from pushcore.transport.base import Failure
from pushcore.transport.curl_errors import classify


@pytest.mark.parametrize(
    ("code", "message", "early", "expected"),
    [
        (7, "Failed to connect to localhost port 1", False, Failure.CONNECT),
        (60, "SSL certificate problem: self-signed certificate", False, Failure.CONNECT),
        (28, "Connection timed out after 300 milliseconds", False, Failure.CONNECT),
        (28, "Operation timed out after 301 milliseconds with 0 bytes", True, Failure.CONNECT),
        (28, "Operation timed out after 500 milliseconds with 0 bytes", False, Failure.TIMEOUT),
        (92, "HTTP/2 stream 9 reset by server (error 0x2 INTERNAL_ERROR)", False, Failure.RESET),
        (92, "HTTP/2 stream 3 was not closed cleanly: REFUSED_STREAM", False, Failure.REFUSED),
        (56, "Connection died, tried 5 times before giving up", False, Failure.CONNECTION_LOST),
        (55, "OpenSSL SSL_read: SSL_ERROR_SYSCALL, errno 0", False, Failure.CONNECTION_LOST),
        (16, "Error in the HTTP2 framing layer", False, Failure.PROTOCOL),
        (999, "a code this table has never seen", False, Failure.CONNECTION_LOST),
    ],
)
def test_classify(code: int, message: str, early: bool, expected: Failure) -> None:
    assert classify(code, message, before_deadline=early) is expected
