"""The import layers of tinygen/layers.py hold for every module, lazy imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tinygen
from tinygen import layers

ROOT = Path(tinygen.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import statement in the file, at any depth."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                own = _module_name(path)
                package = own if path.name == "__init__.py" else own.rpartition(".")[0]
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            # "from tinygen.compiler import plan" imports tinygen.compiler.plan
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.append((node.lineno, sub if _is_module(sub) else base))
    return found


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT.parent / rel).with_suffix(".py").is_file() or (ROOT.parent / rel).is_dir()


def test_every_import_follows_the_layers() -> None:
    bad = []
    files = sorted(ROOT.rglob("*.py"))
    assert len(files) > 30  # the scan really sees the package
    for path in files:
        importer = _module_name(path)
        for line, imported in _imports(path):
            if not layers.allowed(importer, imported):
                bad.append(f"{path.relative_to(ROOT.parent)}:{line}: {importer} -> {imported}")
    assert not bad, "imports that break tinygen/layers.py:\n" + "\n".join(bad)


@pytest.mark.parametrize(("importer", "imported", "ok"), [
    ("tinygen.compiler.quantize", "tinygen.speech.model", False),
    ("tinygen.compiler.pipeline", "tinygen.reference.interpreter", True),
    ("tinygen.reference.interpreter", "tinygen.compiler.plan", False),
    ("tinygen.reference.floatref", "tinygen.compiler.ir", True),
    ("tinygen.targets.qemu", "tinygen.speech.train", False),
    ("tinygen.tflite.export", "tinygen.targets.host", False),
    ("tinygen.speech.evaluate", "tinygen.build", True),
    ("tinygen.cli", "tinygen.speech.train", True),
    ("tinygen.errors", "tinygen.resources", False),
])
def test_the_rule_itself(importer: str, imported: str, ok: bool) -> None:
    assert layers.allowed(importer, imported) is ok


def test_scan_catches_a_lazy_import(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from tinygen.speech.model import Conformer\n")
    assert (2, "tinygen.speech.model") in _imports(src)
