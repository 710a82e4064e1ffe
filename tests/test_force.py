"""``build --force`` replaces only an earlier build's OUT: never the input, the current
folder or its ancestors, the home folder, the root, or a folder tinygen did not write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, run_tinygen
from tinygen.build import MARKER, check_out
from tinygen.fsutil import OutputError
from tinygen.speech.checkpoint import save_checkpoint
from tinygen.speech.config import ConformerConfig
from tinygen.speech.model import build_model

FAST = ("--calib", "1", "--vectors", "1", "--window-ms", "200")


def tiny_checkpoint(path: Path) -> Path:
    cfg = ConformerConfig(name="tiny", d_model=16, n_heads=2, ff_dim=32, n_mels=16,
                          subsample_channels=4, conv_kernel=3, block_order=(0,))
    save_checkpoint(build_model(cfg, seed=0), path)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}


def test_force_on_the_current_folder_deletes_nothing(tmp_path: Path) -> None:
    tiny_checkpoint(tmp_path / "m.pt")
    (tmp_path / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    res = run_tinygen("build", "m.pt", "-o", ".", "--force", *FAST, cwd=tmp_path)
    assert_one_line_error(res, "current folder")
    assert snapshot(tmp_path) == before
    res = run_tinygen("build", "m.pt", "-o", "..", "--force", *FAST, cwd=tmp_path)
    assert_one_line_error(res, "current folder")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("where", ["/", "~"])
def test_force_never_takes_root_or_home(where: str) -> None:
    with pytest.raises(OutputError, match=r"root|home"):
        check_out(Path(where).expanduser(), force=True)


def test_force_never_replaces_a_folder_holding_the_input(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = run_tinygen("build", "preset:share-blocks", "-o", str(out), *FAST)
    assert res.returncode == 0, res.stderr
    ckpt = tiny_checkpoint(out / "model" / "m.pt")  # an earlier OUT that now holds the input
    before = snapshot(out)
    res = run_tinygen("build", str(ckpt), "-o", str(out), "--force", *FAST)
    assert_one_line_error(res, "holds the input")
    assert snapshot(out) == before


def test_force_never_replaces_a_folder_tinygen_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    res = run_tinygen("build", "preset:share-blocks", "-o", str(out), "--force", *FAST)
    assert_one_line_error(res, MARKER, "--force will not replace it")
    assert snapshot(out) == {"notes.txt": b"mine"}


def test_force_replaces_an_earlier_build(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_tinygen("build", "preset:share-blocks", "-o", str(out), *FAST).returncode == 0
    (out / "stale.txt").write_text("from an old build")
    res = run_tinygen("build", "preset:share-blocks", "-o", str(out), "--force", *FAST)
    assert res.returncode == 0, res.stderr
    assert not (out / "stale.txt").exists()
    assert (out / MARKER).read_text().startswith("tinygen ")
    assert (out / "report.json").is_file()
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no temp folder left beside it
