"""C declarations from Python values: identifiers and exact literals.

Small helpers that every generator uses (the compiler's weight pool, the board projects,
the audio front end's tables). They validate instead of guessing: a name that cannot be
a C identifier or a value that does not fit its type raises ``ValueError``. int8 data is
emitted as adjacent string literals, which compile far faster than comma lists (a 5 MB
weight pool in about a second, against ~15 s).
"""

from __future__ import annotations

import re

import numpy as np

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_HEX = np.array([f"\\x{i:02x}" for i in range(256)])


def c_ident(name: str) -> str:
    """A valid C identifier derived from ``name`` (raises on failure, never guesses)."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if ident and ident[0].isdigit():
        ident = "_" + ident
    ident = ident[:63]
    if not _IDENT.match(ident):
        raise ValueError(f"cannot make a C identifier from {name!r}")
    return ident


def c_text(name: str, limit: int = 64) -> str:
    """``name`` made safe to place inside a C string literal, a C comment and an ini
    value: letters, digits and ``_ . + -`` are kept, anything else (quotes, backslashes,
    ``?`` of trigraphs, ``*/``, newlines) becomes ``_``; cut to ``limit`` characters."""
    text = re.sub(r"[^A-Za-z0-9_.+-]", "_", name)[:limit]
    return text or "model"


def c_int(v: int, bits: int = 32) -> str:
    """An integer literal that is exact for the full int32/int64 range."""
    v = int(v)
    lo = -(1 << (bits - 1))
    if not lo <= v < (1 << (bits - 1)):
        raise ValueError(f"{v} does not fit int{bits}")
    if bits == 64:
        return f"INT64_C({v})" if v != lo else "(INT64_C(-9223372036854775807) - 1)"
    return str(v) if v != lo else "(-2147483647 - 1)"


def int8_literal(data: np.ndarray, width: int = 32) -> str:
    """int8 data as adjacent string literals, ``width`` bytes per line."""
    b = np.ascontiguousarray(data, dtype=np.int8).reshape(-1).view(np.uint8)
    hexed = _HEX[b]
    lines = ["".join(hexed[i:i + width]) for i in range(0, len(hexed), width)]
    return "\n".join(f'    "{line}"' for line in lines) or '    ""'


def int_list(data: np.ndarray, bits: int = 32, per_line: int = 12) -> str:
    vals = [c_int(int(v), bits) for v in np.asarray(data).reshape(-1)]
    lines = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    return ",\n".join(f"    {line}" for line in lines)
