"""Error types that the CLI turns into one line on stderr.

Every mistake a user can make (a bad path, an impossible config, a model that does not
fit) raises a subclass of :class:`TinygenError`. Its message names the thing that is
wrong and, where there is one, the fix. Anything else that escapes is a tinygen bug.
"""

from __future__ import annotations


class TinygenError(Exception):
    """Base class for user-facing errors. ``str(err)`` is the one-line message."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.line())

    def line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(TinygenError):
    """A model config that cannot describe a working model."""


class PresetError(TinygenError):
    """An unknown preset name."""


class CheckpointError(TinygenError):
    """A checkpoint that is missing, corrupt, or not written by tinygen."""
