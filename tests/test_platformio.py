"""PlatformIO targets: every board's generated project validates with PlatformIO's own
ProjectConfig, its portable C compiles warning-free with gcc and arm-none-eabi-gcc, the
backend adapters replace exactly the portable kernels of the same name, the fit check
refuses a model too big for its board before anything is written, and --backend tflm
embeds the .tflite export.

PlatformIO cannot download platforms here, so no firmware is linked: the generated
projects are checked for what can be checked offline. The adapters' calls into CMSIS-NN
and ESP-NN are checked by hand against the real libraries (see cmsis_nn/README.md).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from platformio.fs import match_src_files  # the [dev] extra: pip install platformio
from platformio.project.config import ProjectConfig

from tests.conftest import assert_one_line_error, compile_once, run_tinygen
from tinygen.build import BuildOptions, build
from tinygen.resources import firmware_dir
from tinygen.speech.calib import inputs, window_frames
from tinygen.speech.checkpoint import load_model
from tinygen.targets import boards
from tinygen.targets import platformio as pio

CPUS = {"cortex-m4", "cortex-m7", "cortex-m55"}
FRAMEWORKS = {"esp32s3": "espidf", "cortex-m4": "zephyr", "cortex-m7": "zephyr",
              "cortex-m55": "zephyr"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """project(preset, board, backend) -> (OUT, report): built through tinygen.build.build
    with one calibration input and two test vectors. Each model is compiled (calibrated,
    quantized) once per module; every board then gets its own build from it."""
    root = tmp_path_factory.mktemp("platformio")
    models: dict[str, tuple] = {}  # type: ignore[type-arg]
    built: dict[tuple[str, str, str], tuple[Path, dict]] = {}  # type: ignore[type-arg]
    mp = pytest.MonkeyPatch()
    compile_once(mp)

    def make(preset: str, board: str, backend: str | None = None,
             out: Path | None = None) -> tuple[Path, dict]:  # type: ignore[type-arg]
        b = boards.BOARDS[board]
        backend = backend or b.default_backend
        key = (preset, board, backend)
        if key in built and out is None:
            return built[key]
        if preset not in models:
            model = load_model(f"preset:{preset}")
            frames = window_frames(model.cfg, 1000)
            models[preset] = (model, inputs(model.cfg, frames, 1, seed=0),
                              inputs(model.cfg, frames, 2, seed=1))
        model, cal, vecs = models[preset]
        dest = out or root / f"{preset}-{board}-{backend}"
        report = build(model, dest, cal, vecs, BuildOptions(
            target=b.target, backend=backend, board=board, vectors=2, force=True), preset)
        if out is None:
            built[key] = (dest, report)
        return dest, report

    yield make
    mp.undo()


# ---------------------------------------------------------------------------------- config
@pytest.mark.parametrize("name", boards.board_names())
def test_platformio_ini_validates(project, name: str) -> None:  # type: ignore[no-untyped-def]
    board = boards.BOARDS[name]
    out, report = project("mcu-tiny", name)
    config = ProjectConfig(str(out / "platformio.ini"), parse_extra=False)
    config.validate(envs=[name])
    section = f"env:{name}"
    assert config.envs() == [name] and config.get("platformio", "default_envs") == [name]
    assert config.get(section, "platform") == board.platform
    assert config.get(section, "board") == board.pio_board
    assert config.get(section, "framework") == [FRAMEWORKS[board.target]]
    assert config.get(section, "monitor_speed") == 115200
    deps = config.get(section, "lib_deps")
    assert report["board"] == name and report["backend"] == board.default_backend
    assert report["arena_placement"] == "internal SRAM"
    assert (out / "src" / "main.c").is_file() and (out / "src" / "tinygen_weights.c").is_file()
    assert (out / "lib" / "tinygen" / "library.json").is_file()
    if board.framework == "espidf":
        assert deps == ["tinygen"]
        assert config.get(section, "board_build.partitions") == "partitions.csv"
        components = (out / "src" / "idf_component.yml").read_text()
        assert re.search(r'^\s+espressif/esp-nn: "~1\.1\.2"$', components, re.M)
        for f in ("CMakeLists.txt", "src/CMakeLists.txt", "sdkconfig.defaults",
                  "partitions.csv"):
            assert (out / f).is_file(), f
        assert "idf_component_register" in (out / "src" / "CMakeLists.txt").read_text()
        assert "app_main" in (out / "src" / "main.c").read_text()
        sdkconfig = (out / "sdkconfig.defaults").read_text()
        assert "CONFIG_PARTITION_TABLE_CUSTOM=y" in sdkconfig
        # CONFIG_PARTITION_TABLE_FILENAME has no prompt: ESP-IDF ignores it in defaults
        assert "CONFIG_PARTITION_TABLE_FILENAME" not in sdkconfig
        assert "idle task" not in sdkconfig and "CONFIG_ESP_TASK_WDT_EN=n" in sdkconfig
        part = (out / "partitions.csv").read_text().splitlines()[-1].split(",")
        assert int(part[3], 16) + int(part[4], 16) == 8 * 1024 * 1024  # the board's flash
        assert int(part[4], 16) == board.flash_bytes
    elif board.default_backend == "cmsis-nn":
        url = "cmsis-nn-src=https://github.com/ARM-software/CMSIS-NN.git#v7.0.0"
        assert deps == ["tinygen", "cmsis-nn", url]
        assert config.get(section, "lib_ignore") == ["cmsis-nn-src"]
        wrapper = json.loads((out / "lib" / "cmsis-nn" / "library.json").read_text())
        assert wrapper["build"]["includeDir"] == f"../../.pio/libdeps/{name}/cmsis-nn-src/Include"
        assert wrapper["build"]["srcDir"] == f"../../.pio/libdeps/{name}/cmsis-nn-src/Source"
        assert wrapper["build"]["flags"] == list(pio.CMSIS_NN_FLAGS)
        assert config.getraw("platformio", "libdeps_dir") == ".pio/libdeps"  # as lib/*/ assume
    else:  # a toolchain too old for CMSIS-NN: the portable kernels only
        assert deps == ["tinygen"] and board.default_backend == "portable"
    if board.framework == "zephyr":
        assert "find_package(Zephyr" in (out / "zephyr" / "CMakeLists.txt").read_text()
        conf = (out / "zephyr" / "prj.conf").read_text()
        assert "CONFIG_MAIN_STACK_SIZE=4096" in conf and "CONFIG_PRINTK=y" in conf
        assert "CONFIG_FPU=y" in conf and "CONFIG_FP_HARDABI=y" in conf
        assert ("debug probe" in conf) != board.custom_board  # the MPS3 has none
        assert "int main(void)" in (out / "src" / "main.c").read_text()
    if board.custom_board:  # the Cortex-M55: a board manifest of our own
        assert config.getraw("platformio", "boards_dir") == "boards"
        manifest = json.loads((out / "boards" / f"{board.pio_board}.json").read_text())
        assert manifest["build"]["cpu"] == "cortex-m55"
        assert manifest["build"]["zephyr"]["variant"] == board.zephyr_board
        assert config.get(section, "upload_protocol") == "custom"
        assert "qemu-system-arm -M mps3-an547" in config.get(section, "upload_command")


# ------------------------------------------------------------------------------- compile
@pytest.mark.parametrize("name", ["esp32-s3-devkitc-1", "nucleo_f429zi", "nucleo_h743zi",
                                  "mps3_an547"])
def test_portable_sources_compile(project, name: str) -> None:  # type: ignore[no-untyped-def]
    """The runtime, the portable kernels, the model and the test vectors of the project:
    warning-free with host gcc, and with arm-none-eabi-gcc -mcpu=<the board's CPU>."""
    out, report = project("mcu-tiny", name)
    board = boards.BOARDS[name]
    compiled, skipped = pio.check_sources(out)
    names = {p.name for p in compiled}
    assert {"tg_executor.c", "tinygen_model.c", "tinygen_weights.c",
            "tinygen_vectors.c"} <= names
    assert "tg_fully_connected_s8.c" in names | {Path(rel).name for rel in skipped}
    pio.compile_check(out, "", gcc="gcc", extra=("-pedantic",))
    if board.cpu:
        assert shutil.which("arm-none-eabi-gcc"), "apt-get install gcc-arm-none-eabi"
        pio.compile_check(out, board.cpu, extra=board.framework_cflags)
        assert f"-mcpu={board.cpu}" in report["platformio"]["checked"]
        assert " ".join(board.fpu_flags) in report["platformio"]["checked"]
        assert report["fit"]["code_estimate"]["runtime_measured_with"].endswith(board.cpu)
    else:  # the esp32 compile check (tests/test_xtensa.py)
        assert "-mcpu=esp32" in report["platformio"]["checked"]
        assert "-mcpu=esp32" in report["fit"]["code_estimate"]["runtime_measured_with"]


def _pio_sources(out: Path) -> set[str]:
    """What the project's build compiles, read independently: src/'s C and C++ files and
    PlatformIO's own source matcher run on lib/tinygen with its library.json filter."""
    lib = out / "lib" / "tinygen"
    manifest = json.loads((lib / "library.json").read_text())
    picked = match_src_files(str(lib), manifest["build"]["srcFilter"], ["c"])
    return ({f"src/{p.name}" for p in (out / "src").iterdir() if p.suffix in (".c", ".cc")}
            | {f"lib/tinygen/{Path(p)}" for p in picked})


@pytest.mark.parametrize(("preset", "name", "backend"), [
    ("mcu-tiny", "nucleo_f446re", "cmsis-nn"), ("mcu-tiny", "mps3_an547", "portable"),
    ("share-lowrank", "nucleo_h743zi", "tflm")])
def test_compile_check_accounts_for_every_source(project, preset: str, name: str,  # type: ignore[no-untyped-def]
                                                 backend: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The report's "checked" names each source of the build as compiled or not (with
    why); main.c needs Zephyr; the CMSIS-NN adapters compile, with -Werror for the board,
    whenever CMSIS-NN's headers are at hand."""
    assert shutil.which("arm-none-eabi-gcc"), "apt-get install gcc-arm-none-eabi"
    out, report = project(preset, name, backend)
    board = boards.BOARDS[name]
    summary = report["platformio"]
    compiled, skipped = set(summary["compiled"]), set(summary["not_compiled"])
    assert compiled | skipped == _pio_sources(out) and not compiled & skipped
    main = "src/main.cc" if backend == "tflm" else "src/main.c"
    assert main in skipped and (backend == "tflm" or
                                summary["not_compiled"][main] == "includes Zephyr headers")
    assert summary["checked"].startswith(f"{len(compiled)} C files compiled with ")
    for rel in skipped:
        assert f"{rel} (" in summary["checked"]
    adapters = {f for f in _pio_sources(out) if "/cmsis_nn/" in f}
    assert bool(adapters) == (backend == "cmsis-nn")
    cmsis = Path(os.environ.get(pio.CMSIS_NN_ENV) or
                 Path(__file__).resolve().parents[2] / "shared" / "third_party" / "cmsis-nn")
    monkeypatch.delenv(pio.CMSIS_NN_ENV, raising=False)
    check = pio.compile_check(out, board.cpu, extra=board.framework_cflags)
    assert set(check["compiled"]) == _pio_sources(out) - adapters - skipped
    assert all("TINYGEN_CMSIS_NN" in check["not_compiled"][a] for a in adapters)
    if adapters and (cmsis / "Include" / "arm_nnfunctions.h").is_file():
        monkeypatch.setenv(pio.CMSIS_NN_ENV, str(cmsis))
        check = pio.compile_check(out, board.cpu, extra=board.framework_cflags)
        assert adapters <= set(check["compiled"])
        assert set(check["not_compiled"]) == {main}


def test_board_table() -> None:
    for b in boards.BOARDS.values():
        assert b.target == (b.cpu or "esp32s3") and b.cpu in CPUS | {""}
        assert b.default_backend == boards.board_backends(b)[0]
        assert 0 < b.ram_reserved < b.ram_bytes and 0 < b.flash_reserved < b.flash_bytes
        assert b.source
    for target, name in boards.TARGET_BOARDS.items():
        assert boards.BOARDS[name].target == target


# ------------------------------------------------------------------------------ backends
@pytest.mark.parametrize(("name", "backend", "folder"),
                         [("nucleo_f446re", "cmsis-nn", "cmsis_nn"),
                          ("esp32-s3-devkitc-1", "esp-nn", "esp_nn"),
                          ("nucleo_f446re", "portable", None)])
def test_backend_file_selection(project, name: str, backend: str,  # type: ignore[no-untyped-def]
                                folder: str | None) -> None:
    """PlatformIO's own source matcher, run on lib/tinygen with its library.json filter,
    picks each adapter instead of the portable file of the same name, and nothing else."""
    out, report = project("mcu-tiny", name, backend)
    lib = out / "lib" / "tinygen"
    manifest = json.loads((lib / "library.json").read_text())
    picked = {str(Path(p)) for p in match_src_files(str(lib), manifest["build"]["srcFilter"],
                                                    ["c"])}
    runtime = {p.name for p in (firmware_dir() / "tinygen").glob("*.c")}
    portable = {p.name for p in (firmware_dir() / "tinygen" / "portable").glob("*.c")}
    adapters = ({p.name for p in (firmware_dir() / "tinygen" / folder).glob("*.c")}
                if folder else set())
    assert {"tg_fully_connected_s8.c", "tg_conv2d_s8.c", "tg_depthwise_conv2d_s8.c"} <= adapters \
        or folder is None
    assert adapters <= portable  # every adapter replaces a portable kernel
    audio = {f"audio/{p.name}" for p in (firmware_dir() / "tinygen" / "audio").glob("*.c")}
    want = (runtime | {f"portable/{n}" for n in portable - adapters}
            | {f"{folder}/{n}" for n in adapters} | audio)
    assert picked == want
    # one definition of every kernel: the executor's call sites never change
    stems = [Path(p).name for p in picked if "/" in p and not p.startswith("audio/")]
    assert len(stems) == len(set(stems)) == len(portable)
    # the other backend's folder does not ship; the scratch size reaches the adapters
    for other in pio.BACKEND_DIRS.values():
        assert (lib / other).is_dir() == (other == folder)
    flags = manifest["build"].get("flags", [])
    # ... and so does the CPU extension the CMSIS-NN adapters insist on (an M4 has DSP)
    isa = ["-DTG_CMSIS_NN_REQUIRE_DSP=1"] if folder == "cmsis_nn" else []
    assert flags == ([f"-DTG_NN_SCRATCH_BYTES={report['scratch_bytes']}", *isa] if folder
                     else [])
    assert report["platformio"]["accelerated_kernels"] == sorted(
        n[3:-5] for n in adapters)
    board_h = (out / "src" / "tinygen_board.h").read_text()
    assert f"#define TG_BOARD_SCRATCH_BYTES {report['scratch_bytes']}" in board_h
    if folder:
        assert "tg_nn_errors()" in (out / "src" / "main.c").read_text()


def test_cmsis_nn_scratch_follows_the_cpu(project) -> None:  # type: ignore[no-untyped-def]
    """The scratch follows the core: on the M4 (DSP) the adapters run tinygen's DSP tiles,
    whose operands are widened into the scratch; the Cortex-M55 (MVE) takes CMSIS-NN's
    kernels, whose buffers (arm_depthwise_conv_s8_opt, batch matmul sums) it sizes."""
    _, m4 = project("mcu-tiny", "nucleo_f446re")
    _, m55 = project("mcu-tiny", "mps3_an547")
    # M4, by hand: the largest is the second subsampling conv (3x3x32 = 288 taps, 32
    # channels): 128 B of widened shifts, 24 im2col rows of 288 bytes, then tg_fc_dsp's
    # words: 2 * 288 of weights and 12 row pairs of 288 inputs + 8 accumulators.
    assert m4["scratch_bytes"] == 128 + 24 * 288 + 4 * (2 * 288 + 12 * (288 + 8))
    assert m55["scratch_bytes"] > 0
    assert m4["fit"]["ram_needed_bytes"] == m4["arena_bytes"] + m4["scratch_bytes"]


# ----------------------------------------------------------------------------------- fit
def test_fit_refuses_paper_5m_on_nucleo_f446re(project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    (out / ".tinygen-out").write_text("tinygen\n")  # an earlier build: --force may replace it
    with pytest.raises(boards.FitError) as err:
        project("paper-5m", "nucleo_f446re", out=out)
    line = str(err.value)
    assert "\n" not in line
    for needle in ("does not fit nucleo_f446re", "weights 4,", "schedule ", "code estimate ",
                   "arena ", "of 524,288 B", "131,072 internal SRAM", "TOO SMALL"):
        assert needle in line, (needle, line)
    assert "--board esp32-s3-devkitc-1-n8r8" in line  # the one board with room
    # OUT is untouched and no temp folder is left beside it
    assert sorted(p.name for p in out.iterdir()) == [".tinygen-out", "keep.txt"]
    assert (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_arena_goes_to_psram_when_internal_sram_is_too_small(project) -> None:  # type: ignore[no-untyped-def]
    out, report = project("paper-5m", "esp32-s3-devkitc-1-n8r8")
    assert report["arena_bytes"] > 327_680 - 64 * 1024
    assert report["arena_placement"] == report["fit"]["arena_placement"] == "PSRAM"
    assert "CONFIG_SPIRAM=y" in (out / "sdkconfig.defaults").read_text()
    assert "CONFIG_SPIRAM_ALLOW_BSS_SEG_EXTERNAL_MEMORY=y" in (
        out / "sdkconfig.defaults").read_text()
    assert "#define TG_ARENA_ATTR EXT_RAM_BSS_ATTR" in (out / "src" / "tinygen_board.h").read_text()
    # the model source includes the board header that defines the attribute (no forced
    # include flag, which PlatformIO's espidf builder would tear apart)
    assert "-include" not in (out / "src" / "CMakeLists.txt").read_text()
    model_c = (out / "src" / "tinygen_model.c").read_text()
    assert model_c.index('#include "tinygen_board.h"') < model_c.index("tg_arena[")
    _, small = project("mcu-tiny", "esp32-s3-devkitc-1-n8r8")
    assert small["arena_placement"] == "internal SRAM"


# ---------------------------------------------------------------------------------- tflm
def _c_string_bytes(text: str) -> bytes:
    """The bytes of the adjacent string literals in a generated C initializer."""
    return b"".join(ast.literal_eval("b" + lit) for lit in re.findall(r'"(?:[^"\\]|\\.)*"', text))


@pytest.mark.parametrize("name", ["esp32-s3-devkitc-1-n8r8", "nucleo_h743zi"])
def test_tflm_backend_writes_the_model_array(project, name: str) -> None:  # type: ignore[no-untyped-def]
    # TFLM's arena for mcu-tiny (with a margin) outgrows the plain devkitc-1's internal
    # SRAM, so the N8R8 board puts it in PSRAM; tinygen's own arena fits either board.
    out, report = project("mcu-tiny", name, "tflm")
    src = out / "src"
    assert not (src / "tinygen_model.c").exists()  # TFLM runs the .tflite, not the schedule
    array = (src / "tinygen_tflite.c").read_text()
    body = array[array.index("TG_TFLITE_ALIGN =") + len("TG_TFLITE_ALIGN ="):]
    blob = _c_string_bytes(body)
    assert len(blob) == report["tflm"]["model_bytes"] > 100_000
    assert blob[4:8] == b"TFL3"  # the flatbuffer's file identifier
    header = (src / "tinygen_tflite.h").read_text()
    assert f"#define TG_TFLITE_MODEL_BYTES {len(blob)}" in header
    assert f"#define TG_TFLM_ARENA_BYTES {report['tflm']['arena_bytes']}" in header
    main = (src / "main.cc").read_text()
    for op in report["tflm"]["ops"]:  # every op of the graph has its resolver entry
        assert f"resolver.{pio.TFLM_RESOLVER[op]}();" in main, op
    resolver = re.search(r"MicroMutableOpResolver<(\d+)>", main)
    assert resolver and int(resolver.group(1)) == main.count("resolver.Add")
    config = ProjectConfig(str(out / "platformio.ini"), parse_extra=False)
    config.validate(envs=[name])
    if name.startswith("esp32"):
        components = (src / "idf_component.yml").read_text()
        assert 'espressif/esp-tflite-micro: "~1.3.8"' in components
        assert "esp-nn" not in components
        assert config.get(f"env:{name}", "lib_deps") == []
        assert 'extern "C" void app_main(void)' in main
        assert report["arena_placement"] == "PSRAM"
        assert "CONFIG_SPIRAM=y" in (out / "sdkconfig.defaults").read_text()
    else:
        deps = config.get(f"env:{name}", "lib_deps")
        assert deps[0] == "tflite-micro" and deps[1].endswith("esp-tflite-micro.git#v1.3.8")
        wrapper = json.loads((out / "lib" / "tflite-micro" / "library.json").read_text())
        assert wrapper["build"]["srcFilter"] == pio.TFLM_SRC_FILTER  # no esp_nn/ kernels
        assert config.get(f"env:{name}", "lib_ignore") == ["tflite-micro-src"]
        assert "CONFIG_STD_CPP17=y" in (out / "zephyr" / "prj.conf").read_text()
    pio.compile_check(out, "", gcc="gcc", extra=("-pedantic",))


# ----------------------------------------------------------------------------------- cli
def test_unknown_board_is_one_line_listing_the_boards(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_tinygen("build", "preset:mcu-tiny", "--board", "nucleo_f999", "-o", str(out))
    assert_one_line_error(result, "unknown board 'nucleo_f999'", *boards.board_names())
    assert not out.exists()
    result = run_tinygen("build", "preset:mcu-tiny", "--target", "cortex-m7", "--board",
                         "nucleo_f446re", "-o", str(out))
    assert_one_line_error(result, "nucleo_f446re is a cortex-m4 board", "--target cortex-m4")
    result = run_tinygen("build", "preset:mcu-tiny", "--target", "esp32s3", "--backend",
                         "cmsis-nn", "-o", str(out))
    assert_one_line_error(result, "backend 'cmsis-nn'", "esp-nn, portable, tflm")


def test_runtime_is_a_platformio_library() -> None:
    """firmware/tinygen doubles as a PlatformIO library (portable kernels by default)."""
    from tinygen import __version__

    manifest = json.loads((firmware_dir() / "tinygen" / "library.json").read_text())
    assert manifest["name"] == "tinygen" and manifest["version"] == __version__
    assert manifest["build"]["srcFilter"] == pio.library_src_filter("portable", [])
