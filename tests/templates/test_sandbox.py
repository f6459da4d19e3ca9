"""The templates layer's pure logic: the Liquid sandbox's limits, locale lookup, and how a
compiled message renders one recipient."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pushcore.templates import locale
from pushcore.templates.content import compile_program
from pushcore.templates.errors import InvalidTemplate, RenderFailed
from pushcore.templates.liquid import LOOP_LIMIT, OUTPUT_LIMIT, parse, position

LATER = 3600.0  # a deadline that does not matter


def render(source: str, data: dict[str, Any] | None = None, deadline: float = LATER) -> str:
    return parse(source, "f").render(data or {}, time.thread_time() + deadline)


def test_missing_variables_render_empty_and_default_fills_them() -> None:
    assert render("[{{ user.attributes.first_name }}]") == "[]"
    assert render("[{{ user.attributes.first_name | default: 'there' }}]") == "[there]"
    assert render("{{ user.email | default: 'x' }}", {"user": None}) == "x"
    assert render("{{ user.tags | join: ',' }}", {"user": {"tags": ["a", "b"]}}) == "a,b"


def test_loops_stop_at_the_iteration_limit() -> None:
    tags = list(range(LOOP_LIMIT // 10))
    nested = "{% for a in t %}{% for b in t %}{% endfor %}{% endfor %}"
    with pytest.raises(RenderFailed, match="loop iteration limit"):
        render(nested.replace("t", "user.tags"), {"user": {"tags": tags}})
    assert render("{% for a in user.tags %}.{% endfor %}", {"user": {"tags": tags}}) == "." * 100


def test_output_stops_at_its_limit() -> None:
    big = "x" * (OUTPUT_LIMIT // 2 + 1)
    with pytest.raises(RenderFailed, match="over 4096 bytes"):
        render("{{ user.a }}{{ user.a }}", {"user": {"a": big}})
    assert len(render("{{ user.a }}", {"user": {"a": big}})) == len(big)


def test_a_render_past_its_deadline_stops_at_its_next_write() -> None:
    with pytest.raises(RenderFailed, match="render time limit"):
        render("{{ user.a }}", {"user": {"a": "x"}}, deadline=-1.0)


def test_assigned_values_are_bounded() -> None:
    source = "{% assign s = user.a %}" + "{% assign s = s | append: s %}" * 20
    with pytest.raises(RenderFailed):
        render(source, {"user": {"a": "xxxxxxxx"}})


@pytest.mark.parametrize(
    ("source", "where", "words"),
    [
        ("a\nbc {{ nope }}", "2:7", "unknown variable 'nope'"),
        ("{{ user.a | nofilter }}", "1:13", "unknown filter 'nofilter'"),
        ("{% include 'x' %}", "1:4", "unexpected tag 'include'"),
        ("{{ (1..5) | join }}", "1:4", "range literals"),
        ("{% if %}", "1:4", "missing expression"),
    ],
)
def test_refused_templates_name_the_position(source: str, where: str, words: str) -> None:
    with pytest.raises(InvalidTemplate) as caught:
        parse(source, "notification.title")
    assert caught.value.field == "notification.title"
    assert caught.value.position == where
    assert words in caught.value.message


def test_position_is_one_based() -> None:
    assert position("abc", 0) == "1:1"
    assert position("ab\ncd", 4) == "2:2"


@pytest.mark.parametrize(
    ("language", "available", "chosen"),
    [
        ("pt-BR", ["pt", "pt-BR"], "pt-BR"),
        ("pt-br", ["pt", "pt-BR"], "pt-BR"),
        ("pt_BR", ["pt"], "pt"),
        ("pt-PT", ["pt-BR"], None),
        ("en", ["en-US"], None),
        ("zh-Hant-TW", ["zh-Hant", "zh"], "zh-Hant"),
        ("en-x-private", ["en"], "en"),
        (None, ["en"], None),
        (7, ["en"], None),
        ("", ["en"], None),
    ],
)
def test_lookup_drops_subtags_of_the_installation_only(
    language: object, available: list[str], chosen: str | None
) -> None:
    assert locale.lookup(language, available) == chosen


def test_languages_and_time_zones() -> None:
    assert locale.valid_language("pt-BR")
    assert locale.valid_language("sr-Latn-RS")
    assert not locale.valid_language("english please")
    assert not locale.valid_language("zz-QQQQ")
    assert locale.valid_time_zone("Europe/Lisbon")
    # "Asia" is a directory of the tz database: opening it raised IsADirectoryError (a 500)
    for bad in ("", "Mars/Base", "/etc/passwd", "../x", "CET+1", "x" * 65, "Asia", "America"):
        assert not locale.valid_time_zone(bad), bad


def test_a_program_renders_each_recipient_without_sharing_state() -> None:
    program = compile_program(
        {
            "title": "Hi {{ user.attributes.name }}",
            "image": "{{ user.attributes.image }}",
            "badge": "{{ user.attributes.n }}",
            "data": {"k": "{{ user.external_id }}", "fixed": "1"},
            "apns": {"aps": {"alert": {"subtitle": "{{ user.email }}"}}},
        },
        {"fr": {"title": "Salut", "data": {"lang": "fr"}}},
    )
    ann = program.render(
        {"user": {"external_id": "ann", "email": "a@x", "attributes": {"name": "Ann", "n": 2}}},
        "en",
        time.thread_time() + LATER,
    )
    bob = program.render({"user": {"external_id": "bob"}}, "fr-FR", time.thread_time() + LATER)
    assert ann == {
        "title": "Hi Ann",
        "badge": 2,
        "data": {"k": "ann", "fixed": "1"},
        "apns": {"aps": {"alert": {"subtitle": "a@x"}}},
    }
    # fr: its title replaces the default's, its data is added; empty image and badge left out
    assert bob == {
        "title": "Salut",
        "data": {"k": "bob", "fixed": "1", "lang": "fr"},
        "apns": {"aps": {"alert": {"subtitle": ""}}},
    }
    assert program.default.base["data"]["k"] == "{{ user.external_id }}"  # base untouched
