"""Errors of the templates layer."""

from __future__ import annotations

from pushcore.errors import PushcoreError


class TemplateError(PushcoreError):
    """Root of the templates layer's exceptions."""


class InvalidTemplate(TemplateError):
    """A template that cannot be accepted: it does not parse, names an unknown top-level
    variable or filter, or uses what the sandbox refuses.  ``field`` is the dotted path of
    the value in the send request, ``position`` its ``line:column`` (1-based line)."""

    def __init__(self, field: str, position: str, message: str) -> None:
        super().__init__(f"{field} at {position}: {message}")
        self.field = field
        self.position = position
        self.message = message


class RenderFailed(TemplateError):
    """One recipient's render failed (a limit reached, a value the field cannot take): that
    recipient counts as failed with reason ``template_error``, the others go on."""


class RenderTimeout(RenderFailed):
    """A render went past its deadline."""
