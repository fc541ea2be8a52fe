"""What the registry raises: callers (CLI, retrain steps, UI) catch these by type."""

from __future__ import annotations


class RegistryError(Exception):
    """A registry request that cannot be served: unknown model/alias/version, bad input."""


class NotFoundError(RegistryError):
    """The model, version or alias asked for does not exist (the database itself answered)."""


class SchemaError(RegistryError):
    """The registry database is not at the schema this code expects."""


class AliasChangedError(RegistryError):
    """A compare-and-swap alias move found the alias elsewhere than expected; nothing moved."""

    def __init__(self, message: str, *, expected: int | None, current: int | None) -> None:
        super().__init__(message)
        self.expected = expected  # the version the caller saw (None: no such alias then)
        self.current = current  # the version the alias points at now (None: none)
