"""A plain (non-editable) install carries templates/, firmware/ and models/ in the wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(REPO)], check=True, capture_output=True)
    (whl,) = out.glob("tinygen-*.whl")
    return whl


def test_wheel_contains_data_folders(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for rel in ("tinygen/templates/README.md", "tinygen/firmware/README.md",
                "tinygen/models/presets/mcu-tiny.json", "tinygen/cli.py"):
        assert rel in names, rel
    for folder in ("templates", "firmware", "models"):
        want = {f"tinygen/{p.relative_to(REPO).as_posix()}"
                for p in (REPO / folder).rglob("*") if p.is_file() and "__pycache__" not in
                p.parts and not p.name.startswith(".")}
        assert want <= names, sorted(want - names)[:5]


def test_installed_wheel_finds_its_data(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    code = ("import tinygen, tinygen.resources as r, tinygen.speech.config as c;"
            "print(tinygen.__file__); print(r.templates_dir()); print(r.firmware_dir());"
            "print(c.load_preset('mcu-tiny').name)")
    env = {**os.environ, "PYTHONPATH": str(target)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env=env, check=True)
    pkg, templates, firmware, preset = res.stdout.split()
    assert Path(pkg).is_relative_to(target)
    assert Path(templates) == target / "tinygen" / "templates"
    assert Path(firmware) == target / "tinygen" / "firmware"
    assert preset == "mcu-tiny"
