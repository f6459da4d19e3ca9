"""The API's errors: each becomes ``{"error": {"code", "message", "field"?}}`` with its status.

Handlers raise :class:`ApiError`; the error middleware converts it, aiohttp's own HTTP errors
(unknown route, wrong method, body too large) and body-decoding errors into the same shape.
Anything else is a bug: it is logged and answered 500 without details.
"""

from __future__ import annotations

import re

import msgspec

from pushcore.errors import PushcoreError


class ApiError(PushcoreError):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def body(self) -> dict[str, dict[str, str]]:
        error = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


def invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "invalid_field", message, field)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def conflict(code: str, message: str, field: str | None = None) -> ApiError:
    return ApiError(409, code, message, field)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


def forbidden(code: str, message: str, field: str | None = None) -> ApiError:
    return ApiError(403, code, message, field)


_AT = re.compile(r" - at (?:`key` in )?`\$(?P<path>[^`]*)`$")
_NAMED = re.compile(r"(?:missing required field|unknown field) `(?P<name>[^`]+)`")


def from_validation(exc: msgspec.ValidationError) -> ApiError:
    """msgspec says ``Expected `int`, got `str` - at `$.device.model```; the field is the path
    without ``$.`` (``device.model``), or the missing/unknown field's name appended to it."""
    text = str(exc)
    path = ""
    at = _AT.search(text)
    if at:
        path = at.group("path").lstrip(".")
        text = text[: at.start()]
    named = _NAMED.search(text)
    if named:
        path = f"{path}.{named.group('name')}" if path else named.group("name")
    code = "unknown_field" if "unknown field" in text else "invalid_field"
    return ApiError(422, code, text, path or None)
