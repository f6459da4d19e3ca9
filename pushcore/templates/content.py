"""A message's templated content: compiled once per message, rendered once per recipient.
Pure.

What may be a template: ``title``, ``body``, ``url``, ``image``, ``badge`` (a string that
renders as a whole number), every value of ``data``, and every string inside the
per-provider override blocks (``apns``, ``fcm``, ``webpush``), in the notification and in
each localization.  A string is a template when it contains ``{{`` or ``{%``; anything
else is sent as it is.  Top-level text fields that render as empty text are left out of
the notification (an empty ``image`` is no image), a ``badge`` that renders empty sets no
badge.

Localizations (``{"fr": {...}, "pt-BR": {...}}``) are partial notifications: the fields a
localization gives replace the default's, its ``data`` keys are added to (or replace) the
default's.  Each installation gets the variant its registered ``language`` looks up
(:func:`pushcore.templates.locale.lookup`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pushcore.templates import locale
from pushcore.templates.errors import InvalidTemplate, RenderFailed
from pushcore.templates.liquid import Template, is_template, parse

TEXT_FIELDS = ("title", "body", "url", "image")
# the fields a localization may give (its own override blocks are the provider keys)
LOCALIZED_FIELDS = (*TEXT_FIELDS, "badge", "sound", "data")

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Variant:
    """One content (the default or a localization) with its templates in place."""

    base: dict[str, Any]
    slots: tuple[tuple[Path, Template], ...]


MAX_LANGUAGES_REMEMBERED = 1024  # per message: registered languages are few


@dataclass(frozen=True, slots=True)
class Program:
    """A message's compiled content."""

    default: Variant
    localized: dict[str, Variant]  # by the tag the request gave
    # installation language → its variant, looked up once per language
    _chosen: dict[object, Variant] = field(default_factory=dict)

    @property
    def variables(self) -> frozenset[str]:
        """The top-level variables its templates read, in any variant."""
        variants = (self.default, *self.localized.values())
        return frozenset(n for v in variants for _, template in v.slots for n in template.names)

    def fallback(self, language: object) -> dict[str, Any]:
        """The variant's notification without its templated values: what a reader is shown
        when a render fails (never the template text)."""
        variant = self.variant(language)
        out = dict(variant.base)
        for name in {path[0] for path, _ in variant.slots}:
            out.pop(str(name), None)
        return out

    def variant(self, language: object) -> Variant:
        if not self.localized:
            return self.default
        chosen = self._chosen.get(language) if isinstance(language, str) else None
        if chosen is None:
            tag = locale.lookup(language, self.localized)
            chosen = self.default if tag is None else self.localized[tag]
            if isinstance(language, str) and len(self._chosen) < MAX_LANGUAGES_REMEMBERED:
                self._chosen[language] = chosen
        return chosen

    def render(self, data: Mapping[str, Any], language: object, deadline: float) -> dict[str, Any]:
        """One recipient's notification (builtins, to be converted to the provider's type);
        :class:`RenderFailed` when a template fails or ``badge`` is not a number."""
        variant = self.variant(language)
        out = dict(variant.base)
        copied: set[int] = set()
        for path, template in variant.slots:
            _put(out, path, template.render(data, deadline), copied)
        for name in TEXT_FIELDS:
            if out.get(name) == "":
                del out[name]
        badge = out.get("badge")
        if isinstance(badge, str):
            out["badge"] = _badge(badge)
            if out["badge"] is None:
                del out["badge"]
        return out


def templated(
    notification: Mapping[str, Any], blocks: Mapping[str, Any], localizations: Any
) -> bool:
    """Whether a send needs per-recipient rendering: a template anywhere it may be, or
    localizations.  ``blocks``: the request's top-level provider blocks."""
    if localizations:
        return True
    return any(True for _ in _templates(_templatable(notification))) or any(
        True for _ in _templates(dict(blocks))
    )


def check(
    notification: Mapping[str, Any], blocks: Mapping[str, Any], localizations: Mapping[str, Any]
) -> None:
    """Parse and check every template of a send request (as builtins), naming the request's
    field: ``notification.title``, ``apns.aps.alert.title``, ``localizations.fr.body``."""
    for path, source in _templates(_templatable(notification)):
        parse(source, _dotted("notification", path))
    for path, source in _templates(dict(blocks)):
        parse(source, _dotted("", path))
    for tag, fields in localizations.items():
        for path, source in _templates(_templatable(fields)):
            parse(source, _dotted(f"localizations.{tag}", path))


def compile_program(
    notification: Mapping[str, Any], localizations: Mapping[str, Mapping[str, Any]] | None
) -> Program:
    """Compile the effective notification (provider blocks merged in) and the
    localizations; raises :class:`InvalidTemplate` like :func:`check`."""
    default = _variant(dict(notification), "notification")
    localized = {
        tag: _variant(_localize(notification, fields), f"localizations.{tag}")
        for tag, fields in (localizations or {}).items()
    }
    return Program(default, localized)


def _localize(notification: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(notification)
    for name, value in fields.items():
        if name == "data":
            merged["data"] = {**notification.get("data", {}), **value}
        elif value is not None:
            merged[name] = value
    return merged


def _variant(content: dict[str, Any], field: str) -> Variant:
    slots = tuple(
        (path, parse(source, _dotted(field, path)))
        for path, source in _templates(_templatable(content))
    )
    return Variant(content, slots)


def _templatable(content: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a (partial) notification that may hold templates."""
    texts = (*TEXT_FIELDS, "badge")
    return {
        name: value
        for name, value in content.items()
        # text fields, data, and the provider blocks (the other dictionaries)
        if (name in texts and isinstance(value, str))
        or (isinstance(value, dict) and (name == "data" or name not in LOCALIZED_FIELDS))
    }


def _templates(value: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str):
        if is_template(value):
            yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _templates(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _templates(v, (*path, i))


def _dotted(prefix: str, path: Path) -> str:
    parts = [prefix] if prefix else []
    for part in path:
        if isinstance(part, int):
            parts[-1] = f"{parts[-1]}[{part}]"
        else:
            parts.append(part)
    return ".".join(parts)


def _put(out: dict[str, Any], path: Path, value: str, copied: set[int]) -> None:
    """Set ``out[path]`` copying the containers on the way (the variant's base is shared
    by every recipient and must not change)."""
    container: Any = out
    for part in path[:-1]:
        child = container[part]
        if id(child) not in copied:
            child = dict(child) if isinstance(child, dict) else list(child)
            container[part] = child
            copied.add(id(child))
        container = child
    container[path[-1]] = value


def _badge(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        badge = int(text, 10)
    except ValueError:
        # the rendered text is not repeated: it may hold a recipient's data (and this ends
        # up in the workers' log)
        raise RenderFailed("badge did not render as a whole number") from None
    if badge < 0:
        raise RenderFailed("badge rendered below 0")
    return badge


__all__ = ["InvalidTemplate", "Program", "RenderFailed", "check", "compile_program", "templated"]
