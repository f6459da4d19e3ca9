"""The Liquid sandbox: parse, check and render one template value.  Pure.

python-liquid (Shopify's Liquid language, the standard tags and filters) with what could
reach outside or run away taken out:

- no loader and no ``include`` / ``render`` tags: a template cannot name another file;
- no range literals ``(1..n)``: they are the only way a template makes a sequence larger
  than the data it was given, and a filter such as ``join`` over one runs unbounded before
  the first byte is written;
- every loop stops after :data:`LOOP_LIMIT` iterations in all, the local namespace
  (``assign`` / ``capture``) at :data:`NAMESPACE_LIMIT` bytes, a rendered value at
  :data:`OUTPUT_LIMIT` bytes (a notification field is never longer);
- a render past its deadline stops at its next write.  With the limits above, work between
  two writes is bounded by the data (at most 100 attributes of 1,024 characters each),
  so the deadline bounds the time of a render.  The deadline is in the rendering thread's
  CPU time (``time.thread_time()``), not wall time: a worker descheduled on a busy machine
  (or waiting for the GIL) must not fail recipients whose templates are cheap.

A variable that is not there renders as empty text (Liquid's ``Undefined``); ``default``
gives a fallback: ``{{ user.attributes.first_name | default: "there" }}``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from io import StringIO
from typing import Any, ClassVar

from liquid import BoundTemplate, Environment
from liquid.ast import Node
from liquid.builtin.expressions.primitive import RangeLiteral
from liquid.context import RenderContext
from liquid.exceptions import LiquidError
from liquid.expression import Expression

from pushcore.templates.errors import InvalidTemplate, RenderFailed, RenderTimeout

LOOP_LIMIT = 1000  # loop iterations per render, nested loops counted in full
NAMESPACE_LIMIT = 64 * 1024  # bytes of assigned values per render
OUTPUT_LIMIT = 4096  # bytes per rendered value: the longest title or body accepted

# The top-level names a template may use; a template naming another one is refused at
# submit (it would always render as empty text: a typo, not an intention).
VARIABLES = ("user", "installation", "message", "recipient", "inbox")
# names the for and tablerow tags define inside their blocks
_LOOP_NAMES = ("forloop", "tablerowloop")
_REFUSED_TAGS = ("include", "render")


def is_template(value: str) -> bool:
    """Whether a string value is a template (plain text costs nothing to send)."""
    return "{{" in value or "{%" in value


class _Sandbox(Environment):
    loop_iteration_limit: ClassVar[int | None] = LOOP_LIMIT
    local_namespace_limit: ClassVar[int | None] = NAMESPACE_LIMIT
    output_stream_limit: ClassVar[int | None] = OUTPUT_LIMIT


def _environment() -> Environment:
    env = _Sandbox(autoescape=False, strict_filters=True)
    for name in _REFUSED_TAGS:
        env.tags.pop(name, None)
    return env


ENV = _environment()


@dataclass(frozen=True, slots=True)
class Template:
    """One parsed and checked template value."""

    source: str
    bound: BoundTemplate
    names: frozenset[str]  # the top-level variables it reads (``inbox``: the unread count)

    def render(self, data: Mapping[str, Any], deadline: float) -> str:
        """Render with ``data`` as the top-level variables; :class:`RenderFailed` when a
        limit is reached or ``deadline`` (``time.thread_time()``) has passed."""
        buffer = _Bounded(OUTPUT_LIMIT, deadline)
        try:
            context = self.bound.context_class(self.bound, globals=self.bound.make_globals(data))
            self.bound.render_with_context(context, buffer)
        except LiquidError as exc:
            raise RenderFailed(exc.message if hasattr(exc, "message") else str(exc)) from None
        return buffer.getvalue()


class _Bounded(StringIO):
    """The output of one render: refuses to grow past ``limit`` bytes or to go on past
    ``deadline``."""

    def __init__(self, limit: int, deadline: float) -> None:
        super().__init__()
        self.limit = limit
        self.size = 0
        self.deadline = deadline

    def write(self, s: str, /) -> int:
        if s:
            self.size += len(s.encode("utf-8"))
            if self.size > self.limit:
                raise RenderFailed(f"rendered value over {self.limit} bytes")
            if time.thread_time() > self.deadline:
                raise RenderTimeout("render time limit reached")
        return super().write(s)


def parse(source: str, field: str) -> Template:
    """Parse and check one template value; :class:`InvalidTemplate` names ``field`` and the
    position of the first problem."""
    try:
        bound = ENV.from_string(source)
    except LiquidError as exc:
        index = exc.token.start_index if exc.token is not None else 0
        raise InvalidTemplate(field, position(source, index), _message(exc)) from None
    try:
        analysis = bound.analyze()
    except LiquidError as exc:  # analysis evaluates nothing, but guard its edge cases
        raise InvalidTemplate(field, position(source, 0), _message(exc)) from None
    for name, uses in analysis.globals.items():
        if name not in VARIABLES and name not in _LOOP_NAMES:
            known = ", ".join(VARIABLES)
            raise InvalidTemplate(
                field,
                position(source, uses[0].span.index),
                f"unknown variable {name!r} (a template may use {known})",
            )
    for name, spans in analysis.filters.items():
        if name not in ENV.filters:
            at = position(source, spans[0].index)
            raise InvalidTemplate(field, at, f"unknown filter {name!r}")
    ranged = _first_range(bound)
    if ranged is not None:
        raise InvalidTemplate(field, position(source, ranged), "range literals are not allowed")
    return Template(source, bound, frozenset(analysis.globals) & frozenset(VARIABLES))


def position(source: str, index: int) -> str:
    """``line:column`` of a character index, both 1-based."""
    before = source[: max(index, 0)]
    line = before.count("\n") + 1
    column = index - (before.rfind("\n") + 1) + 1
    return f"{line}:{column}"


def _message(exc: LiquidError) -> str:
    message = getattr(exc, "message", None)
    return str(message if message is not None else exc.args[0] if exc.args else exc)


def _first_range(bound: BoundTemplate) -> int | None:
    static = RenderContext(bound)
    for node in _nodes(bound.nodes, static):
        for expression in node.expressions():
            for found in _expressions(expression):
                if isinstance(found, RangeLiteral):
                    return found.token.start_index
    return None


def _nodes(nodes: list[Node], static: RenderContext) -> Iterator[Node]:
    for node in nodes:
        yield node
        yield from _nodes(list(node.children(static, include_partials=False)), static)


def _expressions(expression: Expression) -> Iterator[Expression]:
    yield expression
    for child in expression.children():
        yield from _expressions(child)
