"""Console fixtures: the fan-out suite's simulators, workers and API (imported from
tests/fanout/conftest.py), an app with devices of known fates, and Debian's chromium driven
by Playwright (Playwright's own browser download is not used)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Error,
    Page,
    Response,
    async_playwright,
)

from tests.fanout import conftest as fanout
from tests.fanout.harness import Campaign, Device

# the fan-out suite's fixtures, shared under their own names
sim_ca_dir = fanout.sim_ca_dir
clean_redis = fanout.clean_redis
sims = fanout.sims
worker_factory = fanout.worker_factory
launch = fanout.launch
fanout_settings = fanout.fanout_settings
api = fanout.api

CHROMIUM = os.environ.get("PUSHCORE_TEST_CHROMIUM", "") or shutil.which("chromium") or ""
# The screenshots in docs/console/ are these tests' own: `make screenshots` (or
# CONSOLE_SCREENSHOTS=docs) writes them there; other runs write them to a temporary
# folder, so that a test run leaves the checkout as it was.
DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
SHOTS = (
    DOCS_SHOTS
    if os.environ.get("CONSOLE_SCREENSHOTS") == "docs"
    else Path(tempfile.gettempdir()) / "pushcore-console-screenshots"
)
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 780}

Client = TestClient[web.Request, web.Application]


@dataclass
class Seeded:
    """An app with credentials for the simulators and a small audience: users with emails,
    tagged installations on every platform, a few dead tokens."""

    campaign: Campaign
    news: list[Device] = field(default_factory=list)  # tagged "news"
    users: dict[str, list[Device]] = field(default_factory=dict)

    @property
    def code(self) -> str:
        return self.campaign.code

    @property
    def server_key(self) -> str:
        return self.campaign.server_key


async def seed(client: Client, sims: Any) -> Seeded:
    campaign = Campaign(client, sims)
    await campaign.create_app()
    seeded = Seeded(campaign)
    n = 0
    for platform in ("ios", "android", "web"):
        for i in range(4):
            n += 1
            live = i != 3  # one dead token per platform among the tagged ones
            device = await campaign.register(
                platform,
                n,
                live=live,
                tags=["news", platform],
                device={"app_version": f"2.{i}.0", "language": "en"},
            )
            seeded.news.append(device)
        n += 1
        await campaign.register(platform, n, tags=["sports"])
    for index, device in enumerate(seeded.news[:6]):
        user = f"user-{index // 2}"
        await campaign.personalize(device, user, email=f"{user}@example.com")
        seeded.users.setdefault(user, []).append(device)
    return seeded


@pytest.fixture
async def seeded(api: Client, sims: Any) -> AsyncIterator[Seeded]:
    """The seeded app; at the end its unfinished messages are cancelled, so that a later
    test's worker does not send them (the tests share the database, and the simulators'
    tokens are the same in every test)."""
    made = await seed(api, sims)
    yield made
    server = made.campaign.server
    listed = await api.get(f"/v1/apps/{made.code}/messages?limit=100", headers=server)
    for message in (await listed.json())["messages"]:
        if message["status"] in ("scheduled", "queued", "sending"):
            gone = await api.delete(
                f"/v1/apps/{made.code}/messages/{message['message_id']}", headers=server
            )
            assert gone.status == 200


class Browsing:
    """One browser page at a time, every console error and page error collected."""

    def __init__(self, browser: Browser, base: str) -> None:
        self.browser = browser
        self.base = base.rstrip("/")
        self.problems: list[str] = []

    async def page(self, viewport: dict[str, int] | None = None) -> Page:
        context = await self.browser.new_context(viewport=viewport or DESKTOP)  # type: ignore[arg-type]
        page = await context.new_page()

        def on_console(message: ConsoleMessage) -> None:
            # the browser logs every 4xx it loads, pages included (a form answered 422 with
            # its errors, a 404 page): failed loads are judged by on_response instead
            if message.text.startswith("Failed to load resource"):
                return
            if message.type in ("error", "warning"):
                self.problems.append(f"console {message.type}: {message.text} ({page.url})")

        def on_error(error: Error) -> None:
            self.problems.append(f"page error: {error} ({page.url})")

        def on_response(response: Response) -> None:
            # a script, style sheet or fragment that does not load is a broken page
            if response.request.resource_type != "document" and response.status >= 400:
                self.problems.append(f"{response.status} for {response.url} ({page.url})")

        page.on("console", on_console)
        page.on("pageerror", on_error)
        page.on("response", on_response)
        return page

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
async def browsing(api: Client) -> AsyncIterator[Browsing]:
    assert CHROMIUM, "chromium is not installed (the set-up installs Debian's chromium)"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            # as root (CI, containers) chromium refuses to start with its sandbox
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield Browsing(browser, str(api.make_url("/")))
        finally:
            await browser.close()


async def unlabelled(page: Page) -> list[str]:
    """The page's form controls without a label (a <label>, aria-label or aria-labelledby)."""
    found: list[str] = await page.evaluate(
        """() => [...document.querySelectorAll("input, select, textarea")]
            .filter((c) => c.type !== "hidden")
            .filter((c) => !(c.labels && c.labels.length) && !c.getAttribute("aria-label")
                           && !c.getAttribute("aria-labelledby"))
            .map((c) => c.name || c.id || c.outerHTML)"""
    )
    return found


async def shoot(page: Page, name: str) -> None:
    """A full-page screenshot of the page at its width, for docs/console/."""
    assert await unlabelled(page) == [], f"inputs without a label on {page.url}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    kind = "phone" if (page.viewport_size or DESKTOP)["width"] < 500 else "desktop"
    await page.screenshot(path=str(SHOTS / f"{name}-{kind}.png"), full_page=True)
