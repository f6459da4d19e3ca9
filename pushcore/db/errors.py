"""Errors of the database layer."""

from __future__ import annotations

from pushcore.errors import PushcoreError


class DatabaseError(PushcoreError):
    """Root of the database layer's exceptions."""


class DatabaseUnavailable(DatabaseError):
    """PostgreSQL could not be reached or did not answer in time."""


class MigrationError(DatabaseError):
    """Migrations could not be applied."""
