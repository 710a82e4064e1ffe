"""Where tinygen's data folders live: inside the wheel, or at the top of a checkout.

A wheel carries ``templates/``, ``firmware/`` and ``models/`` as ``tinygen/<name>``
(see pyproject.toml). A source checkout or editable install keeps them beside the
package, at the repository root.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the folder ``name`` ("templates", "firmware" or "models")."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"tinygen data folder '{name}' is missing from {_PACKAGE}; reinstall tinygen")


def templates_dir() -> Path:
    return data_dir("templates")


def firmware_dir() -> Path:
    return data_dir("firmware")


def models_dir() -> Path:
    return data_dir("models")


def presets_dir() -> Path:
    return models_dir() / "presets"
