"""The native backend end to end: generated C on the host, bit-exact with the golden
reference; weights stored once; a small schedule; reproducible builds; bad inputs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import CliResult, assert_one_line_error, run_tinygen
from tinygen.build import BuildOptions, build
from tinygen.errors import TinygenError
from tinygen.speech.calib import inputs, window_frames
from tinygen.speech.checkpoint import load_model
from tinygen.speech.config import preset_names
from tinygen.speech.summary import unique_params, virtual_params
from tinygen.verify import verify

HOST_PRESETS = preset_names()  # every preset, baseline-tiny included


def build_preset(name: str, out: Path, calib: int = 4, vectors: int = 16) -> dict:  # type: ignore[type-arg]
    model = load_model(f"preset:{name}")
    frames = window_frames(model.cfg, 1000)
    cal = inputs(model.cfg, frames, calib, seed=0)
    vecs = inputs(model.cfg, frames, vectors, seed=1)
    return build(model, out, cal, vecs, BuildOptions(target="host"), name)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:  # type: ignore[type-arg]
    root = tmp_path_factory.mktemp("builds")
    return {name: (root / name, build_preset(name, root / name)) for name in HOST_PRESETS}


@pytest.mark.parametrize("preset", HOST_PRESETS)
def test_host_build_is_bit_exact(builds, preset: str) -> None:  # type: ignore[no-untyped-def]
    out, report = builds[preset]
    result = verify(out)
    print(f"{preset}: {result['vectors']} vectors bit-exact={result['bit_exact']} "
          f"SNR {result['snr_db']} dB, arena {report['arena_bytes']} B")
    assert result["vectors"] >= 16
    assert result["bit_exact"], result["mismatched"]
    assert (out / "host" / "tinygen_model").is_file()
    for k in range(16):  # the contract's layout
        assert (out / "test_vectors" / f"input_{k}.bin").stat().st_size == np.prod(
            report["input"]["shape"])
        assert (out / "test_vectors" / f"expected_{k}.bin").stat().st_size == np.prod(
            report["output"]["shape"])


def test_report_contract(builds) -> None:  # type: ignore[no-untyped-def]
    out, report = builds["mcu-tiny"]
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk == report
    for key in ("target", "backend", "input", "output", "unique_params", "virtual_params",
                "flash", "arena_bytes", "macs_per_inference"):
        assert key in report
    assert set(report["flash"]) >= {"weights_bytes", "schedule_bytes", "total_bytes"}
    assert report["input"]["dtype"] == "int8" and report["input"]["shape"] == [1, 101, 40]
    assert (out / "report.md").read_text().startswith("# mcu-tiny")
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for f in ("tinygen_model.h", "tinygen_model.c", "tinygen_weights.c"):
        assert "Do not edit" in (out / "model" / f).read_text()[:400]


def _rodata_bytes(out: Path, tmp: Path) -> int:
    """Const bytes of the generated model, from the compiled objects' section headers."""
    total = 0
    for src in ("tinygen_weights.c", "tinygen_model.c"):
        obj = tmp / (src + ".o")
        subprocess.run(["gcc", "-std=c99", "-O2", "-c", f"-I{out / 'model'}",
                        f"-I{out / 'lib' / 'tinygen'}", str(out / "model" / src), "-o",
                        str(obj)], check=True)
        sections = subprocess.run(["size", "-A", str(obj)], capture_output=True, text=True,
                                  check=True).stdout
        total += sum(int(m.group(1)) for m in re.finditer(r"^\.(?:rodata|data\.rel\.ro)\S*"
                                                          r"\s+(\d+)", sections, re.M))
    return total


def test_paper_5m_stores_each_weight_once(builds, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out, report = builds["paper-5m"]
    model = load_model("preset:paper-5m")
    uniq, virt = unique_params(model), virtual_params(model)
    assert virt >= 2 * uniq
    const = _rodata_bytes(out, tmp_path)
    print(f"paper-5m const data {const:,} B = {const / uniq:.3f} x unique params "
          f"({uniq:,}); virtual {virt:,}; schedule {report['flash']['schedule_bytes']:,} B")
    assert const <= 1.15 * uniq
    assert report["flash"]["schedule_bytes"] <= 0.02 * report["flash"]["weights_bytes"]


@pytest.mark.parametrize("preset", ["paper-5m", "mcu-tiny"])
def test_no_weight_array_is_stored_twice(builds, preset: str) -> None:  # type: ignore[no-untyped-def]
    out, report = builds[preset]
    text = (out / "model" / "tinygen_weights.c").read_text()
    arrays = re.findall(r"^/\* weights: .*?\*/\nconst int8_t (\w+)\[(\d+)\][^=]*= \n(.*?);$",
                        text, re.M | re.S)
    assert len(arrays) == report["weight_arrays"] > 0
    digests = [hashlib.sha256(body.encode()).hexdigest() for _, _, body in arrays]
    assert len(set(digests)) == len(digests)


def test_repeated_blocks_share_programs(builds) -> None:  # type: ignore[no-untyped-def]
    _, report = builds["mcu-tiny"]
    assert report["segments"] == 8  # subsample, 6 virtual layers, head
    assert report["programs"] == 3


def test_sanitizers_run_clean(builds) -> None:  # type: ignore[no-untyped-def]
    out, _ = builds["share-lowrank"]
    result = verify(out, sanitize=True)
    assert result["bit_exact"] and result["sanitizers"]


def test_build_is_reproducible(tmp_path: Path) -> None:
    build_preset("share-blocks", tmp_path / "a", vectors=2)
    build_preset("share-blocks", tmp_path / "b", vectors=2)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                     if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*")
                     if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


class NoNorm(nn.Module):
    """Ops that TFLite Micro and the C runtime both have: the end-to-end check with TFLM."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(40, 64), nn.Linear(64, 64), nn.Linear(64, 29)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.silu(self.a(x))
        h = h + self.b(h)
        return torch.softmax(self.c(h), dim=-1)


def test_host_c_equals_tflite_micro_without_layer_norm(tmp_path: Path) -> None:
    from tinygen.compiler.pipeline import compile_model
    from tinygen.tflite.export import to_tflite
    from tinygen.tflite.runner import run_tflm

    torch.manual_seed(0)
    model = NoNorm().eval()
    cfg = load_model("preset:share-blocks").cfg
    cal, vecs = inputs(cfg, 41, 4, seed=0), inputs(cfg, 41, 4, seed=1)
    build(model, tmp_path / "out", cal, vecs, BuildOptions(target="host"), "nonorm")
    blob, _ = to_tflite(compile_model(model, 41, cal).tflite_int8)
    exe = tmp_path / "out" / "host" / "tinygen_model"
    for k in range(4):
        xq = np.frombuffer((tmp_path / "out" / "test_vectors" / f"input_{k}.bin").read_bytes(),
                           dtype=np.int8).reshape(1, 41, 40)
        c_out = subprocess.run([str(exe)], input=xq.tobytes(), capture_output=True,
                               check=True).stdout
        assert c_out == run_tflm(blob, [xq])[0].tobytes()


# ------------------------------------------------------------------ bad inputs
def test_build_refuses_non_empty_out_and_keeps_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    res = run_tinygen("build", "preset:share-blocks", "--target", "host", "-o", str(out))
    assert_one_line_error(res, "not empty", "--force")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_failed_build_removes_the_folders_it_created(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_model("preset:share-blocks")
    x = inputs(model.cfg, 41, 1, seed=0)
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no compiler: fails after mkdir
    with pytest.raises(TinygenError, match="no C compiler"):
        build(model, tmp_path / "a" / "b" / "out", x, x, BuildOptions(), "bad")
    assert list(tmp_path.iterdir()) == []


def test_unknown_target(tmp_path: Path) -> None:
    res = run_tinygen("build", "preset:share-blocks", "--target", "pdp11", "-o",
                      str(tmp_path / "o"))
    assert_one_line_error(res, "unknown target 'pdp11'", "host")
    assert not (tmp_path / "o").exists()


def test_missing_compiler_leaves_no_out(tmp_path: Path) -> None:
    env = {**os.environ, "CC": "no-such-cc"}
    bin_dir = tmp_path / "bin"  # a PATH with python but without gcc/cc
    bin_dir.mkdir()
    python = shutil.which("python3") or "python3"
    import sys

    (bin_dir / "python3").symlink_to(sys.executable)
    env["PATH"] = str(bin_dir)
    del python
    proc = subprocess.run([sys.executable, "-m", "tinygen", "build", "preset:share-blocks",
                           "--calib", "1", "--vectors", "1", "-o", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert_one_line_error(CliResult(proc.returncode, proc.stdout, proc.stderr),
                          "no C compiler found")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]


def test_verify_errors(tmp_path: Path) -> None:
    assert_one_line_error(run_tinygen("verify", str(tmp_path)), "not a tinygen build")


def test_cli_build_and_verify(tmp_path: Path) -> None:
    out = tmp_path / "new" / "o"  # missing parents are created, like mkdir -p
    res = run_tinygen("build", "preset:share-lowrank", "--target", "host", "-o", str(out),
                      "--calib", "2", "--vectors", "3", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["test_vectors"] == 3
    res = run_tinygen("verify", str(out), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["bit_exact"] is True
    xq = (out / "test_vectors" / "input_0.bin").read_bytes()
    run = subprocess.run([str(out / "host" / "tinygen_model")], input=xq, capture_output=True)
    assert run.stdout == (out / "test_vectors" / "expected_0.bin").read_bytes()
    bad = subprocess.run([str(out / "host" / "tinygen_model")], input=xq[:-1],
                         capture_output=True)
    assert bad.returncode == 2 and b"expected exactly" in bad.stderr
