"""``--backend tflm`` on the host and qemu-m4: TensorFlow Lite Micro's reference kernels,
compiled from $TINYGEN_TFLM, run the .tflite export behind the same mains as tinygen's
own kernels.

Oracles: the golden numpy reference of the .tflite flavour (``run_int8(...,
tflite_flavour=True)``, computed here again, not read back from the build) and the
tflite-micro wheel running the same .tflite bytes. For preset:mcu-tiny and
preset:share-lowrank, the host executable and the qemu-m4 firmware must equal both bit for
bit; ``tinygen verify`` must say so; QEMU must count instructions per inference.

A streaming model (tests.test_streaming_build's, 80 ms chunks) exports its step: the
chunk and the state in, the logits and the new state out. The tflite-micro wheel, the host
executable and the qemu-m4 firmware step whole streams (shorter than one chunk up to 32
chunks, each after a reset) and must equal the golden .tflite-flavour step bit for bit.

TFLM's library is compiled once per target for the whole test session (cached under the
session's temp folder). The tests skip, saying why, when $TINYGEN_TFLM is unset
(scripts/test.sh sets it when ../shared/third_party exists).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import assert_one_line_error, run_tinygen
from tinygen.audio_build import audio_input_range
from tinygen.build import BuildOptions, build
from tinygen.compiler.pipeline import compile_model
from tinygen.speech.calib import inputs, window_frames
from tinygen.speech.checkpoint import load_model
from tinygen.targets import TargetContext, TargetError, host, platformio, qemu, tflm
from tinygen.tflite.runner import run_tflm
from tinygen.verify import verify

TFLM = os.environ.get(tflm.ENV, "")
PRESETS = ["mcu-tiny", "share-lowrank"]
TARGETS = ["host", "qemu-m4"]
VECTORS = 2


@pytest.fixture(scope="session")
def tflm_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """TFLM's libraries, compiled once per target for the session (or kept across sessions
    in $TINYGEN_TFLM_CACHE when that is set)."""
    if not TFLM:
        pytest.skip(f"${tflm.ENV} is not set: TFLM cannot be compiled "
                    "(point it at an esp-tflite-micro v1.3.8 checkout)")
    folder = Path(os.environ.get(tflm.CACHE_ENV, "") or tmp_path_factory.mktemp("tflm-cache"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(tflm.CACHE_ENV, str(folder))
        yield folder


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory, tflm_cache: Path):  # type: ignore[no-untyped-def]
    """(preset, target) -> (OUT, report, golden .tflite-flavour outputs, wheel outputs)."""
    root = tmp_path_factory.mktemp("tflm")
    models: dict[str, Any] = {}
    cache: dict[tuple[str, str], tuple[Path, dict[str, Any], list[bytes], list[bytes]]] = {}

    def get(preset: str, target: str) -> tuple[Path, dict[str, Any], list[bytes], list[bytes]]:
        if preset not in models:
            model = load_model(f"preset:{preset}")
            frames = window_frames(model.cfg, 1000)
            cal = inputs(model.cfg, frames, 2, seed=0)
            vecs = inputs(model.cfg, frames, VECTORS, seed=1)
            models[preset] = (model, cal, vecs, compile_model(
                model, frames, cal, input_range=audio_input_range(model)))
        model, cal, vecs, compiled = models[preset]
        if (preset, target) not in cache:
            out = root / f"{preset}-{target}"
            report = build(model, out, cal, vecs, BuildOptions(target=target, backend="tflm"),
                           preset, compiled=compiled)
            blob = (out / "tflm" / "tinygen_tflite.c").read_text()
            assert f"{report['tflm']['model_bytes']} bytes" in blob
            from tinygen.tflite.export import to_tflite

            tflite, _ = to_tflite(compiled.tflite_int8)
            xq = [compiled.quantize_input(x) for x in vecs]
            golden = [compiled.run_int8(q, tflite_flavour=True).tobytes() for q in xq]
            shape = report["input"]["shape"]
            wheel = [run_tflm(tflite, [q.reshape(shape)])[0].tobytes() for q in xq]
            cache[(preset, target)] = (out, report, golden, wheel)
        return cache[(preset, target)]

    return get


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("target", TARGETS)
def test_tflm_is_bit_exact_with_the_tflite_golden_reference(builds, target: str,  # type: ignore[no-untyped-def]
                                                             preset: str) -> None:
    out, report, golden, wheel = builds(preset, target)
    assert report["backend"] == "tflm"
    assert golden == wheel  # the two oracles agree
    expected = [(out / "test_vectors" / f"expected_{k}.bin").read_bytes()
                for k in range(VECTORS)]
    assert expected == golden  # a tflm build's vectors are the .tflite flavour's
    if target == "host":
        outputs = host.run(out / host.EXE, [(out / "test_vectors" / f"input_{k}.bin")
                                            .read_bytes() for k in range(VECTORS)])
    else:
        ran = qemu.run(out, report)
        assert ran.exit_code == 0, ran.console[-500:]
        outputs = ran.outputs
        assert len(ran.instructions_per_inference) == VECTORS
        assert all(n > 0 for n in ran.instructions_per_inference)
        used, objects = [int(v) for v in ran.console.split("tg_tflm_memory arena_used ")[1]
                         .split()[0:3:2]]
        assert 0 < used <= report["tflm"]["arena_bytes"] and objects > 0
        print(f"{preset} on {target} (TFLM): {ran.instructions_per_inference[0]:,} "
              f"instructions per inference, arena {used:,} B used")
    assert outputs == golden
    assert all(len(o) == int(np.prod(report["output"]["shape"])) for o in outputs)


@pytest.mark.parametrize("target", TARGETS)
def test_verify_runs_a_tflm_build(builds, target: str) -> None:  # type: ignore[no-untyped-def]
    out, report, _, _ = builds("mcu-tiny", target)
    result = verify(out)  # the host build is recompiled from OUT's sources
    assert result["bit_exact"] and result["mismatched"] == [] and result["vectors"] == VECTORS
    assert result["snr_db"] is not None
    if target == "qemu-m4":
        assert len(result["instructions_per_inference"]) == VECTORS
        assert report["qemu"]["library"] == "TFLM reference kernels"
    resolver = (out / "tflm" / "tg_tflm_model.cc").read_text()
    assert "Do not edit" in resolver[:400]
    for op in report["tflm"]["ops"]:  # the op resolver comes from the model
        assert f"resolver->{tflm.RESOLVER[op]}()" in resolver, op
    assert f"MicroMutableOpResolver<{len(tflm.resolver(report['tflm']['ops']))}>" in resolver
    assert json.loads((out / "report.json").read_text())["tflm"] == report["tflm"]


def test_library_is_compiled_once_per_target(builds, tflm_cache: Path) -> None:  # type: ignore[no-untyped-def]
    for target in TARGETS:
        builds("mcu-tiny", target)
    stamps = {p: p.stat().st_mtime_ns for p in tflm_cache.glob(f"*/{tflm.LIBRARY}")}
    assert len(stamps) >= len(TARGETS)  # host and Cortex-M4 flags: two libraries
    builds("share-lowrank", "qemu-m4")
    builds("share-lowrank", "host")
    assert {p: p.stat().st_mtime_ns for p in tflm_cache.glob(f"*/{tflm.LIBRARY}")} == stamps


def test_board_projects_build_the_same_sources_and_flags(tmp_path: Path) -> None:
    # The Cortex-M PlatformIO project's lib/tflite-micro config is the test build's.
    model = load_model("preset:share-lowrank")
    frames = window_frames(model.cfg, 1000)
    out = tmp_path / "pio"
    build(model, out, inputs(model.cfg, frames, 1, seed=0), inputs(model.cfg, frames, 1,
                                                                   seed=1),
          BuildOptions(target="cortex-m7", backend="tflm", vectors=1), "share-lowrank")
    config = json.loads((out / "lib" / "tflite-micro" / "library.json").read_text())
    assert config["build"]["srcFilter"] == [f"+<{src}>" for src in tflm.sources()]
    assert config["build"]["flags"] == list(tflm.FLAGS)
    assert platformio.TFLM_RESOLVER is tflm.RESOLVER
    assert not any("esp_nn" in src for src in tflm.sources())  # not on Cortex-M
    tree = Path(TFLM) if TFLM else None
    if tree is not None:
        assert all((tree / src).is_file() for src in tflm.sources())


def test_without_the_checkout_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    monkeypatch.delenv(tflm.ENV, raising=False)
    out = tmp_path / "o"
    result = run_tinygen("build", "preset:mcu-tiny", "--target", "qemu-m4", "--backend",
                         "tflm", "--calib", "1", "--vectors", "1", "-o", str(out))
    assert_one_line_error(result, "--backend tflm on host and qemu-* targets compiles "
                                  "TensorFlow Lite Micro, and $TINYGEN_TFLM is not set")
    assert not out.exists()
    monkeypatch.setenv(tflm.ENV, str(tmp_path))
    with pytest.raises(TargetError, match="is not an esp-tflite-micro checkout"):
        tflm.root()


def test_tflm_is_refused_on_qemu_xtensa(tmp_path: Path) -> None:
    result = run_tinygen("build", "preset:mcu-tiny", "--target", "qemu-xtensa", "--backend",
                         "tflm", "-o", str(tmp_path / "o"))
    assert_one_line_error(result, "backend 'tflm' is not available for target "
                                  "'qemu-xtensa'")
    assert not (tmp_path / "o").exists()


def test_makefile_relinks_the_same_elf(builds, tflm_cache: Path) -> None:  # type: ignore[no-untyped-def]
    # OUT/qemu/Makefile compiles OUT's C and C++ and links them as the build did: given
    # the cached library in place of its own tflm-lib/ (whose rules compile tflm.sources()
    # from $TINYGEN_TFLM), it rebuilds the same ELF byte for byte.
    out, _, _, _ = builds("mcu-tiny", "qemu-m4")
    folder = out / "qemu"
    makefile = (folder / "Makefile").read_text()
    assert all(src in makefile for src in tflm.sources())
    libraries = {p.parent.name: p for p in tflm_cache.glob(f"*/{tflm.LIBRARY}")}
    board = qemu.BOARDS["qemu-m4"]
    key_lib = tflm.library(board.arch.cc.replace("gcc", "g++"),
                           board.arch.nm.replace("-nm", "-ar"),
                           (*board.arch.cflags, *board.cflags, "-ffunction-sections",
                            "-fdata-sections"))
    assert key_lib.parent.name in libraries  # the one the build linked: no new compile
    (folder / "tflm-lib").mkdir(exist_ok=True)
    shutil.copyfile(key_lib, folder / "tflm-lib" / tflm.LIBRARY)
    built = (folder / "firmware.elf").read_bytes()
    proc = subprocess.run(["make", "-s", "-B", "-o", f"tflm-lib/{tflm.LIBRARY}", "-C",
                           str(folder), "firmware.elf"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (folder / "firmware.elf").read_bytes() == built
    assert str(Path(TFLM).resolve()) not in makefile


@pytest.mark.parametrize("info, shape, vectors, message", [
    # mcu-tiny's figures (410,832 B .tflite, 264,416 B arena): the M4's 4 MiB take it, the
    # M55's 512 KiB of ITCM do not (410,832 + 2 vectors of 4,001 B + 163,840 B of code;
    # RAM: 264,416 + 16 KiB of stack + 2 x 800 output bytes + 4 KiB).
    ({"model_bytes": 410_832, "arena_bytes": 264_416}, [1, 25, 32], 2,
     "flash needs 582,674 B of 524,288 B available (.tflite 410,832, 2 test vectors 8,002, "
     "code estimate 163,840); RAM needs 286,496 B of 524,288 B available (TFLM arena "
     "264,416, stack 16,384, buffers 5,696)"),
    # A streaming step: its state buffer is RAM beside the arena, its silence copy flash
    # beside the .tflite: flash 340,000 + 27,144 + 2 x 4,001 + 163,840 = 538,986; RAM
    # 150,000 + 27,144 + 16,384 + 2 x 128 output bytes + 4,096 = 197,880.
    ({"model_bytes": 340_000, "arena_bytes": 150_000, "state_bytes": 27_144}, [1, 4, 32], 2,
     "flash needs 538,986 B of 524,288 B available (.tflite 340,000, silence state 27,144, "
     "2 test vectors 8,002, code estimate 163,840); RAM needs 197,880 B of 524,288 B "
     "available (TFLM arena 150,000, state 27,144, stack 16,384, buffers 4,352)"),
])
def test_too_big_for_the_board_with_tflm_is_refused_with_the_numbers(
        info: dict[str, int], shape: list[int], vectors: int, message: str) -> None:
    ctx = TargetContext("qemu-m55", "tflm", "mcu-tiny", "0", {
        "tflm": info, "output": {"shape": shape}}, [(b"\0" * 4000, b"")] * vectors)
    tflm.check_fit(qemu.BOARDS["qemu-m4"], ctx, qemu.memory(qemu.BOARDS["qemu-m4"]))
    with pytest.raises(TargetError) as err:
        tflm.check_fit(qemu.BOARDS["qemu-m55"], ctx, qemu.memory(qemu.BOARDS["qemu-m55"]))
    assert str(err.value).startswith(
        "model 'mcu-tiny' with TFLM does not fit qemu-m55 (mps3-an547, Cortex-M55): "
        + message)


# ---- streaming: the .tflite is the step, the state its extra inputs and outputs ----------

# log-mel frames per stream; one chunk is 8 (tests.test_streaming_build's model): shorter
# than a chunk, exactly one, one frame more, several, and 32 chunks
STREAM_LENGTHS = (3, 8, 9, 37, 250)


@pytest.fixture(scope="module")
def step():  # type: ignore[no-untyped-def]
    """(model, calibration, streams, compiled step, .tflite of the step)."""
    from tests.test_streaming_build import _model
    from tinygen.speech.streaming import compile_streaming
    from tinygen.tflite.export import to_tflite

    model = _model()
    cal = inputs(model.cfg, 101, 3, seed=0)
    streams = [inputs(model.cfg, t, 1, seed=10 + i)[0] for i, t in enumerate(STREAM_LENGTHS)]
    compiled = compile_streaming(model, cal)
    blob, _ = to_tflite(compiled.tflite_int8)
    return model, cal, streams, compiled, blob


def _golden_streams(model: Any, compiled: Any, streams: list[np.ndarray]
                    ) -> tuple[list[list[np.ndarray]], list[list[np.ndarray]]]:
    """(quantized chunks, golden .tflite-flavour outputs) of each stream, each stepped from
    the flavour's silence state."""
    from tinygen.speech.streaming import chunks_of

    chunks = [[compiled.quantize_input(c) for c in chunks_of(x, model.cfg)] for x in streams]
    start = compiled.start_state(tflite_flavour=True)
    return chunks, [compiled.stream_int8(c, start, tflite_flavour=True) for c in chunks]


def test_tflite_step_on_the_tflm_wheel_is_bit_exact_across_resets(step) -> None:  # type: ignore[no-untyped-def]
    from tinygen.tflite.runner import stream_tflm
    from tinygen.tflite.writer import load_schema

    model, _, streams, compiled, blob = step
    g = compiled.tflite_int8
    n_state = len(compiled.state_shapes())
    # the file: chunk + state in, logits + state out; each state pair one int8 quantization
    m = load_schema().Model.GetRootAs(blob, 0).Subgraphs(0)
    assert m.InputsLength() == m.OutputsLength() == 1 + n_state
    for k in range(1, 1 + n_state):
        t_in, t_out = m.Tensors(m.Inputs(k)), m.Tensors(m.Outputs(k))
        assert tuple(t_in.ShapeAsNumpy()) == tuple(t_out.ShapeAsNumpy()) == g.values[
            g.inputs[k]].shape
        q_in, q_out = t_in.Quantization(), t_out.Quantization()
        assert (q_in.ScaleAsNumpy().tolist(), q_in.ZeroPointAsNumpy().tolist()) == (
            q_out.ScaleAsNumpy().tolist(), q_out.ZeroPointAsNumpy().tolist())
        assert t_in.Type() == t_out.Type() == load_schema().TensorType.INT8
    # the state's quantization is the native step's: calibrated once, for both flavours
    assert [g.values[n].quant for n in g.inputs[1:]] == compiled.state_quants()

    chunks, golden = _golden_streams(model, compiled, streams)
    assert [len(c) for c in chunks] == [1, 1, 2, 5, 32]
    start = compiled.start_state(tflite_flavour=True)
    ran = stream_tflm(blob, chunks, start)  # one interpreter, reset between streams
    for got, want in zip(ran, golden, strict=True):
        assert len(got) == len(want)
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    # TFLM agrees that the start state is what silence leaves behind: a step of silence
    # from it returns it unchanged
    silence = compiled.int8.meta["rest_input"]
    _, *after = run_tflm(blob, [silence, *start])
    assert all(np.array_equal(a, b) for a, b in zip(after, start, strict=True))


@pytest.fixture(scope="module")
def stream_builds(step, tmp_path_factory: pytest.TempPathFactory, tflm_cache: Path):  # type: ignore[no-untyped-def]
    model, cal, streams, compiled, _ = step
    root = tmp_path_factory.mktemp("tflm-stream")
    cache: dict[str, tuple[Path, dict[str, Any]]] = {}

    def get(target: str) -> tuple[Path, dict[str, Any]]:
        if target not in cache:
            out = root / target
            report = build(model, out, cal, streams,
                           BuildOptions(target=target, backend="tflm",
                                        vectors=len(streams)),
                           model.cfg.name, compiled=compiled)
            cache[target] = (out, report)
        return cache[target]

    return get


@pytest.mark.parametrize("target", TARGETS)
def test_tflm_firmware_steps_streams_like_the_golden_reference(step, stream_builds,  # type: ignore[no-untyped-def]
                                                               target: str) -> None:
    from tinygen.tflite.runner import stream_tflm

    model, _, streams, compiled, blob = step
    out, report = stream_builds(target)
    chunks, golden = _golden_streams(model, compiled, streams)
    want = [b"".join(y.tobytes() for y in g) for g in golden]
    wheel = stream_tflm(blob, chunks, compiled.start_state(tflite_flavour=True))
    assert want == [b"".join(y.tobytes() for y in w) for w in wheel]  # the two oracles
    expected = [(out / "test_vectors" / f"expected_{k}.bin").read_bytes()
                for k in range(len(streams))]
    assert expected == want  # a tflm build's vectors are the .tflite step's
    result = verify(out)  # the C (host, recompiled from OUT) or the firmware (QEMU)
    assert result["bit_exact"], result["mismatched"]
    assert result["vectors"] == len(streams) and result["snr_db"] > 20
    info = report["tflm"]
    sizes = [int(np.prod(s)) for s in compiled.state_shapes()]
    assert info["state_tensor_bytes"] == sizes and info["state_bytes"] == sum(sizes)
    header = (out / "tflm" / "tinygen_tflite.h").read_text()
    assert f"#define TG_TFLM_STATE_BYTES {sum(sizes)}\n" in header
    assert f"#define TG_TFLM_STATE_TENSORS {len(sizes)}\n" in header
    if target == "host":  # the runner reads whole chunks, one output per chunk
        outputs = host.run(out / host.EXE, [b"".join(c.tobytes() for c in cs)
                                            for cs in chunks])
        assert outputs == want
    else:  # every stream after a tg_model_reset(), in one run: the resets are covered
        counts = result["instructions_per_inference"]  # one per step
        assert len(counts) == sum(len(c) for c in chunks) and min(counts) > 0
        assert result["exit_code"] == 0 and report["qemu"]["library"] == "TFLM reference kernels"


def test_tflm_step_before_reset_is_refused(stream_builds, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # tg_model_step() of the TFLM model API returns TG_ERR_NO_STATE before any reset;
    # after one it runs, and a reset restores the silence state (the same output again).
    out, _ = stream_builds("host")
    work = tmp_path / "out"
    shutil.copytree(out, work)
    (work / "host" / "driver.c").write_text(
        '#include <string.h>\n#include "tinygen_model.h"\n'
        "static int8_t first[TG_OUTPUT_SIZE];\n"
        "int main(void)\n{\n"
        "    if (tg_model_step() != TG_ERR_NO_STATE) return 1; /* no state yet */\n"
        "    memset(tg_model_input(), 0, TG_INPUT_SIZE);\n"
        "    if (tg_model_reset() != 0 || tg_model_step() != 0) return 2;\n"
        "    memcpy(first, tg_model_output(), TG_OUTPUT_SIZE);\n"
        "    memset(tg_model_input(), 0, TG_INPUT_SIZE);\n"
        "    if (tg_model_step() != 0) return 3;\n"
        "    memset(tg_model_input(), 0, TG_INPUT_SIZE);\n"
        "    if (tg_model_reset() != 0 || tg_model_step() != 0) return 4;\n"
        "    return memcmp(first, tg_model_output(), TG_OUTPUT_SIZE) == 0 ? 0 : 5;\n}\n")
    from tinygen.targets import CFLAGS, find_compiler

    cc = find_compiler(None)
    exe = work / "host" / "driver"
    tflm.compile_and_link(cc, tflm.host_cxx(cc), "ar", work / "host", ["driver.c"],
                          list(CFLAGS), (), [], str(exe))
    assert subprocess.run([str(exe)]).returncode == 0


def test_streaming_tflm_on_a_board_project_is_refused(step, tmp_path: Path) -> None:
    from tinygen.build import BuildError

    model, cal, streams, compiled, _ = step
    out = tmp_path / "pio"
    with pytest.raises(BuildError, match="--backend tflm runs a streaming model on host "
                                         "and qemu-\\* targets only, not on 'cortex-m4'"):
        build(model, out, cal, streams[:1], BuildOptions(target="cortex-m4", backend="tflm",
                                                         vectors=1), "s", compiled=compiled)
    assert not out.exists()


def test_export_tflite_of_a_streaming_model_is_the_step_with_its_start_state(  # type: ignore[no-untyped-def]
        step, tmp_path: Path) -> None:
    # What `tinygen export-tflite` writes for a streaming model: the step, and in its
    # metadata the state a stream starts from, so the file alone is enough to stream.
    from tinygen.speech.streaming import chunks_of
    from tinygen.tflite.export import STATE_INIT_METADATA, export_step_file
    from tinygen.tflite.runner import stream_tflm
    from tinygen.tflite.writer import load_schema

    model, _, streams, compiled, blob = step
    held = [chunks_of(x, model.cfg) for x in streams[:4]]  # 1, 1, 2 and 5 chunks
    summary = export_step_file(compiled, tmp_path / "s.tflite", held, verify=4)
    assert summary["tflm_bit_exact"] and summary["streaming"]["steps_checked"] == 9
    assert summary["snr_db"] > 20
    data = (tmp_path / "s.tflite").read_bytes()
    m = load_schema().Model.GetRootAs(data, 0)
    entries = {m.Metadata(i).Name().decode(): m.Metadata(i).Buffer()
               for i in range(m.MetadataLength())}
    init = m.Buffers(entries[STATE_INIT_METADATA]).DataAsNumpy().view(np.int8)
    start, k = [], 0  # the state tensors, cut from the metadata by the inputs' shapes
    g = m.Subgraphs(0)
    for i in range(1, g.InputsLength()):
        shape = tuple(g.Tensors(g.Inputs(i)).ShapeAsNumpy())
        n = int(np.prod(shape))
        start.append(init[k:k + n].reshape(shape))
        k += n
    assert k == len(init) == summary["streaming"]["state_bytes"]
    chunks, golden = _golden_streams(model, compiled, streams[:4])
    got = stream_tflm(data, chunks, start)
    assert all(np.array_equal(a, b) for gs, ws in zip(got, golden, strict=True)
               for a, b in zip(gs, ws, strict=True))
    assert len(blob) + len(init) <= len(data)  # the same step, plus the metadata
