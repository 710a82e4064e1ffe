"""Writing outputs completely or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tinygen.errors import TinygenError


class OutputError(TinygenError):
    """An output path that cannot be written."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, then rename it into place."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory", "give a file path")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {parent} does not exist",
                          "create it first")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=parent)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror}",
                          "choose a writable location") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {err.strerror}",
                          "choose a writable location") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
