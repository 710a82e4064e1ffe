"""The qemu-* targets: firmware for three emulated Cortex-M boards and an Xtensa core.

For qemu-m4 (mps2-an386), qemu-m7 (mps2-an500), qemu-m55 (mps3-an547) and qemu-xtensa
(the sim machine's lx106), preset:mcu-tiny and every share-* preset are built through the
API with the portable kernels and their firmware is run under qemu-system-arm or
qemu-system-xtensa: the outputs must equal the golden reference and the host build bit for
bit, and the instruction counts of the TCG plugin must be positive, repeatable, and add
up per step. Bad cases: a model too big for the board, and a missing toolchain.

Kept lean for CI: 2 calibration inputs and 2 test vectors per build; builds are shared
through module-scoped caches. The Arm and lx106 toolchains and QEMU are required
(scripts/setup.sh). tests/test_xtensa.py adds the esp-nn backend on qemu-xtensa.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CliResult, assert_one_line_error
from tinygen.build import BuildOptions, build
from tinygen.speech.calib import inputs, window_frames
from tinygen.speech.checkpoint import load_model
from tinygen.targets import TargetError, host, qemu
from tinygen.verify import verify

PRESETS = ["mcu-tiny", "share-blocks", "share-modules", "share-subcomponents",
           "share-lowrank"]
TARGETS = sorted(qemu.BOARDS)
VECTORS = 2


def build_preset(name: str, target: str, out: Path, vectors: int = VECTORS,
                 force: bool = False, backend: str = "portable") -> dict[str, Any]:
    model = load_model(f"preset:{name}")
    frames = window_frames(model.cfg, 1000)
    cal = inputs(model.cfg, frames, 2, seed=0)
    vecs = inputs(model.cfg, frames, vectors, seed=1)
    return build(model, out, cal, vecs,
                 BuildOptions(target=target, backend=backend, force=force), name)


@pytest.fixture(scope="module")
def tools() -> None:
    for arch in (qemu.ARM, qemu.XTENSA):
        for tool, package in ((arch.cc, arch.apt_toolchain), (arch.qemu, arch.apt_qemu)):
            assert shutil.which(tool), f"{tool} is required (apt-get install {package})"


@pytest.fixture(scope="module")
def host_outputs(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """preset -> the host build's outputs on the test vectors (built on first use)."""
    root = tmp_path_factory.mktemp("host")
    cache: dict[str, list[bytes]] = {}

    def get(preset: str) -> list[bytes]:
        if preset not in cache:
            out = root / preset
            build_preset(preset, "host", out)
            folder = out / "test_vectors"
            cache[preset] = host.run(out / host.EXE, [(folder / f"input_{k}.bin").read_bytes()
                                                      for k in range(VECTORS)])
        return cache[preset]

    return get


@pytest.fixture(scope="module")
def qemu_builds(tmp_path_factory: pytest.TempPathFactory, tools):  # type: ignore[no-untyped-def]
    """(preset, target) -> (OUT, report), built on first use."""
    root = tmp_path_factory.mktemp("qemu")
    cache: dict[tuple[str, str], tuple[Path, dict[str, Any]]] = {}

    def get(preset: str, target: str) -> tuple[Path, dict[str, Any]]:
        if (preset, target) not in cache:
            out = root / f"{preset}-{target}"
            cache[(preset, target)] = (out, build_preset(preset, target, out))
        return cache[(preset, target)]

    return get


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("target", TARGETS)
def test_qemu_equals_reference_and_host(qemu_builds, host_outputs, target: str,  # type: ignore[no-untyped-def]
                                        preset: str) -> None:
    out, report = qemu_builds(preset, target)
    assert (out / "qemu" / "firmware.elf").is_file()
    first = qemu.run(out, report)
    assert first.exit_code == 0, first.console[-500:]
    expected = [(out / "test_vectors" / f"expected_{k}.bin").read_bytes()
                for k in range(VECTORS)]
    assert first.outputs == expected
    assert first.outputs == host_outputs(preset)
    # Instruction counts: one per inference, one per schedule step, adding up, repeatable.
    assert len(first.instructions_per_inference) == VECTORS
    assert all(n > 0 for n in first.instructions_per_inference)
    for total, steps in zip(first.instructions_per_inference, first.instructions_per_step,
                            strict=True):
        assert len(steps) == report["steps"]
        assert all(s > 0 for s in steps)
        assert sum(steps) == total
    again = qemu.run(out, report)
    assert again.outputs == first.outputs
    assert again.instructions_per_inference == first.instructions_per_inference
    assert again.instructions_per_step == first.instructions_per_step
    assert first.instructions_total == sum(first.instructions_per_inference)
    print(f"{preset} on {target}: {first.instructions_per_inference[0]:,} instructions per "
          f"inference, {first.instructions_per_inference[0] / report['macs_per_inference']:.2f}"
          " per MAC")


@pytest.mark.parametrize("target", ["qemu-m4", "qemu-xtensa"])
def test_verify_runs_the_firmware(qemu_builds, target: str,  # type: ignore[no-untyped-def]
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out, report = qemu_builds("share-lowrank", target)
    result = verify(out)
    assert result["target"] == target and result["vectors"] == VECTORS
    assert result["bit_exact"] and result["mismatched"] == [] and result["exit_code"] == 0
    assert result["snr_db"] is not None
    assert len(result["instructions_per_inference"]) == VECTORS
    assert [len(s) for s in result["instructions_per_step"]] == [report["steps"]] * VECTORS
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(TargetError) as err:
        qemu.run(out, report)
    arch = qemu.BOARDS[target].arch
    assert str(err.value) == f"{arch.qemu} not found (install it: apt-get install " \
                             f"{arch.apt_qemu})"


@pytest.mark.parametrize("target", ["qemu-m4", "qemu-xtensa"])
def test_firmware_layout_and_makefile(qemu_builds, target: str) -> None:  # type: ignore[no-untyped-def]
    out, _ = qemu_builds("share-lowrank", target)
    folder = out / "qemu"
    board = qemu.BOARDS[target]
    for name in ("main.c", "Makefile", board.linker_script, "tg_qemu_sections.ld",
                 *board.arch.sources, "tg_semihost.h", "qemu_icount_plugin.c",
                 qemu.PLUGIN):
        assert (folder / name).is_file(), name
    assert "Do not edit" in (folder / "main.c").read_text()[:400]
    # The Makefile rebuilds the same ELF, byte for byte.
    built = (folder / "firmware.elf").read_bytes()
    proc = subprocess.run(["make", "-s", "-B", "-C", str(folder), "firmware.elf"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (folder / "firmware.elf").read_bytes() == built


def test_memory_maps() -> None:
    mib, kib = 1024 * 1024, 1024
    assert qemu.memory(qemu.BOARDS["qemu-m4"])["FLASH"] == 4 * mib
    assert qemu.memory(qemu.BOARDS["qemu-m7"])["RAM"] == 4 * mib
    assert qemu.memory(qemu.BOARDS["qemu-m55"]) == {"FLASH": 512 * kib, "RAM": 512 * kib,
                                                    "STACK": 16 * kib}


def test_too_big_for_the_board_is_refused_and_out_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    (out / ".tinygen-out").write_text("tinygen\n")  # an earlier build: --force may replace it
    with pytest.raises(TargetError) as err:
        build_preset("paper-5m", "qemu-m4", out, vectors=1, force=True)
    line = str(err.value)
    assert "'paper-5m' does not fit qemu-m4 (mps2-an386" in line
    assert "flash needs" in line and "of 4,194,304 B available" in line
    assert "RAM needs" in line and "arena" in line and "code estimate" in line
    assert "\n" not in line
    assert sorted(p.name for p in out.iterdir()) == [".tinygen-out", "keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp folder left


def test_missing_toolchain_is_one_line_and_leaves_no_out(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path / "empty-bin")}  # no arm-none-eabi-gcc
    proc = subprocess.run([sys.executable, "-m", "tinygen", "build", "preset:share-lowrank",
                           "--target", "qemu-m55", "--calib", "1", "--vectors", "1", "-o",
                           str(tmp_path / "o")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert_one_line_error(CliResult(proc.returncode, proc.stdout, proc.stderr),
                          "tinygen: error: arm-none-eabi-gcc not found",
                          "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi")
    assert not (tmp_path / "o").exists()
