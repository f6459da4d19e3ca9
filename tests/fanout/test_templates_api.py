"""Per-recipient content's contract without workers: every new field's bad inputs (422
naming the field and, for templates, the position), registration of language and time
zone, the preview route's bad inputs, and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest

from pushcore.gateways.simulators import Simulators
from tests.fanout.harness import Campaign
from tests.registry.helpers import Client, json

ALL = {"all": True}


def send(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"target": ALL, "notification": {"title": "Hi"}}
    body.update(fields)
    return body


def note(**fields: Any) -> dict[str, Any]:
    return send(notification=fields)


# (body, field, words the message must contain)
CASES: list[tuple[dict[str, Any], str, str]] = [
    (note(title="Hi {{ user.name "), "notification.title", "at 1:"),
    (note(body="line one\n{% if %}x{% endif %}"), "notification.body", "at 2:"),
    (note(title="Hi {{ customer.name }}"), "notification.title", "unknown variable 'customer'"),
    (note(title="{{ user.email | shout }}"), "notification.title", "unknown filter 'shout'"),
    (note(data={"k": "{{ message.data.x | nope }}"}), "notification.data.k", "unknown filter"),
    (note(url="https://x/{{ oops }}"), "notification.url", "unknown variable 'oops'"),
    (note(image="{% include 'secrets' %}"), "notification.image", "unexpected tag 'include'"),
    (note(title="{% render 'file' %}"), "notification.title", "unexpected tag 'render'"),
    (
        note(title="{% for i in (1..100000000) %}{{ i }}{% endfor %}"),
        "notification.title",
        "range literals are not allowed",
    ),
    (note(badge="many"), "notification", "badge did not render as a whole number"),
    (note(badge="{{ user.attributes.n }}x"), "notification", "not render as a whole number"),
    (note(badge=-1), "notification.badge", ""),
    (note(badge="x" * 1025), "notification.badge", ""),
    (
        send(apns={"aps": {"alert": {"title": "{{ who }}"}}}),
        "apns.aps.alert.title",
        "unknown variable 'who'",
    ),
    (
        note(title="t", fcm={"android": {"notification": {"tag": "{{ x | y }}"}}}),
        "notification.fcm.android.notification.tag",
        "",
    ),
    (send(localizations={"fr": {"title": "{{ nom }}"}}), "localizations.fr.title", "at 1:4"),
    # msgspec names a value of a dictionary by [...], not by its key
    (send(localizations={"fr": {"subtitle": "x"}}), "localizations[...].subtitle", ""),
    (send(localizations={"fr": {"badge": -2}}), "localizations[...].badge", ""),
    (send(localizations={"not a tag": {"title": "x"}}), "localizations", ""),
    (send(localizations={"zz-QQ": {"title": "x"}}), "localizations.zz-QQ", "BCP 47"),
    (send(localizations={f"x{i}": {} for i in range(101)}), "localizations", ""),
    (send(localizations=["fr"]), "localizations", ""),
    (send(target={"recipients": []}), "target.recipients", ""),
    (send(target={"recipients": [{"data": {}}]}), "target.recipients[0].external_user_id", ""),
    (
        send(target={"recipients": [{"external_user_id": ""}]}),
        "target.recipients[0].external_user_id",
        "",
    ),
    (
        send(target={"recipients": [{"external_user_id": "u", "data": ["x"]}]}),
        "target.recipients[0].data",
        "",
    ),
    (
        send(target={"recipients": [{"external_user_id": "u", "data": {"k": "x" * 1025}}]}),
        "target.recipients[0].data[...]",
        "",
    ),
    (
        send(target={"recipients": [{"external_user_id": "u", "data": {"k": {"deep": 1}}}]}),
        "target.recipients[0].data[...]",
        "",
    ),
    (
        send(
            target={
                "recipients": [{"external_user_id": "u", "data": {f"k{i}": i for i in range(51)}}]
            }
        ),
        "target.recipients[0].data",
        "",
    ),
    (
        send(target={"recipients": [{"external_user_id": "u", "age": 3}]}),
        "target.recipients[0].age",
        "",
    ),
    (
        send(target={"recipients": [{"external_user_id": "u"}], "external_user_ids": ["u"]}),
        "target",
        "exactly one",
    ),
    (
        # the static part alone is over every provider's limit
        note(title="{{ user.external_id }}" + "x" * 4000, body="y" * 4000),
        "notification",
        "",
    ),
]


async def test_recipients_over_100000_are_refused(api: Client, campaign: Campaign) -> None:
    import io

    import msgspec

    body = send(target={"recipients": [{"external_user_id": "u"}] * 100_001})
    resp = await api.post(
        f"/v1/apps/{campaign.code}/messages",
        data=io.BytesIO(msgspec.json.encode(body)),
        headers={**campaign.server, "Content-Type": "application/json"},
    )
    answer = await json(resp, 422)
    assert answer["error"]["field"] == "target.recipients", answer


@pytest.fixture
async def campaign(api: Client, sims: Simulators) -> Campaign:
    c = Campaign(api, sims)
    await c.create_app()
    return c


@pytest.mark.parametrize(("body", "field", "words"), CASES)
async def test_templated_send_bad_input(
    api: Client, campaign: Campaign, body: dict[str, Any], field: str, words: str
) -> None:
    resp = await api.post(f"/v1/apps/{campaign.code}/messages", json=body, headers=campaign.server)
    answer = await resp.json()
    assert resp.status == 422, answer
    assert answer["error"]["field"] == field, answer
    assert words in answer["error"]["message"], answer
    listed = await json(
        await api.get(f"/v1/apps/{campaign.code}/messages", headers=campaign.server), 200
    )
    assert listed["messages"] == []


@pytest.mark.parametrize(("body", "field", "words"), CASES)
async def test_preview_answers_the_same_bad_inputs_under_message(
    api: Client, campaign: Campaign, body: dict[str, Any], field: str, words: str
) -> None:
    resp = await api.post(
        f"/v1/apps/{campaign.code}/messages/preview",
        json={"message": body, "external_user_id": "u1"},
        headers=campaign.server,
    )
    answer = await resp.json()
    assert resp.status == 422, answer
    assert answer["error"]["field"] == f"message.{field}", answer


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": send()}, "external_user_id"),
        ({"message": send(), "external_user_id": None}, "external_user_id"),
        (
            {
                "message": send(),
                "external_user_id": "u",
                "installation_id": "5f0c4c1e-1f1e-4a5e-9d7c-2f1f3b1d8e11",
            },
            "external_user_id",
        ),
        ({"message": send(), "installation_id": "nope"}, "installation_id"),
        ({"message": send(), "external_user_id": ""}, "external_user_id"),
        ({"external_user_id": "u"}, "message"),
        ({"message": send(), "external_user_id": "u", "extra": 1}, "extra"),
        ({"message": {"notification": {"title": "x"}}, "external_user_id": "u"}, "message.target"),
    ],
)
async def test_preview_envelope_bad_input(
    api: Client, campaign: Campaign, body: dict[str, Any], field: str
) -> None:
    resp = await api.post(
        f"/v1/apps/{campaign.code}/messages/preview", json=body, headers=campaign.server
    )
    answer = await resp.json()
    assert resp.status == 422, answer
    assert answer["error"]["field"] == field, answer


async def test_good_templates_are_accepted(api: Client, campaign: Campaign) -> None:
    body = send(
        notification={
            "title": "{% if user.attributes.vip %}VIP {% endif %}{{ user.attributes.name }}",
            "body": "{% assign n = user.tags | size %}{{ n }} tags,"
            " {% for t in installation.tags %}{{ forloop.index }}:{{ t }} {% endfor %}",
            "badge": "{{ user.attributes.unread | default: 0 | plus: 1 }}",
            "data": {"order": "{{ message.data.order }}", "plain": "no template"},
        },
        localizations={"pt-BR": {"title": "Oi"}, "pt": {"body": "{{ user.email }}"}, "en": {}},
    )
    resp = await api.post(f"/v1/apps/{campaign.code}/messages", json=body, headers=campaign.server)
    assert resp.status == 202, await resp.text()


@pytest.mark.parametrize(
    ("device", "field"),
    [
        ({"language": "not a language"}, "device.language"),
        ({"language": "zz-QQQQ"}, "device.language"),
        ({"language": 5}, "device.language"),
        ({"time_zone": "Mars/Olympus_Mons"}, "device.time_zone"),
        ({"time_zone": "../../etc/passwd"}, "device.time_zone"),
        ({"time_zone": "CET+1"}, "device.time_zone"),
        ({"time_zone": True}, "device.time_zone"),
    ],
)
async def test_registration_checks_language_and_time_zone(
    api: Client, campaign: Campaign, device: dict[str, Any], field: str
) -> None:
    from tests.registry.helpers import apns_token, bearer

    url = f"/v1/apps/{campaign.code}/installations"
    body = {"platform": "ios", "push_token": apns_token(), "device": device}
    answer = await json(await api.post(url, json=body, headers={}), 422)
    assert answer["error"]["field"] == field, answer
    # and on a later update of the device properties
    good = await json(
        await api.post(url, json={"platform": "ios", "push_token": apns_token()}), 201
    )
    path = f"/v1/installations/{good['installation_id']}"
    secret = bearer(good["installation_secret"])
    answer = await json(await api.patch(path, json={"device": device}, headers=secret), 422)
    assert answer["error"]["field"] == field, answer


async def test_registration_accepts_languages_and_zones(api: Client, campaign: Campaign) -> None:
    from tests.registry.helpers import apns_token

    url = f"/v1/apps/{campaign.code}/installations"
    for device in (
        {"language": "pt-BR", "time_zone": "America/Sao_Paulo"},
        {"language": "pt_BR", "time_zone": "UTC"},
        {"language": "zh-Hant-TW", "time_zone": "Asia/Taipei"},
        {"language": None, "time_zone": None},
    ):
        body = {"platform": "ios", "push_token": apns_token(), "device": device}
        out = await json(await api.post(url, json=body), 201)
        assert out["device"] == {k: v for k, v in device.items() if v is not None} or (
            out["device"] == device
        )


async def test_openapi_documents_the_new_route_and_fields(api: Client) -> None:
    doc = await json(await api.get("/v1/openapi.json"), 200)
    op = doc["paths"]["/v1/apps/{app_code}/messages/preview"]["post"]
    assert set(op["responses"]) >= {"200", "401", "404", "413", "422"}
    schemas = doc["components"]["schemas"]
    assert {"external_user_id", "installation_id", "message"} <= set(
        schemas["PreviewIn"]["properties"]
    )
    assert "localizations" in schemas["SendRequest"]["properties"]
    assert "recipients" in schemas["Target"]["properties"]
    assert {"external_user_id", "data"} <= set(schemas["Recipient"]["properties"])
    assert {"title", "body", "badge", "data"} <= set(schemas["Localization"]["properties"])
    badge = schemas["Notification"]["properties"]["badge"]
    assert {"integer", "string"} <= {t.get("type") for t in badge["anyOf"]}
    assert {"payload", "failed", "language"} <= set(schemas["PreviewPayload"]["properties"])
