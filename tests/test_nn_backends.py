"""The kernel-library backends against the real libraries: ``--backend cmsis-nn`` on
qemu-m4, qemu-m7 and qemu-m55 (CMSIS-NN v7.0.0 compiled with each board's -mcpu) and
``--backend esp-nn`` on the host (ESP-NN v1.1.2's ANSI C path).

- preset:mcu-tiny and every share-* preset equal the golden reference bit for bit on
  each (the test vectors' expected outputs are the numpy int8 interpreter's);
- the library really runs: its entry points are linked into the ELF / executable;
- instructions per schedule step under QEMU, for CMSIS-NN: per fully connected step
  nearly independent of the input (only the requantization branches differ) and within
  bounds derived from the ISA (the most MACs one instruction does) and from a scalar
  loop's floor (two loads and a multiply-accumulate per MAC);
- the OUT Makefiles rebuild the same binaries; without the library's checkout a build
  stops in one line.

The libraries come from $TINYGEN_CMSIS_NN and $TINYGEN_ESP_NN (scripts/test.sh points them
at ../shared/third_party/ when it exists; without them these tests skip). Each library is
compiled once per core for the module (the cache: $TINYGEN_NN_CACHE, a module temp
folder); each preset is calibrated once (one input) and built for every target.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_one_line_error, compile_once, run_tinygen
from tinygen.build import BuildOptions, build
from tinygen.compiler.plan import make_plan
from tinygen.speech.calib import inputs, window_frames
from tinygen.speech.checkpoint import load_model
from tinygen.targets import host, nnlib, qemu

PRESETS = ["mcu-tiny", "share-blocks", "share-modules", "share-subcomponents",
           "share-lowrank"]
CMSIS_TARGETS = ["qemu-m4", "qemu-m7", "qemu-m55"]
VECTORS = 2
CMSIS_NN = os.environ.get(nnlib.LIBRARIES["cmsis-nn"].env, "")
ESP_NN = os.environ.get(nnlib.LIBRARIES["esp-nn"].env, "")
ARM_GCC = shutil.which("arm-none-eabi-gcc")
QEMU_ARM = shutil.which("qemu-system-arm")

needs_cmsis = pytest.mark.skipif(
    not (CMSIS_NN and ARM_GCC and QEMU_ARM),
    reason="needs $TINYGEN_CMSIS_NN (a CMSIS-NN v7.0.0 checkout; scripts/test.sh sets it "
           "from ../shared/third_party), arm-none-eabi-gcc and qemu-system-arm")
needs_esp = pytest.mark.skipif(
    not ESP_NN, reason="needs $TINYGEN_ESP_NN (an ESP-NN v1.1.2 checkout; scripts/test.sh "
                       "sets it from ../shared/third_party)")

# The most int8 MACs one instruction does: SMLAD (two 16x16 products) on the M4 and M7's
# DSP extension; VMLADAVA.S8 (sixteen 8x8 products) in the M55's Helium.
MACS_PER_INSTRUCTION = {"qemu-m4": 2, "qemu-m7": 2, "qemu-m55": 16}
# CMSIS-NN's entry point behind each adapter (firmware/tinygen/cmsis_nn/README.md) and
# ESP-NN's ANSI function behind each (firmware/tinygen/esp_nn/).
CMSIS_CALLS = {"fully_connected": "arm_fully_connected_per_channel_s8",
               "conv2d": "arm_convolve_wrapper_s8",
               "depthwise_conv2d": "arm_depthwise_conv_wrapper_s8",
               "softmax": "arm_softmax_s8", "add": "arm_elementwise_add_s8",
               "mul": "arm_elementwise_mul_s8", "batch_matmul": "arm_nn_vec_mat_mult_t_s8"}
# Helium (the M55) takes CMSIS-NN's matrix x matrix kernel for fully connected layers.
CMSIS_CALLS_MVE = {**CMSIS_CALLS, "fully_connected": "arm_nn_mat_mult_nt_t_s8"}
# Where tinygen's own kernel beats CMSIS-NN's on a core, the adapter runs it instead
# (firmware/tinygen/cmsis_nn/README.md): the function that shows it is linked.
DSP_OWN = {"fully_connected": "tg_fc_dsp_tiles", "batch_matmul": "tg_fc_dsp_tiles",
           "add": "tg_add_s8", "mul": "tg_mul_s8", "softmax": "tg_softmax_s8"}
OWN_KERNELS = {"qemu-m4": DSP_OWN, "qemu-m7": DSP_OWN,
               "qemu-m55": {"softmax": "tg_softmax_s8"}}
ESP_CALLS = {"fully_connected": "esp_nn_fully_connected_per_ch_s8_ansi",
             "conv2d": "esp_nn_conv_s8_ansi",
             "depthwise_conv2d": "esp_nn_depthwise_conv_s8_ansi",
             "softmax": "esp_nn_softmax_s8_ansi", "add": "esp_nn_add_elementwise_s8_ansi",
             "mul": "esp_nn_mul_elementwise_s8_ansi"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """built(preset, target, backend) -> (OUT, report, plan steps), each built once."""
    mp = pytest.MonkeyPatch()
    compile_once(mp)
    mp.setenv(nnlib.CACHE_ENV, str(tmp_path_factory.mktemp("nn-cache")))
    root = tmp_path_factory.mktemp("nn")
    models: dict[str, tuple[Any, Any, Any]] = {}
    done: dict[tuple[str, str, str], tuple[Path, dict[str, Any], list[Any]]] = {}

    def make(preset: str, target: str, backend: str
             ) -> tuple[Path, dict[str, Any], list[Any]]:
        import tinygen.build as tb

        key = (preset, target, backend)
        if key not in done:
            if preset not in models:
                model = load_model(f"preset:{preset}")
                frames = window_frames(model.cfg, 1000)
                models[preset] = (model, inputs(model.cfg, frames, 1, seed=0),
                                  inputs(model.cfg, frames, VECTORS, seed=1))
            model, cal, vecs = models[preset]
            out = root / "-".join(key)
            report = build(model, out, cal, vecs, BuildOptions(target=target,
                                                               backend=backend), preset)
            compiled = tb.compile_model(model, cal[0].shape[1], cal)  # the cached one
            done[key] = (out, report, list(make_plan(compiled.int8).steps))
        return done[key]

    yield make
    mp.undo()


def expected(out: Path) -> list[bytes]:
    """The golden reference's outputs, which tinygen build wrote with the vectors."""
    return [(out / "test_vectors" / f"expected_{k}.bin").read_bytes() for k in range(VECTORS)]


def symbols(nm: str, binary: Path) -> set[str]:
    proc = subprocess.run([nm, str(binary)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return {line.split()[-1] for line in proc.stdout.splitlines() if line.strip()}


def fc_macs(step: Any) -> int:
    p = step.params
    return int(p["rows"] * p["in_features"] * p["out_features"])


@needs_cmsis
@pytest.mark.parametrize("target", CMSIS_TARGETS)
@pytest.mark.parametrize("preset", PRESETS)
def test_cmsis_nn_on_qemu_is_bit_exact(built, preset: str,  # type: ignore[no-untyped-def]
                                       target: str) -> None:
    out, report, steps = built(preset, target, "cmsis-nn")
    info = report["qemu"]
    assert info["library"] == "CMSIS-NN v7.0.0" and info["portable_kept"] == {}
    ran = qemu.run(out, report)
    assert ran.exit_code == 0, ran.console[-500:]
    assert ran.outputs == expected(out)
    linked = symbols(qemu.ARM.nm, out / qemu.ELF)
    own = OWN_KERNELS.get(target, {})
    library = CMSIS_CALLS_MVE if target == "qemu-m55" else CMSIS_CALLS
    calls = {**library, **own}
    used = {st.kind for st in steps} & set(calls)
    assert used and {calls[k] for k in used} <= linked
    assert not {library[k] for k in own} & linked  # tinygen's kernel, not the library's
    assert "tg_fully_connected_s8" in linked  # the adapter, in place of the portable one

    # Instructions per step: one row per step, summing to the inference.
    assert all(len(s) == len(steps) for s in ran.instructions_per_step)
    assert [sum(s) for s in ran.instructions_per_step] == ran.instructions_per_inference
    fc = [k for k, st in enumerate(steps) if st.kind == "fully_connected"]
    assert fc
    first, second = ran.instructions_per_step
    for k in fc:
        macs, p = fc_macs(steps[k]), steps[k].params
        outputs = p["rows"] * p["out_features"]
        # The data reaches a fully connected layer's count only through the branches of
        # the requantization and clamp (a few instructions an output): two inputs differ
        # by less than 8 instructions an output.
        assert abs(first[k] - second[k]) < 8 * outputs, (k, first[k], second[k])
        # Lower bound: the ISA's widest MAC instruction, doing nothing else.
        assert first[k] >= macs // MACS_PER_INSTRUCTION[target], (k, first[k], macs)
        # Upper bound: a scalar loop's floor, two byte loads and a multiply-accumulate
        # per MAC, plus a requantization per output (under 100) and the call (under
        # 2,000); the DSP and Helium paths stay below it.
        assert first[k] <= 3 * macs + 100 * outputs + 2000, \
            (k, first[k], macs)
    total_fc = sum(first[k] for k in fc)
    print(f"{preset} on {target} (cmsis-nn): {ran.instructions_per_inference[0]:,} "
          f"instructions per inference, "
          f"{ran.instructions_per_inference[0] / report['macs_per_inference']:.2f} per MAC; "
          f"fully connected {total_fc / sum(fc_macs(steps[k]) for k in fc):.2f} per MAC")


@needs_esp
@pytest.mark.parametrize("preset", PRESETS)
def test_esp_nn_on_host_is_bit_exact(built, preset: str) -> None:  # type: ignore[no-untyped-def]
    out, report, steps = built(preset, "host", "esp-nn")
    info = report["host"]
    assert info["library"] == "ESP-NN v1.1.2 ANSI C"
    exe = out / host.EXE
    vecs = [(out / "test_vectors" / f"input_{k}.bin").read_bytes() for k in range(VECTORS)]
    assert host.run(exe, vecs) == expected(out)
    linked = symbols("nm", exe)
    used = {st.kind for st in steps} & set(ESP_CALLS)
    kept = {name.removeprefix("tg_").removesuffix("_s8.c") for name in info["portable_kept"]}
    assert used - kept and {ESP_CALLS[k] for k in used - kept} <= linked


@needs_esp
def test_esp_nn_host_verify_and_makefile(built) -> None:  # type: ignore[no-untyped-def]
    """tinygen verify recompiles OUT's sources with ESP-NN (from report.json's kernels),
    and OUT/host/Makefile builds an executable that gives the same outputs."""
    out, _, _ = built("share-lowrank", "host", "esp-nn")
    result = run_tinygen("verify", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert '"bit_exact": true' in result.stdout
    folder = out / "host"
    proc = subprocess.run(["make", "-s", "-B", "-C", str(folder), "tinygen_model"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (folder / "esp-nn" / "libesp-nn.a").is_file()
    vecs = [(out / "test_vectors" / f"input_{k}.bin").read_bytes() for k in range(VECTORS)]
    assert host.run(folder / "tinygen_model", vecs) == expected(out)
    assert ESP_NN not in (folder / "Makefile").read_text()


@needs_cmsis
def test_cmsis_nn_makefile_rebuilds_the_same_elf(built) -> None:  # type: ignore[no-untyped-def]
    out, _, _ = built("share-lowrank", "qemu-m55", "cmsis-nn")
    folder = out / "qemu"
    elf = (folder / "firmware.elf").read_bytes()
    proc = subprocess.run(["make", "-s", "-B", "-C", str(folder), "firmware.elf"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (folder / "firmware.elf").read_bytes() == elf
    makefile = (folder / "Makefile").read_text()
    assert CMSIS_NN not in makefile and "-mcpu=cortex-m55" in makefile
    assert "-DTG_CMSIS_NN_REQUIRE_MVE=1" in makefile


@needs_cmsis
def test_the_library_is_compiled_once_per_core(built) -> None:  # type: ignore[no-untyped-def]
    """Two boards with one -mcpu share nothing, each core has its own cached library, and
    asking again compiles nothing (the archive is the same file, untouched)."""
    for target in CMSIS_TARGETS:
        built("share-lowrank", target, "cmsis-nn")
    cache = Path(os.environ[nnlib.CACHE_ENV])
    archives = sorted(cache.glob("*/libcmsis-nn.a"))
    assert len(archives) == len(CMSIS_TARGETS)
    board = qemu.BOARDS["qemu-m4"]
    stamp = {a: a.stat().st_mtime_ns for a in archives}
    again = nnlib.library("cmsis-nn", "qemu-m4", board.arch.cc, board.arch.ar,
                          qemu._core(board))
    assert again in archives and {a: a.stat().st_mtime_ns for a in archives} == stamp


@needs_cmsis
def test_helium_layer_norm_equals_the_portable_kernel(tmp_path: Path) -> None:
    """cmsis_nn/tg_layer_norm_s8.c's MVE code on qemu-m55 against the portable kernel it
    compiles in, on edge cases the presets lack (every tail length, roots past 2^30 that
    take the portable fallback, in place): tests/c/tg_layer_norm_mve_check.c."""
    board = qemu.BOARDS["qemu-m55"]
    boards = qemu.board_dir().parent
    for name in (*board.arch.files, *qemu.SHARED_FILES,
                 f"{board.folder}/{board.linker_script}"):
        shutil.copyfile(boards / name, tmp_path / Path(name).name)
    tinygen_c = Path(__file__).parents[1] / "firmware" / "tinygen"
    sources = [Path(__file__).parent / "c" / "tg_layer_norm_mve_check.c",
               tinygen_c / "cmsis_nn" / "tg_layer_norm_s8.c",
               *(tmp_path / s for s in board.arch.sources)]
    cmd = [board.arch.cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
           *board.arch.cflags, *board.cflags, "-DTG_CMSIS_NN_REQUIRE_MVE=1",
           "-I", str(tinygen_c), "-I", str(tmp_path), "-I", f"{CMSIS_NN}/Include",
           *map(str, sources), *board.arch.ldflags, "-L", str(tmp_path), "-T",
           board.linker_script, "-o", "check.elf"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = subprocess.run([QEMU_ARM, "-M", board.machine, "-nographic",
                          *board.arch.qemu_options, "-kernel", "check.elf"],
                         cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, timeout=300)
    console = run.stdout + run.stderr  # semihosting's text
    assert "cases 400\nhuge_eps 100\nbad 0\n" in console, console[-2000:]
    assert run.returncode == 0


@pytest.mark.parametrize(("target", "backend", "env"), [
    ("qemu-m4", "cmsis-nn", "TINYGEN_CMSIS_NN"), ("host", "esp-nn", "TINYGEN_ESP_NN")])
def test_without_the_checkout_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          target: str, backend: str, env: str) -> None:
    """Checked before the model is compiled: one line, nothing written."""
    monkeypatch.delenv(env, raising=False)
    out = tmp_path / "out"
    result = run_tinygen("build", "preset:share-blocks", "--target", target, "--backend",
                         backend, "-o", str(out), "--vectors", "1")
    lib = nnlib.LIBRARIES[backend]
    assert_one_line_error(result, f"--backend {backend} on {target} compiles {lib.name}'s",
                          f"${env} is not set", f"set {env} to", "--backend portable")
    assert not out.exists()
    monkeypatch.setenv(env, str(tmp_path))
    result = run_tinygen("build", "preset:share-blocks", "--target", target, "--backend",
                         backend, "-o", str(out), "--vectors", "1")
    assert_one_line_error(result, f"${env}={tmp_path} is not a", f"(no {lib.probe})")
    assert not out.exists()
