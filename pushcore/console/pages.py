"""What every console page needs: who is signed in, which app they may see, the template
context (CSRF token, navigation) and the error page."""

from __future__ import annotations

import hmac
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from pushcore.api.state import APPS, POOL, SETTINGS
from pushcore.console.session import CSRF_FIELD, CSRF_HEADER
from pushcore.console.state import KEY_APPS, PAGE_APP, SESSION, SESSIONS, VIEWER, Viewer
from pushcore.db import apps as app_queries
from pushcore.db import console as queries
from pushcore.db.pool import Record


async def viewer(request: web.Request) -> Viewer | None:
    """Who the session belongs to, if it is still valid: an admin session ends when the
    admin token changes, a server key's when the key is revoked."""
    session = request[SESSION]
    settings = request.config_dict[SETTINGS]
    if session.kind == "admin":
        token = settings.admin_token
        if token is None or session.admin_mark is None:
            return None
        mark = request.app[SESSIONS].admin_mark(token)
        if not hmac.compare_digest(session.admin_mark, mark):
            return None
        return Viewer("admin")
    if session.kind == "server" and session.key_id is not None:
        cache = request.app[KEY_APPS]
        row = cache.get(session.key_id)
        if row is None:
            row = await queries.app_of_key(request.config_dict[POOL], session.key_id)
            if row is None:
                return None
            cache.put(session.key_id, row)
        return Viewer("server", app_code=row["code"], key_id=session.key_id)
    return None


async def require(request: web.Request) -> Viewer:
    """The signed-in viewer, or a redirect to the sign-in page."""
    found = await viewer(request)
    if found is None:
        raise web.HTTPSeeOther(request.app.router["login"].url_for())
    request[VIEWER] = found
    return found


async def app_row(request: web.Request, who: Viewer) -> Record:
    """The app of the page's ``{app_code}`` (credentials included), if this viewer may see
    it; 404 otherwise, exactly as for another app's key on the JSON API."""
    code = request.match_info["app_code"]
    if not who.admin and code != who.app_code:
        raise web.HTTPNotFound(reason="No such app.")
    cache = request.config_dict[APPS]
    row = cache.get(code)
    if row is None:
        row = await app_queries.get_app(request.config_dict[POOL], code)
        if row is None:
            raise web.HTTPNotFound(reason="No such app.")
        cache.put(code, row)
    request[PAGE_APP] = row
    return row


def render(
    name: str, request: web.Request, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    """A page: ``context`` plus what every template gets (the CSRF token, the viewer, the
    app of the page).  Not aiohttp_jinja2's context processors: their middleware keeps its
    state under a plain string key of the request, which aiohttp warns about."""
    return aiohttp_jinja2.render_template(
        name, request, {**common(request), **context}, status=status
    )


def common(request: web.Request) -> dict[str, Any]:
    """Every template gets the CSRF token, the viewer and the app of the page."""
    session = request.get(SESSION)
    return {
        "csrf_field": CSRF_FIELD,
        "csrf_header": CSRF_HEADER,
        "csrf_token": session.csrf if session is not None else "",
        "viewer": request.get(VIEWER),
        "current_app": request.get(PAGE_APP),
        "path": request.path,
    }


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    if SESSIONS not in request.app:  # not inside the console app
        return web.Response(status=status, text=message)
    return render("error.html", request, {"status": status, "message": message}, status=status)
