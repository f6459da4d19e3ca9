"""A small async client for upstream systems: send (also to raw tokens), follow and cancel
messages, read per-recipient results, manage webhooks; link users.

    async with PushcoreClient("https://push.internal", app_code, server_key) as push:
        message = await push.send({"external_user_ids": ["42"]}, {"title": "Hi"})
        report = await push.wait(message["message_id"], timeout=300)
        async for failed in push.results(message["message_id"], outcome="failed"): ...

Errors answered by the API raise :class:`ClientError` with the API's ``code``, ``message``
and ``field``; network problems raise it with ``status`` 0.  Every call has a timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from pushcore.errors import PushcoreError

FINAL = ("done", "cancelled", "failed")


class ClientError(PushcoreError):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" ({field})" if field else ""))
        self.status = status
        self.code = code
        self.field = field


class PushcoreClient:
    def __init__(
        self,
        base_url: str,
        app_code: str,
        server_key: str,
        *,
        timeout: float = 30.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._app = f"/v1/apps/{quote(app_code, safe='')}"
        self._headers = {"Authorization": f"Bearer {server_key}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None

    async def __aenter__(self) -> PushcoreClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    async def _call(
        self, method: str, path: str, body: Any = None, *, token: str | None = None
    ) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = self._headers if token is None else {"Authorization": f"Bearer {token}"}
        try:
            async with self._session.request(
                method, self._base + path, json=body, headers=headers
            ) as resp:
                if resp.status == 204:
                    return None
                answer = await resp.json(content_type=None)
                if resp.status >= 400:
                    error = answer.get("error", {}) if isinstance(answer, dict) else {}
                    raise ClientError(
                        resp.status,
                        error.get("code", "http_error"),
                        error.get("message", resp.reason or ""),
                        error.get("field"),
                    )
                return answer
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ClientError(0, "unreachable", str(exc) or type(exc).__name__) from exc

    # --- the app -------------------------------------------------------------------------

    async def app(self) -> dict[str, Any]:
        """The app as the API shows it (credentials by their public parts, ``quotas``)."""
        result: dict[str, Any] = await self._call("GET", self._app)
        return result

    async def set_quotas(
        self, quotas: dict[str, dict[str, int] | None] | None, *, admin_token: str
    ) -> dict[str, Any]:
        """Per-provider quotas of the app, shared by all its messages (``{"fcm":
        {"per_minute": 600000}}``; a provider given ``None`` becomes unlimited, left out
        keeps its quota; ``None`` removes them all).  An admin call: it takes the admin
        token, not the server key.  Returns the app."""
        result: dict[str, Any] = await self._call(
            "PATCH", self._app, {"quotas": quotas}, token=admin_token
        )
        return result

    # --- messages ------------------------------------------------------------------------

    async def send(
        self, target: dict[str, Any], notification: dict[str, Any], **options: Any
    ) -> dict[str, Any]:
        """``options``: platforms, primary_only, ttl_seconds, priority, collapse_key,
        send_at (ISO 8601), send_at_local (a wall-clock time without offset, each
        installation at that time in its registered time zone) with default_time_zone
        (IANA, required with it), idempotency_key, apns, fcm, webpush, localizations, inbox
        (true or ``{"topic", "expires_at"}``), push (false: inbox only), rate_per_minute (1
        to 10,000,000: the push is spread evenly at that rate, counted across every worker;
        a small list target then goes through the planner instead of the fast lane).  The
        message's ``counts.waiting`` are the recipients whose local time has not come."""
        body = {"target": target, "notification": notification, **options}
        result: dict[str, Any] = await self._call("POST", f"{self._app}/messages", body)
        return result

    async def send_many(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Up to 1,000 send requests (each a body as :meth:`send` builds it) in one call;
        one answer per request, in order: ``{"status": 202|200, "message": {...}}`` or
        ``{"status": 422, "error": {...}}`` (one refused request refuses only itself)."""
        body = {"messages": requests}
        result: dict[str, Any] = await self._call("POST", f"{self._app}/messages:batch", body)
        answers: list[dict[str, Any]] = result["results"]
        return answers

    async def message(self, message_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"{self._app}/messages/{message_id}")
        return result

    async def messages(self, *, limit: int = 20, before: str | None = None) -> list[Any]:
        query = f"?limit={limit}" + (f"&before={before}" if before else "")
        result: dict[str, Any] = await self._call("GET", f"{self._app}/messages{query}")
        return list(result["messages"])

    async def cancel(self, message_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("DELETE", f"{self._app}/messages/{message_id}")
        return result

    async def wait(
        self, message_id: str, *, timeout: float = 600.0, interval: float = 1.0
    ) -> dict[str, Any]:
        """Poll until the message is final and nothing is pending; TimeoutError after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.message(message_id)
            if msg["status"] in FINAL and msg["counts"]["pending"] == 0:
                return msg
            if time.monotonic() > deadline:
                raise TimeoutError(f"message {message_id} still {msg['status']}")
            await asyncio.sleep(interval)

    async def results_page(
        self,
        message_id: str,
        *,
        outcome: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        """One page of per-recipient results: ``{"results": [...], "next_cursor"}``;
        ``outcome``: delivered, invalid or failed."""
        query = urlencode(
            {k: v for k, v in {"outcome": outcome, "cursor": cursor, "limit": limit}.items() if v}
        )
        result: dict[str, Any] = await self._call(
            "GET", f"{self._app}/messages/{message_id}/results?{query}"
        )
        return result

    async def results(
        self, message_id: str, *, outcome: str | None = None, page_size: int = 1000
    ) -> AsyncIterator[dict[str, Any]]:
        """Every per-recipient result of a message (of one ``outcome``), page after page."""
        cursor: str | None = None
        while True:
            page = await self.results_page(
                message_id, outcome=outcome, cursor=cursor, limit=page_size
            )
            for item in page["results"]:
                yield item
            cursor = page["next_cursor"]
            if cursor is None:
                return

    # --- webhooks ------------------------------------------------------------------------

    async def create_webhook(
        self, url: str, events: list[str], *, description: str | None = None
    ) -> dict[str, Any]:
        """Register an endpoint; the answer's ``secret`` (whsec_…) is shown only here."""
        body: dict[str, Any] = {"url": url, "events": events}
        if description is not None:
            body["description"] = description
        result: dict[str, Any] = await self._call("POST", f"{self._app}/webhooks", body)
        return result

    async def webhooks(self) -> list[dict[str, Any]]:
        result: dict[str, Any] = await self._call("GET", f"{self._app}/webhooks")
        return list(result["webhooks"])

    async def update_webhook(self, webhook_id: str, **changes: Any) -> dict[str, Any]:
        """``changes``: url, events, description, enabled."""
        result: dict[str, Any] = await self._call(
            "PATCH", f"{self._app}/webhooks/{webhook_id}", changes
        )
        return result

    async def delete_webhook(self, webhook_id: str) -> None:
        await self._call("DELETE", f"{self._app}/webhooks/{webhook_id}")

    async def test_webhook(self, webhook_id: str) -> str:
        """Queue a ``webhook.test`` event; returns its ``webhook-id``."""
        result: dict[str, Any] = await self._call("POST", f"{self._app}/webhooks/{webhook_id}/test")
        return str(result["event_id"])

    async def webhook_deliveries(self, webhook_id: str, *, limit: int = 20) -> list[Any]:
        result: dict[str, Any] = await self._call(
            "GET", f"{self._app}/webhooks/{webhook_id}/deliveries?limit={limit}"
        )
        return list(result["deliveries"])

    # --- users ---------------------------------------------------------------------------

    async def personalize(
        self, installation_id: str, external_user_id: str, **fields: Any
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "PUT",
            f"{self._app}/installations/{installation_id}/user",
            {"external_user_id": external_user_id, **fields},
        )
        return result

    async def depersonalize(self, installation_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "DELETE", f"{self._app}/installations/{installation_id}/user"
        )
        return result

    async def user(self, external_user_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "GET", f"{self._app}/users/{quote(external_user_id, safe='')}"
        )
        return result

    async def find_users(self, *, email: str | None = None, msisdn: str | None = None) -> list[Any]:
        query = f"email={quote(email)}" if email is not None else f"msisdn={quote(msisdn or '')}"
        result: dict[str, Any] = await self._call("GET", f"{self._app}/users?{query}")
        return list(result["users"])

    async def erase_user(self, external_user_id: str) -> None:
        await self._call("DELETE", f"{self._app}/users/{quote(external_user_id, safe='')}")

    # --- inbox ---------------------------------------------------------------------------

    def _inbox(self, external_user_id: str) -> str:
        return f"{self._app}/users/{quote(external_user_id, safe='')}/inbox"

    async def inbox(
        self,
        external_user_id: str,
        *,
        topics: list[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """A page of the user's inbox, newest first, with its counts and ``next_cursor``;
        ``since`` (inclusive) and ``until`` (exclusive) are RFC 3339 times on sent_at."""
        query: list[tuple[str, str | int]] = [("topic", t) for t in topics or []]
        for name, value in (("from", since), ("to", until), ("cursor", cursor)):
            if value is not None:
                query.append((name, value))
        query.append(("limit", limit))
        path = f"{self._inbox(external_user_id)}?{urlencode(query)}"
        result: dict[str, Any] = await self._call("GET", path)
        return result

    async def mark_seen(self, external_user_id: str, message_ids: list[str]) -> dict[str, Any]:
        """Up to 100 ids; ``{"count_unread", "ignored"}``."""
        result: dict[str, Any] = await self._call(
            "POST", f"{self._inbox(external_user_id)}/seen", {"message_ids": message_ids}
        )
        return result

    async def delete_from_inbox(self, external_user_id: str, message_id: str) -> None:
        await self._call("DELETE", f"{self._inbox(external_user_id)}/{message_id}")
