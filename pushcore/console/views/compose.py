"""Compose and send: the target builder and the notification form, the audience estimate,
the confirm step and the send.

Both steps go through the JSON API's own types and service code: the form becomes the
send route's body, decoded with its struct (``SendRequest``; the estimate's with
``EstimateIn``), checked by :func:`pushcore.fanout.submit.check`, counted by
:func:`pushcore.fanout.estimate.estimate` and stored by :func:`pushcore.fanout.submit.submit`,
so the console has no rules of its own and shows the API's 422s next to their fields.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from aiohttp import web

from pushcore.api.errors import ApiError, from_validation
from pushcore.api.routes.estimate import EstimateIn
from pushcore.api.state import ENQUEUER, LANE_WAKER, POOL, PROVIDERS, SETTINGS
from pushcore.console.forms import (
    MAX_CSV_BYTES,
    ComposeForm,
    FormError,
    audience_request,
    form_field,
    read_form,
    send_request,
)
from pushcore.console.pages import app_row, render, require
from pushcore.db.pool import Record
from pushcore.fanout.errors import InvalidSend
from pushcore.fanout.estimate import Estimate, estimate
from pushcore.fanout.request import SendRequest, SendRequestBase
from pushcore.fanout.submit import check, submit
from pushcore.providers import registry

ROUTES = web.RouteTableDef()


class Refused(Exception):
    """The API's error for a field of the form (field None: the form as a whole)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _decode(body: dict[str, Any], kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(msgspec.json.encode(body), type=kind)
    except msgspec.ValidationError as exc:
        error: ApiError = from_validation(exc)
        raise Refused(form_field(error.field), _said(error)) from None


def _said(error: ApiError) -> str:
    return f"{error.message} ({error.field})" if error.field else error.message


async def _estimate(request: web.Request, app: Record, form: ComposeForm) -> Estimate:
    try:
        wanted: EstimateIn = _decode(audience_request(form), EstimateIn)
        return await estimate(
            request.config_dict[POOL],
            app,
            wanted.target,
            platforms=wanted.platforms,
            primary_only=wanted.primary_only,
            policy=request.config_dict[SETTINGS].endpoint_policy(),
        )
    except FormError as exc:
        raise Refused(exc.field, exc.message) from None
    except InvalidSend as exc:
        raise Refused(form_field(exc.field), f"{exc.message} ({exc.field})") from None


def _checked(request: web.Request, app: Record, body: dict[str, Any]) -> SendRequestBase:
    """The send request as the send route decodes and checks it."""
    send: SendRequestBase = _decode(body, SendRequest)
    try:
        check(send, app, request.config_dict[SETTINGS], request.config_dict[PROVIDERS])
    except InvalidSend as exc:
        raise Refused(form_field(exc.field), f"{exc.message} ({exc.field})") from None
    return send


def _page(
    request: web.Request,
    form: ComposeForm,
    *,
    errors: dict[str | None, str] | None = None,
    found: Estimate | None = None,
    status: int = 200,
) -> web.Response:
    context = {
        "form": form,
        "errors": errors or {},
        "estimate": found,
        "platform_names": registry.NAMES,
    }
    return render("compose.html", request, context, status=status)


async def _form(request: web.Request) -> tuple[ComposeForm, str]:
    data = await request.post()
    upload = data.get("target_file")
    csv_text = None
    if isinstance(upload, web.FileField):
        raw = await asyncio.to_thread(upload.file.read, MAX_CSV_BYTES + 1)  # a temporary file
        if len(raw) > MAX_CSV_BYTES:
            raise Refused("target", f"the CSV file exceeds {MAX_CSV_BYTES // (1024 * 1024)} MiB")
        try:
            csv_text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise Refused("target", "the CSV file is not UTF-8 text") from None
    action = data.get("action")
    # a CSV of up to 8 MiB is parsed off the event loop
    form = await asyncio.to_thread(read_form, data, csv_text) if csv_text else read_form(data)
    return form, action if isinstance(action, str) else "review"


@ROUTES.get("/apps/{app_code}/compose", name="compose")
async def compose(request: web.Request) -> web.StreamResponse:
    who = await require(request)
    await app_row(request, who)
    return _page(request, ComposeForm())


@ROUTES.post("/apps/{app_code}/compose")
async def compose_post(request: web.Request) -> web.StreamResponse:
    """``action=estimate``: the estimate (an htmx fragment, or the whole form without
    JavaScript); ``action=review``: the confirm step, or the form with its errors."""
    who = await require(request)
    app = await app_row(request, who)
    form = ComposeForm()
    try:
        form, action = await _form(request)
        found = await _estimate(request, app, form)
        if action == "estimate":
            if request.headers.get("HX-Request") == "true":
                return render("estimate.html", request, {"estimate": found, "errors": {}})
            return _page(request, form, found=found)
        body = send_request(form)
        _checked(request, app, body)
    except (Refused, FormError) as exc:
        errors = {exc.field: exc.message}
        if request.headers.get("HX-Request") == "true":
            return render("estimate.html", request, {"estimate": None, "errors": errors})
        return _page(request, form, errors=errors, status=422)
    context = {"form": form, "estimate": found, "request_json": msgspec.json.encode(body).decode()}
    return render("confirm.html", request, context)


@ROUTES.post("/apps/{app_code}/send", name="send")
async def send(request: web.Request) -> web.StreamResponse:
    """The confirmed request, decoded and checked again (nothing typed is trusted because
    it went through a page), then stored exactly as the send route stores it."""
    who = await require(request)
    app = await app_row(request, who)
    data = await request.post()
    raw = data.get("request_json")
    try:
        body = msgspec.json.decode(raw if isinstance(raw, str) else "null")
    except msgspec.DecodeError:
        body = None
    if not isinstance(body, dict):
        missing = "The confirmed request is missing: compose the message again."
        errors: dict[str | None, str] = {None: missing}
        return _page(request, ComposeForm(), errors=errors, status=422)
    try:
        send_body = _checked(request, app, body)
    except Refused as exc:
        return _page(request, ComposeForm(), errors={exc.field: exc.message}, status=422)
    parent = request.config_dict
    try:
        row, _ = await submit(
            parent[POOL],
            parent[SETTINGS],
            app,
            send_body,
            parent[ENQUEUER].plan,
            providers=parent[PROVIDERS],
            wake_lane=parent[LANE_WAKER].poke,
        )
    except InvalidSend as exc:
        refused: dict[str | None, str] = {form_field(exc.field): f"{exc.message} ({exc.field})"}
        return _page(request, ComposeForm(), errors=refused, status=422)
    raise web.HTTPSeeOther(
        request.app.router["message"].url_for(
            app_code=app["code"], message_id=str(row["public_id"])
        )
    )
