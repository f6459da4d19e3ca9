"""Per-recipient content in the fan-out: what a templated send stores, the checks at submit,
and the rendering of one claimed batch.

A message without templates never comes here: its payload is rendered once per message
and shared by every batch (``sending._rendered``).  A templated message is stored with
its notification as given plus ``templated`` (``{"localizations": {...}}``), which is how
the claim knows to load each recipient's user and installation properties in the same
statement as the tokens.  The worker compiles the message's templates once (a bounded
cache per process), renders each recipient's notification, and hands the provider the
distinct notifications only: recipients whose content came out the same share one
provider payload.  A recipient whose render fails counts ``failed`` with reason
``template_error``; one whose payload is over the provider's limit, ``payload_too_large``.
Neither touches the rest of the batch.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from pushcore.db.pool import Record
from pushcore.db.recipients import UNREAD_CAP
from pushcore.fanout.delivery import PerRecipient
from pushcore.fanout.errors import InvalidSend
from pushcore.fanout.request import SendRequestBase
from pushcore.providers import registry
from pushcore.providers.base import Provider, Registration
from pushcore.providers.errors import InvalidNotification, PayloadTooLarge
from pushcore.providers.registry import Notification
from pushcore.templates import content, locale
from pushcore.templates.content import Program
from pushcore.templates.errors import InvalidTemplate, RenderFailed, RenderTimeout

TEMPLATED = "templated"  # the key of a stored notification that marks per-recipient content
INBOX = "inbox"  # the template variable of the recipient's inbox (``inbox.unread``)
UNREAD = "unread"  # the key of the templated part that asks for the unread counts
PROGRAM_CACHE = 64  # messages whose compiled templates a worker process keeps

TEMPLATE_ERROR = "template_error"
PAYLOAD_TOO_LARGE = "payload_too_large"


def stored_notification(request: SendRequestBase) -> dict[str, Any]:
    """The notification column of a message: the effective notification, plus the
    per-recipient part when the send has one.  When a template reads ``inbox``, the part
    has ``unread``: what the message itself adds to its recipients' unread counts (1 when
    it is stored in their inboxes, else 0), which tells the batch claim to load the counts
    (:data:`pushcore.db.inbox.UNREAD_JSON`)."""
    return _stored(request)[0]


def _stored(request: SendRequestBase) -> tuple[dict[str, Any], Program | None]:
    """The stored notification and, for a templated send, its compiled templates."""
    stored: dict[str, Any] = msgspec.to_builtins(request.effective_notification())
    if not request.templated():
        return stored, None
    part: dict[str, Any] = {"localizations": msgspec.to_builtins(request.localizations or {})}
    stored[TEMPLATED] = part
    program = _compile(stored)
    if INBOX in program.variables:
        part[UNREAD] = 1 if request.inbox_options() is not None else 0
    return stored, program


def samples(request: SendRequestBase, render_seconds: float) -> list[Any]:
    """Check a templated send's templates and return each of its variants (the default, each
    localization) rendered for a recipient with no properties at all, for the providers'
    own checks (a static part that is already over a payload limit, an invalid override
    block).  :class:`InvalidSend` names the field and the position."""
    built: dict[str, Any] = msgspec.to_builtins(request)
    blocks = {key: built[key] for key in registry.KEYS if built.get(key)}
    localizations: dict[str, Any] = built.get("localizations") or {}
    for tag in localizations:
        if not locale.valid_language(tag):
            raise InvalidSend(f"localizations.{tag}", "not a valid BCP 47 language tag")
    try:
        content.check(built["notification"], blocks, localizations)
        program = _stored(request)[1]
        assert program is not None  # only templated sends are sampled
    except InvalidTemplate as exc:
        raise InvalidSend(exc.field, f"{exc.message} (at {exc.position})") from None
    out = []
    variants: list[tuple[str, object]] = [("notification", None)]
    variants += [(f"localizations.{tag}", tag) for tag in program.localized]
    for field, language in variants:
        try:
            fields = program.render({}, language, time.thread_time() + render_seconds)
            out.append(msgspec.convert(fields, Notification))
        except RenderFailed as exc:
            raise InvalidSend(field, str(exc)) from None
        except msgspec.ValidationError as exc:
            raise InvalidSend(field, f"renders as an invalid notification: {exc}") from None
    return out


def is_templated(notification: Mapping[str, Any]) -> bool:
    return TEMPLATED in notification


def unread_itself(request: SendRequestBase) -> int | None:
    """What a send adds to its recipients' ``inbox.unread`` (0 or 1), None when no template
    of it reads ``inbox``: what the preview loads the unread counts with."""
    part = stored_notification(request).get(TEMPLATED) or {}
    unread: int | None = part.get(UNREAD)
    return unread


class Programs:
    """message id → its compiled templates; bounded LRU, per process."""

    def __init__(self, size: int = PROGRAM_CACHE) -> None:
        self._size = size
        self._entries: OrderedDict[int, Program] = OrderedDict()

    def get(self, message_id: int, notification: Mapping[str, Any]) -> Program:
        program = self._entries.get(message_id)
        if program is None:
            program = _compile(notification)
            self._entries[message_id] = program
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(message_id)
        return program


def _compile(notification: Mapping[str, Any]) -> Program:
    base = {k: v for k, v in notification.items() if k != TEMPLATED}
    localizations = notification.get(TEMPLATED, {}).get("localizations")
    return content.compile_program(base, localizations)


@dataclass(slots=True)
class Rendered:
    """One batch rendered: the registrations to send to with their payloads (in order),
    and how many failed for each reason."""

    registrations: list[Registration]
    payloads: PerRecipient
    failed: dict[str, int]
    first_error: str | None = None  # why the first failed one failed (for the log)


def render_batch(
    program: Program,
    provider: Provider[Any],
    notification: Mapping[str, Any],
    registrations: Sequence[Registration],
    recipients: Sequence[Mapping[str, Any]],
    *,
    render_seconds: float,
    seen: dict[bytes, Any] | None = None,
) -> Rendered:
    """Render every recipient of a batch (``recipients`` in the order of
    ``registrations``).  ``seen``: rendered notifications already turned into provider
    payloads, shared by the slices of one batch."""
    message = {"data": notification.get("data") or {}}
    kept: list[Registration] = []
    payloads: list[Any] = []
    failed: dict[str, int] = {}
    first_error: str | None = None
    # rendered notification (encoded) → the provider's payload, or the reason it failed
    if seen is None:
        seen = {}
    for registration, recipient in zip(registrations, recipients, strict=True):
        data = variables(message, recipient)
        language = recipient["installation"]["device"].get("language")
        try:
            fields = _render(program, data, language, render_seconds)
        except RenderFailed as exc:
            failed[TEMPLATE_ERROR] = failed.get(TEMPLATE_ERROR, 0) + 1
            first_error = first_error or str(exc)
            continue
        key = msgspec.json.encode(fields)
        payload = seen.get(key)
        if payload is None:
            payload = seen[key] = _provider_payload(provider, fields)
        if isinstance(payload, _Failure):
            failed[payload.reason] = failed.get(payload.reason, 0) + 1
            first_error = first_error or payload.detail
            continue
        kept.append(registration)
        payloads.append(payload)
    return Rendered(kept, PerRecipient(payloads), failed, first_error)


def variables(message: Mapping[str, Any], recipient: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level template variables of one recipient (a recipient JSON object of
    :mod:`pushcore.db.recipients`): what is not known is left out, and renders as empty
    text (an anonymous installation has no ``user`` and no ``inbox``)."""
    data: dict[str, Any] = {"message": message}
    for name in ("installation", "user", "recipient", INBOX):
        if recipient.get(name) is not None:
            data[name] = recipient[name]
    return data


def _render(program: Program, data: dict[str, Any], language: object, seconds: float) -> Any:
    """One recipient's notification.  A render over its deadline is tried once more: a
    garbage collection can land inside one render of the thousands a worker does per second
    (seen: about 1 in 10,000 over 50 ms of CPU), and a recipient must not fail for it; a
    template that is slow in itself is over the deadline twice."""
    try:
        return program.render(data, language, time.thread_time() + seconds)
    except RenderTimeout:
        return program.render(data, language, time.thread_time() + seconds)


@dataclass(frozen=True, slots=True)
class _Failure:
    reason: str
    detail: str


def _provider_payload(provider: Provider[Any], fields: dict[str, Any]) -> Any:
    try:
        return provider.render(msgspec.convert(fields, Notification))
    except PayloadTooLarge as exc:
        return _Failure(PAYLOAD_TOO_LARGE, str(exc))
    except (InvalidNotification, msgspec.ValidationError) as exc:
        return _Failure(TEMPLATE_ERROR, str(exc))


def for_reader(
    programs: Programs,
    message_id: int,
    notification: Mapping[str, Any],
    reader: Mapping[str, Any],
    *,
    recipient_data: Any,
    language: str | None,
    unread: int,
    render_seconds: float,
) -> dict[str, Any]:
    """A stored message as one inbox reader sees it: a templated message rendered for the
    reader (``reader``: recipient JSON of the reading installation and its user) with the
    same variables as a push, ``inbox.unread`` being the inbox's unread count now; the
    language is ``language`` when given, else the reading installation's.  A render that
    fails shows the notification without its templated values, never the template text.
    Any other message is returned as stored."""
    if not is_templated(notification):
        return dict(notification)
    try:
        program = programs.get(message_id, notification)
    except InvalidTemplate:  # accepted at submit: only a changed sandbox gets here
        # nothing that may hold a template: the text fields, the badge, the dictionaries
        dropped = (TEMPLATED, *content.TEXT_FIELDS, "badge")
        return {
            k: v for k, v in notification.items() if k not in dropped and not isinstance(v, dict)
        }
    recipient: dict[str, Any] = {
        "user": reader.get("user"),
        "recipient": None if recipient_data is None else {"data": recipient_data},
        INBOX: {"unread": min(unread, UNREAD_CAP)},
    }
    installation = reader.get("installation") or {}
    if installation.get("platform") is not None:  # a user without installations has none
        recipient["installation"] = installation
    if language is None:
        language = (installation.get("device") or {}).get("language")
    data = variables({"data": notification.get("data") or {}}, recipient)
    try:
        rendered: dict[str, Any] = _render(program, data, language, render_seconds)
    except RenderFailed:
        return program.fallback(language)
    return rendered


@dataclass(frozen=True, slots=True)
class Previewed:
    """What one installation would get: the provider's payload bytes (APNs body, FCM
    ``message`` without its token, Web Push plaintext), or why it would fail."""

    installation: Any  # the preview query's row
    payload: bytes | None
    failed: str | None


def preview(
    request: SendRequestBase,
    providers: Mapping[str, Provider[Any]],
    rows: Sequence[Any],
    *,
    render_seconds: float,
) -> list[Previewed]:
    """Render a checked send for each installation row of
    :func:`pushcore.db.recipients.for_preview` exactly as the send workers would."""
    notification, program = _stored(request)
    given = {r.external_user_id: r.data for r in reversed(request.target.recipients or [])}
    fixed: dict[str, Any] = {}
    out = []
    for row in rows:
        provider = providers[row["platform"]]
        registration = Registration(
            installation_id=row["id"], token=row["token"], p256dh=row["p256dh"], auth=row["auth"]
        )
        if program is None:
            if row["platform"] not in fixed:
                fixed[row["platform"]] = _provider_payload(provider, notification)
            payload = fixed[row["platform"]]
        else:
            user = row["recipient"]["user"]
            own = given.get(user["external_id"]) if user is not None else None
            recipient = {**row["recipient"], "recipient": None if own is None else {"data": own}}
            done = render_batch(
                program,
                provider,
                notification,
                [registration],
                [recipient],
                render_seconds=render_seconds,
            )
            if done.failed:
                out.append(Previewed(row, None, next(iter(done.failed))))
                continue
            payload = done.payloads.payloads[0]
        if isinstance(payload, _Failure):
            out.append(Previewed(row, None, payload.reason))
        else:
            out.append(Previewed(row, payload.preview(), None))
    return out


async def page_for_reader(
    programs: Programs,
    rows: Sequence[Record],
    reader: Mapping[str, Any],
    *,
    language: str | None,
    unread: int,
    render_seconds: float,
) -> list[dict[str, Any]]:
    """The notifications of a page of inbox rows (``message_id``, ``notification``,
    ``recipient_data``) as their reader sees them (:func:`for_reader`), in order.  Bounded:
    a page holds at most its limit of messages, each render at most ``render_seconds`` of
    CPU, and the event loop gets a turn between them."""
    shown: list[dict[str, Any]] = []
    for r in rows:
        notification = r["notification"]
        if is_templated(notification):
            await asyncio.sleep(0)
            notification = for_reader(
                programs,
                r["message_id"],
                notification,
                reader,
                recipient_data=r["recipient_data"],
                language=language,
                unread=unread,
                render_seconds=render_seconds,
            )
        shown.append(dict(notification))
    return shown
