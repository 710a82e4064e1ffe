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


def _bounded(convert: type, what: str, lo: float, hi: float):  # type: ignore[no-untyped-def]
    import argparse
    import math

    def parse(text: str):  # type: ignore[no-untyped-def]
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not {what}") from None
        if not (math.isfinite(value) and lo <= value <= hi):
            show = str if convert is int else "{:g}".format
            raise argparse.ArgumentTypeError(f"{show(value)} is outside {show(lo)}.."
                                             f"{show(hi)}")
        return value

    return parse


def int_arg(lo: int, hi: int):  # type: ignore[no-untyped-def]
    """An argparse ``type`` for an integer in [lo, hi]: a value outside is a usage error."""
    return _bounded(int, "an integer", lo, hi)


def float_arg(lo: float, hi: float):  # type: ignore[no-untyped-def]
    """An argparse ``type`` for a finite number in [lo, hi] (nan and inf are refused)."""
    return _bounded(float, "a number", lo, hi)
