"""The compose form as a send request, and the API's errors back onto the form.  Pure.

The form's fields are named after the send request's own fields (``notification.title``,
``ttl_seconds``, ...), so that a 422's ``field`` finds its input without a table of its
own.  Values are passed on as typed (a TTL that is not a number stays a string), so that
the send route's own validation says what is wrong, in its own words.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pushcore.fanout.targets import TargetKind
from pushcore.providers import registry

TARGET_KINDS = [k.value for k in TargetKind]
LIST_KINDS = [k for k in TARGET_KINDS if k not in ("all", "tags")]
# inputs the errors can be shown at; anything else is shown above the form
FIELDS = (
    "target",
    "notification.title",
    "notification.body",
    "notification.image",
    "notification.url",
    "notification.data",
    "notification",
    "platforms",
    "primary_only",
    "ttl_seconds",
    "priority",
    "collapse_key",
    "send_at",
    "inbox.topic",
    "inbox.expires_at",
    "inbox",
    "push",
)
TEXT_FIELDS = ("title", "body", "image", "url")
MAX_CSV_BYTES = 8 * 1024 * 1024
_SPLIT = re.compile(r"[\s,;]+")
_INDEX = re.compile(r"\[\d+\]")


@dataclass
class ComposeForm:
    """What was typed, to render the form again as it was."""

    target_kind: str = "all"
    target_values: str = ""
    target_match: str = "any"
    title: str = ""
    body: str = ""
    image: str = ""
    url: str = ""
    data: str = ""
    platforms: list[str] = field(default_factory=list)
    primary_only: bool = False
    ttl_seconds: str = ""
    priority: str = ""
    collapse_key: str = ""
    send_at: str = ""
    inbox: bool = False
    inbox_topic: str = ""
    inbox_expires_at: str = ""
    inbox_only: bool = False


class FormError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def read_form(form: Mapping[str, Any], csv_text: str | None = None) -> ComposeForm:
    def text(name: str) -> str:
        value = form.get(name, "")
        return value.strip() if isinstance(value, str) else ""

    values = text("target_values")
    if csv_text:
        values = "\n".join(v for v in (values, csv_values(csv_text)) if v)
    platforms: list[str] = [p for p in registry.NAMES if form.get(f"platform_{p}") == "on"]
    return ComposeForm(
        target_kind=text("target_kind") or "all",
        target_values=values,
        target_match=text("target_match") or "any",
        title=text("notification.title"),
        body=text("notification.body"),
        image=text("notification.image"),
        url=text("notification.url"),
        data=text("notification.data"),
        platforms=platforms,
        primary_only=form.get("primary_only") == "on",
        ttl_seconds=text("ttl_seconds"),
        priority=text("priority"),
        collapse_key=text("collapse_key"),
        send_at=text("send_at"),
        inbox=form.get("inbox") == "on",
        inbox_topic=text("inbox.topic"),
        inbox_expires_at=text("inbox.expires_at"),
        inbox_only=form.get("inbox_only") == "on",
    )


def csv_values(raw: str) -> str:
    """The first column of every row of an uploaded CSV (a header row such as ``email`` or
    ``external_user_id`` is dropped), one value a line."""
    rows = [row[0].strip() for row in csv.reader(io.StringIO(raw)) if row and row[0].strip()]
    if rows and rows[0].lower() in {
        *TARGET_KINDS,
        "email",
        "msisdn",
        "phone",
        "id",
        "user_id",
        "external_user_id",
        "installation_id",
        "tag",
    }:
        rows = rows[1:]
    return "\n".join(rows)


def _number(raw: str) -> int | str:
    try:
        return int(raw)
    except ValueError:
        return raw  # the API names the field and says what it expected


def _data(raw: str) -> dict[str, str]:
    """``key=value`` lines (the notification's custom data, strings only)."""
    out: dict[str, str] = {}
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise FormError("notification.data", f"line {number}: write key=value")
        out[key.strip()] = value.strip()
    return out


def send_at(raw: str) -> str:
    """The form's ``datetime-local`` value is UTC (the label says so); also the inbox
    expiry's."""
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d", raw):
        return raw + ":00Z"
    if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", raw):
        return raw + "Z"
    return raw


def target_of(f: ComposeForm) -> dict[str, Any]:
    if f.target_kind not in TARGET_KINDS:
        raise FormError("target", "choose whom to send to")
    if f.target_kind == "all":
        return {"all": True}
    values = (
        [v for v in _SPLIT.split(f.target_values) if v]
        if f.target_kind != "tags"
        else [v.strip() for v in re.split(r"[\n,]+", f.target_values) if v.strip()]
    )
    if not values:
        raise FormError("target", f"give at least one value for {f.target_kind.replace('_', ' ')}")
    target: dict[str, Any] = {f.target_kind: values}
    if f.target_kind == "tags":
        target["match"] = f.target_match
    return target


def audience_request(f: ComposeForm) -> dict[str, Any]:
    """The estimate route's body: the parts of the send that decide whom it reaches."""
    body: dict[str, Any] = {"target": target_of(f), "primary_only": f.primary_only}
    if f.platforms:
        body["platforms"] = f.platforms
    return body


def send_request(f: ComposeForm) -> dict[str, Any]:
    """The send route's body; :class:`FormError` for what cannot even be put into it."""
    body = audience_request(f)
    notification: dict[str, Any] = {
        name: getattr(f, name) for name in TEXT_FIELDS if getattr(f, name)
    }
    if f.data:
        notification["data"] = _data(f.data)
    body["notification"] = notification
    if f.ttl_seconds:
        body["ttl_seconds"] = _number(f.ttl_seconds)
    if f.priority:
        body["priority"] = f.priority
    if f.collapse_key:
        body["collapse_key"] = f.collapse_key
    if f.send_at:
        body["send_at"] = send_at(f.send_at)
    inbox = inbox_request(f)
    if inbox is not None:
        body["inbox"] = inbox
    if f.inbox_only:
        body["push"] = False  # without the inbox ticked the API says why that reaches nobody
    return body


def inbox_request(f: ComposeForm) -> bool | dict[str, str] | None:
    """The send's ``inbox``: true, or an object when a topic or an expiry is given; None
    when the inbox is not ticked (a topic typed then is not sent)."""
    if not f.inbox:
        return None
    options: dict[str, str] = {}
    if f.inbox_topic:
        options["topic"] = f.inbox_topic
    if f.inbox_expires_at:
        options["expires_at"] = send_at(f.inbox_expires_at)
    return options or True


def form_field(api_field: str | None) -> str | None:
    """The input an API error's ``field`` belongs to (``target.emails[3]`` → ``target``),
    or None to show it above the form."""
    if not api_field:
        return None
    name = _INDEX.sub("", api_field)
    if name.startswith("target"):
        return "target"
    if name.startswith("notification.data"):
        return "notification.data"
    best = [f for f in FIELDS if name == f or name.startswith(f + ".")]
    return max(best, key=len) if best else None
