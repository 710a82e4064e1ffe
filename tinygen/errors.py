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


def int_arg(lo: int, hi: int):  # type: ignore[no-untyped-def]
    """An argparse ``type`` for an integer in [lo, hi]: a value outside is a usage error."""
    import argparse

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not an integer") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is outside {lo}..{hi}")
        return value

    return parse


def float_arg(lo: float, hi: float):  # type: ignore[no-untyped-def]
    """An argparse ``type`` for a finite number in [lo, hi] (nan and inf are refused)."""
    import argparse
    import math

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number") from None
        if not (math.isfinite(value) and lo <= value <= hi):
            raise argparse.ArgumentTypeError(f"{value:g} is outside {lo:g}..{hi:g}")
        return value

    return parse
