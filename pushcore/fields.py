"""Field types that more than one layer's request structs use: one definition each.

The API's bodies (``pushcore.api.schemas``) and the send request's targets
(``pushcore.fanout.targets``) both take tags, external user ids, emails and phone numbers;
what a valid one is must not differ between registering a user and addressing it.

Patterns avoid ``\\s`` and other classes whose meaning differs between Python's ``re`` and
ECMA-262 (what JSON Schema validators and generated clients use): characters are spelled
out, so the OpenAPI document states exactly the rule the server applies.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

Tag = Annotated[str, Meta(min_length=1, max_length=128)]
ExternalId = Annotated[str, Meta(min_length=1, max_length=256)]
# local@domain.tld without control characters, spaces or a second "@"; 254 characters is
# the longest address SMTP can carry (RFC 5321 path limit less the angle brackets)
_EMAIL_CHAR = r"[^@\x00-\x20\x7f]"
Email = Annotated[
    str, Meta(max_length=254, pattern=f"^{_EMAIL_CHAR}+@{_EMAIL_CHAR}+\\.{_EMAIL_CHAR}+$")
]
# E.164: a plus sign and up to 15 digits
Msisdn = Annotated[str, Meta(pattern=r"^\+[1-9][0-9]{6,14}$")]
