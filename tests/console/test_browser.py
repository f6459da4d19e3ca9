"""The console in a real browser (Debian's chromium through Playwright) against the real
API, a real Dramatiq worker and the provider simulators.  Every page visited is also taken
as a screenshot at desktop and phone width into docs/console/, and no page may log a
JavaScript error or a console error (CSP violations included)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.async_api import Page, expect

from tests.conftest import ADMIN_TOKEN
from tests.console.conftest import DESKTOP, PHONE, Browsing, Client, Seeded, shoot
from tests.fanout.conftest import Launch
from tests.registry.helpers import ADMIN, json

pytestmark = pytest.mark.timeout(180)


async def sign_in(page: Page, browsing: Browsing, credential: str) -> None:
    await page.goto(browsing.url("/console/login"))
    await page.get_by_label("Server key or admin token").fill(credential)
    await page.get_by_role("button", name="Sign in").click()


async def both_widths(browsing: Browsing, credential: str, path: str, name: str) -> None:
    """The page at phone width too, in a session of its own."""
    phone = await browsing.page(PHONE)
    await sign_in(phone, browsing, credential)
    await phone.goto(browsing.url(path))
    await phone.wait_for_load_state("networkidle")
    await shoot(phone, name)
    await phone.context.close()


@pytest.mark.slow
async def test_send_to_a_tag_and_watch_it_finish(
    seeded: Seeded, browsing: Browsing, launch: Launch, sims: object
) -> None:
    await launch(seeded.campaign.sims)
    page = await browsing.page(DESKTOP)
    await sign_in(page, browsing, seeded.server_key)
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    base = f"/console/apps/{seeded.code}"

    # look a user up by email, open one of its installations
    await page.get_by_role("link", name="Audience").click()
    await page.get_by_label("Look up by").select_option("email")
    await page.get_by_label("Value").fill("user-0@example.com")
    await page.get_by_role("button", name="Look up").click()
    await expect(page.get_by_role("heading", name="User user-0")).to_be_visible()
    device = seeded.users["user-0"][0]
    await expect(page.get_by_text(device.token[-8:]).first).to_be_visible()
    await shoot(page, "user")
    await page.get_by_role("link", name=device.installation_id[:8] + "…").click()
    await expect(page.get_by_text(device.installation_id).first).to_be_visible()
    await shoot(page, "installation")

    # compose to the tag, estimate, confirm, send
    await page.get_by_role("link", name="Compose").click()
    await page.get_by_label("Send to").select_option("tags")
    await page.get_by_label("Tags, ids, emails or phones").fill("news")
    await page.get_by_label("Title").fill("Breaking")
    await page.get_by_label("Body").fill("Something happened")
    await page.get_by_role("button", name="Estimate audience").click()
    estimate = page.locator("#estimate .estimate")
    await expect(estimate).to_have_attribute("data-total", "12")
    await expect(estimate).to_contain_text("ios 4, android 4, web 4")
    await shoot(page, "compose")
    await page.get_by_role("button", name="Review and confirm").click()
    await expect(page.get_by_role("heading", name="Confirm")).to_be_visible()
    await expect(page.locator(".estimate")).to_have_attribute("data-total", "12")
    await shoot(page, "confirm")
    await page.get_by_role("button", name="Send now").click()

    # the message page polls until done; the counts are the simulators' own
    await expect(page.locator("#message-status")).to_have_text("done", timeout=60_000)
    live = [d for d in seeded.news if d.live]
    dead = [d for d in seeded.news if not d.live]
    await expect(page.locator("#count-targeted")).to_have_text("12")
    await expect(page.locator("#count-delivered")).to_have_text(str(len(live)))
    await expect(page.locator("#count-removed")).to_have_text(str(len(dead)))
    await expect(page.locator("#count-failed")).to_have_text("0")
    assert all(seeded.campaign.accepted(d) == 1 for d in live)
    message_path = page.url.split(browsing.base, 1)[1]
    await shoot(page, "message")

    for path, name in (
        (f"{base}/", "overview"),
        (f"{base}/audience", "audience"),
        (f"{base}/messages", "messages"),
        (f"{base}/settings", "settings"),
    ):
        response = await page.goto(browsing.url(path))
        assert response is not None
        assert response.status == 200
        await page.wait_for_load_state("networkidle")
        await shoot(page, name)
    for path, name in (
        (f"{base}/", "overview"),
        (f"{base}/compose", "compose"),
        (message_path, "message"),
        (f"{base}/users/user-0", "user"),
    ):
        await both_widths(browsing, seeded.server_key, path, name)
    assert browsing.problems == []


async def test_schedule_and_cancel(seeded: Seeded, browsing: Browsing) -> None:
    page = await browsing.page(DESKTOP)
    await sign_in(page, browsing, seeded.server_key)
    await page.goto(browsing.url(f"/console/apps/{seeded.code}/compose"))
    await page.get_by_label("Title").fill("Later")
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    await page.get_by_label("Send at (UTC; empty: now)").fill(later)
    await page.get_by_role("button", name="Review and confirm").click()
    await page.get_by_role("button", name="Schedule").click()
    await expect(page.locator("#message-status")).to_have_text("scheduled")
    await page.get_by_role("button", name="Cancel this message").click()
    await expect(page.locator("#message-status")).to_have_text("cancelled")
    message_id = page.url.rsplit("/", 1)[1]
    assert (await seeded.campaign.message(message_id))["status"] == "cancelled"
    await page.goto(browsing.url(f"/console/apps/{seeded.code}/messages?status=cancelled"))
    await expect(page.get_by_role("cell", name="cancelled")).to_have_count(1)
    assert browsing.problems == []


async def test_bad_field_shows_the_apis_error(seeded: Seeded, browsing: Browsing) -> None:
    page = await browsing.page(DESKTOP)
    await sign_in(page, browsing, seeded.server_key)
    await page.goto(browsing.url(f"/console/apps/{seeded.code}/compose"))
    await page.get_by_label("Title").fill("Hi")
    await page.get_by_label("Time to live (seconds)").fill("forever")
    await page.get_by_role("button", name="Review and confirm").click()
    ttl = page.get_by_label("Time to live (seconds)")
    await expect(ttl).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#error-ttl_seconds")).to_contain_text(
        "Expected `int | null`, got `str` (ttl_seconds)"
    )
    await expect(ttl).to_have_value("forever")  # what was typed stays
    await shoot(page, "compose-error")
    # an estimate with a bad target says why, in place
    await page.get_by_label("Send to").select_option("emails")
    await page.get_by_label("Tags, ids, emails or phones").fill("not-an-email")
    await page.get_by_role("button", name="Estimate audience").click()
    await expect(page.locator("#estimate")).to_contain_text("target.emails[0]")
    assert browsing.problems == []


async def test_admin_and_wrong_keys(seeded: Seeded, browsing: Browsing, api: Client) -> None:
    other = await json(await api.post("/v1/apps", json={"name": "Other app"}, headers=ADMIN), 201)
    page = await browsing.page(DESKTOP)
    await sign_in(page, browsing, "pcs_this-is-not-a-key")
    await expect(page.get_by_role("alert")).to_have_text(
        "That is not a valid server key or admin token."
    )
    await expect(page.get_by_label("Server key or admin token")).to_have_value("")
    await shoot(page, "login")
    # a key of one app does not see the other
    await sign_in(page, browsing, seeded.server_key)
    response = await page.goto(browsing.url(f"/console/apps/{other['app_code']}/"))
    assert response is not None
    assert response.status == 404
    await expect(page.get_by_role("heading", name="404")).to_be_visible()
    await page.goto(browsing.url("/console/"))
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    # the admin sees every app, creates a key (shown once) and revokes it; signed in with
    # the keyboard alone: the sign-in page opens with the field focused, Tab reaches the
    # button, Enter presses it
    assert await page.evaluate("document.activeElement.id") == "credential"
    await page.keyboard.type(ADMIN_TOKEN)
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Sign in"
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("link", name="Other app")).to_be_visible()
    await shoot(page, "apps")
    await page.locator(f'a[href="/console/apps/{seeded.code}/"]').click()
    await page.get_by_role("link", name="Settings").click()
    await page.get_by_role("button", name="Create a server key").click()
    new_key = await page.locator("#new-key").input_value()
    assert re.fullmatch(r"pcs_[A-Za-z0-9_-]{43}", new_key)
    await page.goto(browsing.url(f"/console/apps/{seeded.code}/settings"))
    await expect(page.locator("#new-key")).to_have_count(0)
    await shoot(page, "settings-admin")  # (without the new key: it is not shown again)
    revoke = page.get_by_role("button", name=re.compile(r"^Revoke key "))
    before = await revoke.count()
    await revoke.last.click()
    await expect(page.get_by_role("button", name=re.compile(r"^Revoke key "))).to_have_count(
        before - 1
    )
    assert browsing.problems == []


async def test_csrf_less_post_is_refused_in_the_browser(seeded: Seeded, browsing: Browsing) -> None:
    page = await browsing.page(DESKTOP)
    await sign_in(page, browsing, seeded.server_key)
    # a form posted from the page without the token (as a foreign page's would be)
    status = await page.evaluate(
        """async (url) => {
            const body = new URLSearchParams({target_kind: "all", "notification.title": "x"});
            const r = await fetch(url, {method: "POST", body});
            return r.status;
        }""",
        browsing.url(f"/console/apps/{seeded.code}/send"),
    )
    assert status == 403
    assert browsing.problems == [
        f"403 for {browsing.url(f'/console/apps/{seeded.code}/send')} ({page.url})"
    ]
    listed = await seeded.campaign.client.get(
        f"/v1/apps/{seeded.code}/messages", headers=seeded.campaign.server
    )
    assert (await listed.json())["messages"] == []


async def test_inbox_only_message_shows_in_the_users_inbox(
    seeded: Seeded, browsing: Browsing, launch: Launch, sims: object
) -> None:
    await launch(seeded.campaign.sims)
    page = await browsing.page(DESKTOP)
    await sign_in(page, browsing, seeded.server_key)
    base = f"/console/apps/{seeded.code}"
    await page.goto(browsing.url(f"{base}/compose"))
    await page.get_by_label("Send to").select_option("external_user_ids")
    await page.get_by_label("Tags, ids, emails or phones").fill("user-0")
    await page.get_by_label("Title").fill("Your receipt")
    await page.get_by_label("Also store in the inbox of every user it reaches").check()
    topic = page.get_by_label(re.compile(r"^Inbox topic \(optional"))
    await topic.fill("t" * 65)
    await page.get_by_role("button", name="Review and confirm").click()
    # the API's own 422 for the topic, next to it, with what was typed kept
    await expect(topic).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#error-inbox-topic")).to_contain_text(
        "Expected `str` of length <= 64 (inbox.topic)"
    )
    await expect(topic).to_have_value("t" * 65)
    await shoot(page, "compose-inbox-error")
    await topic.fill("billing")
    await page.get_by_label("Inbox only (no push to devices)").check()
    await page.get_by_role("button", name="Review and confirm").click()
    await expect(page.get_by_role("heading", name="Confirm")).to_be_visible()
    devices = seeded.users["user-0"]
    before = [seeded.campaign.received(d) for d in devices]  # the simulators outlive a test
    shown = page.locator("#confirm-inbox")
    await expect(shown).to_contain_text("billing")
    await expect(shown).to_contain_text("no (inbox only)")
    await expect(page.locator("#inbox-only-note")).to_contain_text("no push")
    await shoot(page, "confirm-inbox")
    await page.get_by_role("button", name="Send now").click()
    await expect(page.locator("#message-status")).to_have_text("done", timeout=60_000)
    await expect(page.locator("#count-inboxed")).to_have_text("1")
    await expect(page.locator("#count-seen")).to_have_text("0")
    await expect(page.locator("#count-delivered")).to_have_text("0")  # nothing was pushed
    assert [seeded.campaign.received(d) for d in devices] == before

    await page.goto(browsing.url(f"{base}/users/user-0"))
    await expect(page.locator("#inbox-total")).to_have_text("1")
    await expect(page.locator("#inbox-unread")).to_have_text("1")
    row = page.locator("#inbox tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("billing")
    await expect(row).to_contain_text("Your receipt")
    await expect(row).to_contain_text("unread")
    await shoot(page, "user-inbox")
    await both_widths(browsing, seeded.server_key, f"{base}/users/user-0", "user-inbox")
    assert browsing.problems == []
