"""Helpers for sources that come as Debian packages extracted with ``dpkg -x DEB SRC``
(or installed, SRC = /)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from tinygen.speech.data import DataError


def package_version(src: Path, package: str) -> str:
    """``name (version)`` from the package's changelog.Debian.gz, or a DataError."""
    changelog = src / "usr/share/doc" / package / "changelog.Debian.gz"
    try:
        first = gzip.decompress(changelog.read_bytes()).decode(errors="replace").splitlines()[0]
    except (OSError, EOFError, IndexError):
        raise DataError(f"{src} has no readable usr/share/doc/{package}/changelog.Debian.gz",
                        f"extract the package with: apt-get download {package} && "
                        f"dpkg -x {package}_*.deb SRC") from None
    m = re.match(r"\S+ \(([^)]+)\)", first)
    return f"{package} {m.group(1) if m else first.strip()}"
