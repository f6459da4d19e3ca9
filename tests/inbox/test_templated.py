"""Templated messages and the inbox, end to end (HTTP, real workers, the simulators):
``inbox.unread`` in a push counts the message itself, and an inbox shows each user the
message rendered for them, never the template text."""

from __future__ import annotations

from typing import Any

import pytest

from pushcore.gateways.simulators import Simulators
from tests.fanout.conftest import Launch
from tests.fanout.test_templates import received, rsims, shown  # noqa: F401  (fixture)
from tests.inbox.helpers import Inboxes
from tests.registry.helpers import Client, json

pytestmark = pytest.mark.slow

TEMPLATED = {
    "title": "{{ user.attributes.first_name }}",  # no default: empty for bob, so left out
    "body": "Hi {{ user.attributes.first_name | default: 'there' }}, "
    "{{ inbox.unread }} unread on {{ installation.platform }}",
    "badge": "{{ inbox.unread }}",
    "data": {"order": "{{ recipient.data.order | default: 'none' }}"},
}


def _notifications(page: dict[str, Any]) -> list[dict[str, Any]]:
    """Title, body, badge and data of each message of an inbox page (what is not there is
    left out)."""
    shown = ("title", "body", "badge", "data")
    return [
        {k: v for k, v in m["notification"].items() if k in shown and v is not None}
        for m in page["messages"]
    ]


async def test_unread_counts_the_message_itself_and_the_inbox_renders_per_user(
    api: Client,
    rsims: Simulators,  # noqa: F811
    launch: Launch,
) -> None:
    box = Inboxes(api, rsims)
    await box.create_app()
    ana = await box.register("ios", 1, device={"language": "fr-FR"})
    await box.personalize(ana, "ana", attributes={"first_name": "Ana"})
    bob = await box.user_device("bob", "android")
    await launch(rsims)

    # ana: two inbox notes, one of them seen (1 unread); bob: none
    notes = [await box.note(target={"external_user_ids": ["ana"]}) for _ in range(2)]
    for note in notes:
        assert (await box.wait(note["message_id"]))["status"] == "done"
    await box.server_seen("ana", [notes[0]["message_id"]])

    # a lane send (its inbox entries written with its batches) with per-recipient data;
    # its preview first (the same count: the message is counted before it exists)
    body: dict[str, Any] = {
        "target": {"recipients": [{"external_user_id": "ana", "data": {"order": "A-1"}}]},
        "notification": TEMPLATED,
        "localizations": {"fr": {"body": "Salut {{ user.attributes.first_name }}"}},
        "inbox": True,
    }
    resp = await box.client.post(
        f"/v1/apps/{box.code}/messages/preview",
        json={"message": body, "external_user_id": "ana"},
        headers=box.server,
    )
    previewed = (await json(resp, 200))["payloads"]
    assert [shown("ios", p["payload"]) for p in previewed] == [
        {"title": "Ana", "body": "Salut Ana", "badge": 2, "data": {"order": "A-1"}}
    ]
    sent = await box.send(**body)
    assert (await box.wait(sent["message_id"]))["counts"]["delivered"] == 1
    # a broadcast through the planner (the inbox row written after the batches)
    wide = await box.send(target={"all": True}, notification=TEMPLATED, inbox=True)
    assert (await box.wait(wide["message_id"]))["counts"]["delivered"] == 2

    pushed = {d.token: [shown(d.platform, p) for p in received(box, d)] for d in (ana, bob)}
    assert pushed[ana.token] == [
        # the unread note and the message itself
        {"title": "Ana", "body": "Salut Ana", "badge": 2, "data": {"order": "A-1"}},
        {"title": "Ana", "body": "Hi Ana, 3 unread on ios", "badge": 3, "data": {"order": "none"}},
    ]
    assert pushed[bob.token] == [
        {"title": None, "body": "Hi there, 1 unread on android", "badge": 1,
         "data": {"order": "none"}},
    ]  # fmt: skip

    # the inbox: each user's own rendering of the same stored messages, now (4 unread for
    # ana, 1 for bob), in the reading installation's language or the one asked for
    ana_box = await box.device_inbox(ana)
    assert ana_box["count_unread"] == 3
    wide_ana, sent_ana = _notifications(ana_box)[:2]
    assert wide_ana == {
        "title": "Ana",
        "body": "Hi Ana, 3 unread on ios",
        "badge": 3,
        "data": {"order": "none"},
    }
    # the data given for ana, in the installation's language (fr-FR: fr)
    assert sent_ana == {"title": "Ana", "body": "Salut Ana", "badge": 3, "data": {"order": "A-1"}}
    english = _notifications(await box.server_inbox("ana", language="en"))[1]
    assert english["body"] == "Hi Ana, 3 unread on ios"
    french = _notifications(await box.server_inbox("ana", language="fr-CA"))[1]
    assert french["body"] == "Salut Ana"
    bob_box = await box.server_inbox("bob")
    assert _notifications(bob_box) == [
        {"body": "Hi there, 1 unread on android", "badge": 1, "data": {"order": "none"}}
    ]
    assert "templated" not in str(ana_box)
    assert "{{" not in str(ana_box)
    # an inbox-only templated note to a user the app has never seen (created by the send,
    # no installation: its installation variables are not there)
    note = await box.note(target={"external_user_ids": ["cid"]}, notification=TEMPLATED)
    assert (await box.wait(note["message_id"]))["status"] == "done"
    assert _notifications(await box.server_inbox("cid")) == [
        {"body": "Hi there, 1 unread on ", "badge": 1, "data": {"order": "none"}}
    ]
