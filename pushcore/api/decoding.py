"""Decoding a JSON body into its request type, with the one rule msgspec cannot state.

PostgreSQL's ``text`` and ``jsonb`` refuse the NUL character (U+0000), so a NUL anywhere in
a body (a value, or a key of a free-form object such as ``device`` or ``attributes``) would
fail the statement that stores it.  :func:`decode` refuses it here, once, for every string
of every route, with a 422 naming the field as msgspec names fields (``tags[0]``,
``device[...]`` for a value of a free-form object, ``device`` for one of its keys,
``[0].name`` in a list body).

JSON can only carry a NUL as the escape ``\\u0000`` (a raw control character is invalid
JSON), so a body without those six bytes is not walked at all; with them (rare: an attack,
a fuzzer, or a literal backslash-u0000 in text) the decoded value is walked for the field.
``msgspec.Raw`` parts (the items of a send batch) are skipped: they are decoded, and so
checked, on their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from pushcore.api.errors import ApiError, from_validation, invalid

NUL = "\x00"
_ESCAPED_NUL = b"\\u0000"


def decode(raw: bytes, kind: Any) -> Any:
    """``raw`` decoded as ``kind``; 400 for malformed JSON, 422 naming the field for a value
    the type refuses or a string holding a NUL."""
    try:
        value = msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise from_validation(exc) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if _ESCAPED_NUL in raw:
        field = nul_field(value)
        if field is not None:
            raise invalid(field or "body", "must not contain the NUL character (U+0000)")
    return value


def nul_field(value: Any, path: str = "") -> str | None:
    """The path of the first string in ``value`` (or key of an object in it) that holds a
    NUL, or ``None``."""
    if isinstance(value, str):
        return path if NUL in value else None
    for child, child_path in _children(value, path):
        found = nul_field(child, child_path)
        if found is not None:
            return found
    return None


def _children(value: Any, path: str) -> Iterator[tuple[Any, str]]:
    """The parts of a decoded value with their paths; a key of a free-form object is
    yielded as a string at the object's own path (msgspec names a bad key that way)."""
    if isinstance(value, msgspec.Struct):
        names = value.__struct_encode_fields__
        for attr, name in zip(value.__struct_fields__, names, strict=True):
            yield getattr(value, attr), f"{path}.{name}" if path else name
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key, path
            yield item, f"{path}[...]"
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield item, f"{path}[{index}]"
