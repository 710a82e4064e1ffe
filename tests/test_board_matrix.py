"""Every board x backend x app the CLI offers, generated and validated; and the checks that
catch the build breakers of generated board projects (docs/targets.md):

- flags: a generated build file carries only flags that survive the framework's flag
  handling (platform-espressif32's espidf builder splits and sorts them);
- toolchain: a backend whose library needs a newer GCC than the board's platform pins is
  not offered, and is refused in one line;
- ISA: the CMSIS-NN adapters compile with the library's headers and the flags the
  board's framework passes (FPU ABI included), and stop with #error when the compiler
  flags leave the CPU's MVE or DSP extension off;
- fit: the shipped models/mcu-tiny.pt builds for --target cortex-m4 and --target esp32s3
  with their default boards and backends.

One model is compiled once for the module (a small preset, one calibration input) and
reused by every combination; C files are compiled with -fsyntax-only where that suffices.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from platformio.project.config import ProjectConfig  # the [dev] extra

from tests.conftest import REPO, assert_one_line_error, compile_once, run_tinygen
from tinygen.build import BuildOptions, build
from tinygen.speech.calib import inputs, window_frames
from tinygen.speech.checkpoint import load_model
from tinygen.targets import boards
from tinygen.targets import platformio as pio

ARM_GCC = shutil.which("arm-none-eabi-gcc")
# The application a project runs. Today there is one: the self-test firmware (embedded
# test vectors, tg_out/tg_match lines). A new app adds its name here and its own checks.
APPS = ("selftest",)
COMBOS = [(name, backend, app) for name in boards.board_names()
          for backend in boards.board_backends(boards.BOARDS[name]) for app in APPS]


def _third_party(name: str, env: str) -> Path | None:
    """A library snapshot: $env, else ../shared/third_party/<name> beside the checkout."""
    path = Path(os.environ.get(env) or REPO.parent / "shared" / "third_party" / name)
    return path if path.is_dir() else None


CMSIS_NN = _third_party("cmsis-nn", "TINYGEN_CMSIS_NN")
ESP_NN = _third_party("esp-nn", "TINYGEN_ESP_NN")


def _gcc(*args: str | Path, gcc: str = "arm-none-eabi-gcc") -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run([gcc, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """project(board, backend, preset) -> (OUT, report), each built once per module with
    tinygen.build.build; each preset is calibrated and quantized once."""
    mp = pytest.MonkeyPatch()
    compile_once(mp)
    root = tmp_path_factory.mktemp("matrix")
    models: dict[str, tuple] = {}  # type: ignore[type-arg]
    built: dict[tuple[str, str, str], tuple[Path, dict]] = {}  # type: ignore[type-arg]

    def make(name: str, backend: str, preset: str = "share-lowrank"
             ) -> tuple[Path, dict]:  # type: ignore[type-arg]
        key = (name, backend, preset)
        if key not in built:
            if preset not in models:
                model = load_model(preset if preset.endswith(".pt") else f"preset:{preset}")
                frames = window_frames(model.cfg, 1000)
                models[preset] = (model, inputs(model.cfg, frames, 1, seed=0),
                                  inputs(model.cfg, frames, 2, seed=1))
            model, cal, vecs = models[preset]
            out = root / f"{Path(preset).stem}-{name}-{backend}"
            board = boards.BOARDS[name]
            try:
                built[key] = (out, build(model, out, cal, vecs, BuildOptions(
                    target=board.target, backend=backend, board=name, vectors=2,
                    force=True), Path(preset).stem))
            except boards.FitError as err:  # refused before anything was written
                built[key] = (out, {"refused": str(err)})
        return built[key]

    yield make
    mp.undo()


# --------------------------------------------------------------------------------- flags
def build_file_flags(out: Path) -> dict[str, list[str]]:
    """Every compiler flag in OUT's build files, one entry per flag as the file lists it:
    lib/*/library.json build.flags, platformio.ini build_flags, and the arguments of
    target_compile_options / add_compile_options & co. in each CMakeLists.txt."""
    found: dict[str, list[str]] = {}
    for manifest in sorted(out.glob("lib/*/library.json")):
        flags = json.loads(manifest.read_text()).get("build", {}).get("flags", [])
        found[str(manifest.relative_to(out))] = [flags] if isinstance(flags, str) else flags
    config = ProjectConfig(str(out / "platformio.ini"), parse_extra=False)
    for env in config.envs():
        found[f"platformio.ini [env:{env}]"] = config.get(f"env:{env}", "build_flags")
    for cmake in sorted(out.glob("**/CMakeLists.txt")):
        text = re.sub(r"#[^\n]*", "", cmake.read_text())
        entries: list[str] = []
        for command, args in re.findall(
                r"\b(target_compile_options|target_compile_definitions|add_compile_options|"
                r"add_definitions)\s*\(([^)]*)\)", text, re.I):
            words = args.split()
            if command.lower().startswith("target_"):
                words = [w for w in words[1:] if w not in ("PRIVATE", "PUBLIC", "INTERFACE")]
            entries += words  # CMake passes each list element as one fragment
        found[str(cmake.relative_to(out))] = entries
    return found


def espidf_app_flags(fragments: list[str]) -> list[str]:
    """What platform-espressif32 6.13.0's builder/frameworks/espidf.py get_app_flags()
    makes of the main component's compile fragments: each is split into tokens, the -D
    ones are dropped, and the rest are sorted."""
    import shlex

    return sorted(t for f in fragments if f.strip() and not f.startswith("-D")
                  for t in shlex.split(f.strip()))


# ESP-IDF 5.1's own C flags for an esp32s3 app (tools/cmake/build.cmake and the
# toolchain file), which the builder sorts together with the project's.
IDF_FRAGMENTS = ["-mlongcalls", "-ffunction-sections", "-fdata-sections", "-Wall",
                 "-Werror=all", "-Wno-error=unused-function", "-gdwarf-4", "-ggdb", "-O2",
                 "-fstrict-volatile-bitfields", "-fno-jump-tables", "-fno-tree-switch-conversion",
                 "-std=gnu17", "-Wno-old-style-declaration"]


def test_flag_rule_catches_a_split_include() -> None:
    """The two fragments of `-include FILE` (what the old src/CMakeLists.txt added) are
    torn apart by the espidf builder's sort: the file lands after an unrelated flag,
    which -include then swallows, and the header becomes a second input file."""
    old = ["-include", "/p/src/tinygen_board.h"]
    # the path alone is one harmless token; -include is the problem
    assert pio.flag_problems(old) == ["'-include' takes its argument from the next token"]
    flags = espidf_app_flags([*IDF_FRAGMENTS, *old])
    at = flags.index("-include")
    assert flags[at + 1] != "/p/src/tinygen_board.h"  # -include now swallows another flag
    assert flags[at + 1] == "-mlongcalls"
    assert pio.flag_problems(["-include /p/x.h"]) == ["'-include /p/x.h' is 2 tokens"]
    assert pio.flag_problems(["-DTG_NN_SCRATCH_BYTES=96", "-fbuiltin", "-I.pio/x"]) == []
    # a one-token flag keeps its meaning in any order
    good = espidf_app_flags([*IDF_FRAGMENTS, "-fbuiltin"])
    assert sorted(good) == good and "-fbuiltin" in good


# ---------------------------------------------------------------------------- toolchains
def test_toolchain_data() -> None:
    """Every Zephyr board states the GCC its platform pins and where that was read; the
    nRF52840-DK's (GCC 8.2.1) is too old for CMSIS-NN, so the CLI does not offer it there."""
    needs = boards.BACKEND_NEEDS["cmsis-nn"]
    for b in boards.BOARDS.values():
        if b.framework == "zephyr":
            assert len(b.gcc) == 3 and "toolchain-gccarmnoneeabi" in b.toolchain, b.name
        offered = boards.board_backends(b)
        assert b.default_backend == offered[0], b.name  # no untested defaults
        for backend in offered:
            assert boards.backend_problem(b, backend) == ""
    nrf = boards.BOARDS["nrf52840_dk"]
    assert nrf.gcc == (8, 2, 1) and nrf.gcc < needs.min_gcc
    assert "cmsis-nn" not in boards.board_backends(nrf) and nrf.default_backend == "portable"
    problem = boards.backend_problem(nrf, "cmsis-nn")
    assert "GCC 10" in problem and "GCC 8.2.1" in problem and "__qadd" in problem
    with pytest.raises(boards.BoardError):
        boards.check_backend("cortex-m4", "cmsis-nn", "nrf52840_dk")


def test_cli_refuses_cmsis_nn_on_nrf52840_dk(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_tinygen("build", "preset:mcu-tiny", "--board", "nrf52840_dk", "--backend",
                         "cmsis-nn", "-o", str(out))
    assert_one_line_error(result, "backend 'cmsis-nn' needs GCC 10", "GCC 8.2.1",
                          "choose one of: portable, tflm")
    assert not out.exists()


@pytest.mark.skipif(CMSIS_NN is None, reason="set TINYGEN_CMSIS_NN to a CMSIS-NN v7.0.0 tree")
def test_cmsis_nn_intrinsics_are_the_librarys() -> None:
    """The intrinsics BACKEND_NEEDS lists are exactly those CMSIS-NN's arm_nn_compiler.h
    maps for GCC on a DSP core, and the installed GCC (12) declares every one of them."""
    assert CMSIS_NN is not None
    header = (CMSIS_NN / "Include" / "Internal" / "arm_nn_compiler.h").read_text()
    dsp = header[header.index("#if (defined(__ARM_FEATURE_DSP) && (__ARM_FEATURE_DSP == 1))"):]
    dsp = dsp[:dsp.index("#if defined(__ARMCC_VERSION)")]  # the common (all-compiler) part
    mapped = re.findall(r"#define \w+ (__\w+)\s*$", dsp, re.M)
    assert sorted(mapped) == sorted(boards.BACKEND_NEEDS["cmsis-nn"].intrinsics)
    if ARM_GCC:
        body = "\n".join(f"(void)&{name};" for name in mapped)
        src = f"#include <arm_acle.h>\nvoid f(void) {{\n{body}\n}}\n"
        proc = subprocess.run([ARM_GCC, "-mcpu=cortex-m4", "-mthumb", "-std=c99", "-Werror",
                               "-fsyntax-only", "-x", "c", "-"], input=src, text=True,
                              capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr


# ----------------------------------------------------------------------------------- ISA
def _adapter_check(out: Path, flags: tuple[str, ...] | list[str]) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    """The project's CMSIS-NN adapters, -fsyntax-only, with CMSIS-NN's headers, ``flags``
    and lib/tinygen's own build flags."""
    assert CMSIS_NN is not None
    lib = out / "lib" / "tinygen"
    lib_flags = json.loads((lib / "library.json").read_text())["build"].get("flags", [])
    adapters = sorted((lib / "cmsis_nn").glob("*.c"))
    assert adapters
    return _gcc(*flags, *lib_flags, "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
                f"-I{CMSIS_NN / 'Include'}", f"-I{lib}", *adapters)


def zephyr_flags_from_prj(board: boards.Board, prj: str) -> list[str]:
    """The FPU flags Zephyr derives from prj.conf for the board's CPU: Zephyr 3.4
    cmake/gcc-m-fpu.cmake (FPU_FOR_cortex-m4 fpv4-[sp-]d16, cortex-m7 fpv5-[sp-]d16,
    cortex-m55 auto) and compiler/gcc/target_arm.cmake (-mfloat-abi=hard with
    CONFIG_FP_HARDABI); nothing without CONFIG_FPU=y."""
    conf = dict(re.findall(r"^(CONFIG_\w+)=(\S+)", prj, re.M))
    if conf.get("CONFIG_FPU") != "y":
        return []
    fpu = {"cortex-m4": "fpv4-{}d16", "cortex-m7": "fpv5-{}d16", "cortex-m55": "auto"}
    double = board.name == "nucleo_h743zi"  # the STM32H7's FPU is double precision
    flags = [f"-mfpu={fpu[board.cpu].format('' if double else 'sp-')}"]
    if conf.get("CONFIG_FP_HARDABI") == "y":
        flags.insert(0, "-mfloat-abi=hard")
    return flags


@pytest.mark.skipif(not ARM_GCC, reason="apt-get install gcc-arm-none-eabi")
def test_m55_prj_conf_turns_on_mve(project) -> None:  # type: ignore[no-untyped-def]
    """The M55 project's prj.conf enables the FPU with the hard-float ABI: the flags
    Zephyr derives from it make GCC define __ARM_FEATURE_MVE, so CMSIS-NN builds its
    Helium path (and boards.py's framework flags are those flags)."""
    board = boards.BOARDS["mps3_an547"]
    out, _ = project(board.name, "cmsis-nn")
    derived = zephyr_flags_from_prj(board, (out / "zephyr" / "prj.conf").read_text())
    assert derived == list(board.fpu_flags)
    macros = _gcc(f"-mcpu={board.cpu}", "-mthumb", *derived, "-dM", "-E", "-x", "c",
                  "/dev/null").stdout
    assert re.search(r"#define __ARM_FEATURE_MVE [13]", macros), macros


@pytest.mark.skipif(not ARM_GCC or CMSIS_NN is None,
                    reason="needs arm-none-eabi-gcc and TINYGEN_CMSIS_NN (CMSIS-NN v7.0.0)")
@pytest.mark.parametrize(("name", "off"), [
    ("mps3_an547", ("-mthumb", "-mcpu=cortex-m55")),  # no FPU ABI: no MVE
    ("nucleo_f429zi", ("-mthumb", "-mcpu=cortex-m3")),  # a core without DSP
])
def test_required_isa_feature_off_is_a_compile_error(project, name: str,  # type: ignore[no-untyped-def]
                                                     off: tuple[str, ...]) -> None:
    out, _ = project(name, "cmsis-nn")
    board = boards.BOARDS[name]
    ok = _adapter_check(out, board.framework_cflags)
    assert ok.returncode == 0, ok.stderr
    bad = _adapter_check(out, off)
    assert bad.returncode != 0
    want = "without MVE" if board.cpu_family == "mve" else "without the DSP extension"
    assert f"#error \"tinygen: CMSIS-NN would build {want}" in bad.stderr, bad.stderr


@pytest.mark.skipif(not ARM_GCC or CMSIS_NN is None,
                    reason="needs arm-none-eabi-gcc and TINYGEN_CMSIS_NN (CMSIS-NN v7.0.0)")
def test_cmsis_nn_mve_builds_even_with_frame_pointers() -> None:
    """lib/cmsis-nn's flags come after the framework's: with -fomit-frame-pointer the MVE
    matrix kernel builds even where the framework asks for frame pointers; without it,
    it fails with "impossible constraints" (ARM-software/CMSIS-NN#183)."""
    assert CMSIS_NN is not None
    board = boards.BOARDS["mps3_an547"]
    src = CMSIS_NN / "Source" / "NNSupportFunctions" / "arm_nn_mat_mul_core_4x_s8.c"
    base = (*board.framework_cflags, "-fno-omit-frame-pointer", f"-I{CMSIS_NN / 'Include'}",
            "-c", src, "-o", os.devnull)
    fails = _gcc(*base)
    assert fails.returncode != 0 and "impossible constraints" in fails.stderr
    ok = _gcc(*base[:-5], *pio.CMSIS_NN_FLAGS, *base[-5:])
    assert ok.returncode == 0, ok.stderr


# -------------------------------------------------------------------------------- matrix
@pytest.mark.parametrize(("name", "backend", "app"), COMBOS)
def test_every_board_backend_app(project, name: str, backend: str,  # type: ignore[no-untyped-def]
                                 app: str) -> None:
    """Generated, platformio.ini parsed by PlatformIO, the fit check run, only surviving
    flags in build files, and the sources compiled for the board (tinygen build compiles
    them with the board's framework flags; here the adapters also with the library's
    headers)."""
    assert app == "selftest"
    board = boards.BOARDS[name]
    out, report = project(name, backend)
    if "refused" in report:
        # TFLM's interpreter (~320 KB of code) and the .tflite do not fit a 512 KB
        # board even with the smallest preset: the fit check says so, in one line,
        # before writing anything.
        assert (backend, board.flash_bytes) == ("tflm", 512 * 1024), report["refused"]
        assert f"does not fit {name}: flash TOO SMALL" in report["refused"]
        assert "\n" not in report["refused"] and not out.exists()
        return
    config = ProjectConfig(str(out / "platformio.ini"), parse_extra=False)
    config.validate(envs=[name])
    assert config.get(f"env:{name}", "board") == board.pio_board
    assert report["board"] == name and report["backend"] == backend
    fit = report["fit"]
    assert fit["flash_needed_bytes"] <= fit["flash_available_bytes"]
    assert fit["ram_needed_bytes"] <= fit["ram_available_bytes"] or \
        fit["arena_placement"] == "PSRAM"
    for where, flags in build_file_flags(out).items():
        assert pio.flag_problems(flags) == [], where
    if board.framework == "espidf":
        cmake = build_file_flags(out)["src/CMakeLists.txt"]
        assert espidf_app_flags(cmake) == sorted(cmake)  # nothing to tear apart
        if backend != "tflm":
            model_c = (out / "src" / "tinygen_model.c").read_text()
            assert model_c.index("#include \"tinygen_board.h\"") < model_c.index("tg_arena[")
    if board.cpu:
        checked = report["platformio"]["checked"]
        assert " ".join(board.framework_cflags) in checked, checked
    if backend == "cmsis-nn" and ARM_GCC and CMSIS_NN is not None:
        proc = _adapter_check(out, board.framework_cflags)
        assert proc.returncode == 0, proc.stderr
    if backend == "esp-nn" and ESP_NN is not None:
        # ESP-NN's ANSI C path with host gcc (no Xtensa compiler here); sdkconfig.h is
        # ESP-IDF's generated header, empty here.
        lib = out / "lib" / "tinygen"
        stub = out.parent / "esp-nn-sdkconfig"
        stub.mkdir(exist_ok=True)
        (stub / "sdkconfig.h").write_text("/* ESP-IDF generates this header */\n")
        flags = json.loads((lib / "library.json").read_text())["build"]["flags"]
        proc = _gcc("-std=c99", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", *flags,
                    f"-I{ESP_NN / 'include'}", f"-I{stub}", f"-I{lib}",
                    *sorted((lib / "esp_nn").glob("*.c")), gcc="gcc")
        assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------- the shipped model
@pytest.mark.parametrize("target", ["cortex-m4", "esp32s3"])
def test_shipped_model_fits_default_board(project, target: str) -> None:  # type: ignore[no-untyped-def]
    """models/mcu-tiny.pt builds for the target's default board and backend (the old
    default Cortex-M4 board, nucleo_f446re, has 524,288 B of flash for 556,616 B)."""
    name = boards.TARGET_BOARDS[target]
    board = boards.BOARDS[name]
    out, report = project(name, board.default_backend, str(REPO / "models" / "mcu-tiny.pt"))
    assert "refused" not in report, report["refused"]
    assert report["fit"]["flash_needed_bytes"] <= board.flash_bytes
    assert (out / "platformio.ini").is_file()
    if target == "cortex-m4":
        assert board.flash_bytes >= 1024 * 1024


@pytest.mark.skipif(not ARM_GCC, reason="apt-get install gcc-arm-none-eabi")
def test_cmsis_nn_flags_bring_builtins_back() -> None:
    """Zephyr compiles with -ffreestanding, which implies -fno-builtin (CMSIS-NN's README
    advises against it): a fixed-size memcpy becomes a call. lib/cmsis-nn's flags, which
    come after the framework's, make it inline code again."""
    src = "#include <string.h>\nvoid f(char *d, const char *s) { memcpy(d, s, 8); }\n"
    board = boards.BOARDS["nucleo_f429zi"]

    def calls_memcpy(flags: tuple[str, ...]) -> bool:
        proc = subprocess.run([str(ARM_GCC), *flags, "-S", "-o", "-", "-x", "c", "-"],
                              input=src, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return "memcpy" in proc.stdout

    assert calls_memcpy(board.framework_cflags)
    assert not calls_memcpy((*board.framework_cflags, *pio.CMSIS_NN_FLAGS))
