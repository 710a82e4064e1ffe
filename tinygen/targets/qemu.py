"""QEMU targets: ``OUT/qemu/firmware.elf`` for four boards QEMU emulates.

    qemu-m4      mps2-an386   Cortex-M4   (4 MiB code SSRAM at 0x0, 4 MiB SSRAM at 0x20000000)
    qemu-m7      mps2-an500   Cortex-M7   (the same two 4 MiB SSRAMs)
    qemu-m55     mps3-an547   Cortex-M55  (512 KiB ITCM at 0x0, 512 KiB DTCM at 0x20000000)
    qemu-xtensa  sim          Xtensa lx106 (64 MiB ROM at 0x50000000, 128 MiB RAM at
                                           0x60000000): the ESP32 family's ISA, call0 ABI

The firmware embeds the build's test vectors, runs the model on each and prints
``tg_out K <hex>`` over semihosting (Arm: BKPT 0xAB; Xtensa: simcall), then exits 0. The
board support (startup, linker scripts, semihosting, instruction-count markers) is
firmware/boards/qemu/ (Cortex-M, and the parts every board shares) and
firmware/boards/qemu-xtensa/. :func:`run` runs it under qemu-system-arm or
qemu-system-xtensa with a small TCG plugin (firmware/tools/qemu_icount_plugin.c, compiled
by the host C compiler) that counts the instructions of each inference and of each
schedule step, exactly and repeatably.

Backends: portable everywhere; on qemu-xtensa also ``esp-nn``, ESP-NN's ANSI C kernels
compiled from the checkout $TINYGEN_ESP_NN points at (its ESP32-S3 assembly needs the
S3 core, which no Debian toolchain describes), with the adapters of
firmware/tinygen/esp_nn/ in place of the portable kernels of the same name.

A model that does not fit the board's memory is refused by :func:`write`, before the
build writes anything, with the bytes needed and available.

A speech model's build on an Arm board (one with ``OUT/model/tg_audio_tables.h``) also
gets ``OUT/qemu/transcribe.elf`` (templates/qemu/transcribe.c.j2): it reads int16 PCM
from the host file ``tg_audio.pcm`` through semihosting and prints the features, logits
and transcript; ``tinygen verify OUT --audio FILE`` runs it (:func:`run_elf`). With
``--app listen`` it also gets ``OUT/qemu/listen.elf``: the boards' listen loop fed from
the host file ``tg_listen.pcm`` in mic-sized blocks (templates/listen/driver.c.j2).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinygen.resources import firmware_dir
from tinygen.targets import CFLAGS, TargetContext, TargetError, find_compiler, listen

ELF = "qemu/firmware.elf"
TRANSCRIBE_ELF = "qemu/transcribe.elf"
LISTEN_ELF = "qemu/listen.elf"
PLUGIN = "qemu_icount_plugin.so"
PLUGIN_SOURCE = "qemu_icount_plugin.c"
MARKERS = {"start": "tg_mark_start", "step": "tg_mark_step", "stop": "tg_mark_stop"}
# Board files every architecture shares (firmware/boards/qemu/): the markers, the
# semihosting calls' header and the output sections.
SHARED_FILES = ("qemu/tg_qemu_markers.c", "qemu/tg_qemu_markers.h", "qemu/tg_semihost.h",
                "qemu/tg_qemu_sections.ld")
# newlib's system calls for TFLM's C++ (DebugLog, abort); only a tflm build links it.
TFLM_SYSCALLS = "qemu/tg_qemu_syscalls.c"
ESP_NN_ENV = "TINYGEN_ESP_NN"
# ESP-NN's own build options (its CMakeLists.txt): third-party code, not held to -Werror.
ESP_NN_CFLAGS = ("-std=c99", "-O2", "-Wno-unused-function")
ESP_NN_OBJECTS = "esp-nn"  # OUT/qemu/esp-nn/*.o when the Makefile builds it
# Flash the runtime, kernels, main, startup and the libc/libgcc pieces take at -O2
# (about 9 KiB measured on each board), with a wide margin; RAM beyond the arena and the
# stack: the output line buffer (two bytes per output byte) plus this.
CODE_ESTIMATE = 24 * 1024
RAM_EXTRA = 1024


@dataclass(frozen=True)
class Arch:
    """A QEMU system emulator and the GNU toolchain that builds firmware for it."""

    cc: str
    nm: str
    qemu: str
    apt_toolchain: str  # the Debian packages of cc and nm
    apt_qemu: str  # the Debian package of qemu
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    files: tuple[str, ...]  # board sources and headers, relative to firmware/boards
    qemu_options: tuple[str, ...]  # semihosting on, and the monitor off the console
    address_mask: int  # symbol value -> code address (Arm: drop the Thumb bit)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(Path(f).name for f in (*self.files, *SHARED_FILES) if f.endswith(".c"))


ARM = Arch("arm-none-eabi-gcc", "arm-none-eabi-nm", "qemu-system-arm",
           "gcc-arm-none-eabi libnewlib-arm-none-eabi", "qemu-system-arm", ("-mthumb",),
           ("-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections"),
           ("qemu/tg_qemu_startup.c", "qemu/tg_semihost.c"),
           ("-semihosting-config", "enable=on,target=native"), ~1)
# Debian's lx106 toolchain: picolibc by its specs file (full path: gcc looks for a bare
# name only in its own folders); literal pools in .text, as the linker script expects.
XTENSA = Arch("xtensa-lx106-elf-gcc", "xtensa-lx106-elf-nm", "qemu-system-xtensa",
              "gcc-xtensa-lx106 picolibc-xtensa-lx106-elf", "qemu-system-misc",
              ("--specs=/usr/lib/xtensa-lx106-elf/picolibc.specs", "-mtext-section-literals"),
              ("-nostartfiles", "-Wl,--gc-sections"),
              ("qemu-xtensa/tg_xtensa_startup.c", "qemu-xtensa/tg_semihost.c",
               "qemu-xtensa/tg_xtensa_libgcc.c", "qemu-xtensa/sdkconfig.h"),
              ("-semihosting", "-monitor", "none"), ~0)
# Kept for callers that name the Arm toolchain's packages.
APT_TOOLCHAIN = ARM.apt_toolchain


@dataclass(frozen=True)
class Board:
    target: str
    machine: str  # qemu-system-* -M
    cpu: str
    cflags: tuple[str, ...]  # gcc: core, FPU, float ABI
    arch: Arch = ARM
    qemu_cpu: str = ""  # qemu-system-* -cpu, when the machine takes several cores
    backends: tuple[str, ...] = ("portable",)

    @property
    def linker_script(self) -> str:
        return f"{self.machine}-{self.qemu_cpu}.ld" if self.qemu_cpu else f"{self.machine}.ld"

    @property
    def folder(self) -> str:
        """The board's own files: firmware/boards/<folder>/."""
        return Path(self.arch.files[0]).parent.name

    def qemu_args(self) -> list[str]:
        cpu = ["-cpu", self.qemu_cpu] if self.qemu_cpu else []
        return ["-M", self.machine, *cpu, "-nographic", *self.arch.qemu_options]


ARM_BACKENDS = ("portable", "tflm")  # tflm: tinygen.targets.tflm
BOARDS: dict[str, Board] = {
    "qemu-m4": Board("qemu-m4", "mps2-an386", "Cortex-M4",
                     ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
                     backends=ARM_BACKENDS),
    "qemu-m7": Board("qemu-m7", "mps2-an500", "Cortex-M7",
                     ("-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard"),
                     backends=ARM_BACKENDS),
    "qemu-m55": Board("qemu-m55", "mps3-an547", "Cortex-M55",
                      ("-mcpu=cortex-m55", "-mfpu=auto", "-mfloat-abi=hard"),
                      backends=ARM_BACKENDS),
    "qemu-xtensa": Board("qemu-xtensa", "sim", "Xtensa lx106", (), XTENSA, "lx106",
                         ("portable", "esp-nn")),
}


@dataclass
class QemuRun:
    """One run of the firmware: its outputs and, with the plugin, instruction counts."""

    outputs: list[bytes]  # one per test vector, in order (the tg_out lines)
    exit_code: int
    instructions_per_inference: list[int]  # per vector: start marker to stop marker
    instructions_per_step: list[list[int]]  # per vector, per schedule step (sums to above)
    console: str  # everything the firmware and QEMU printed

    @property
    def instructions_total(self) -> int | None:
        """Instructions of all inferences together; None when nothing was counted."""
        return sum(self.instructions_per_inference) if self.instructions_per_inference \
            else None


def board_dir(board: Board | None = None) -> Path:
    return firmware_dir() / "boards" / (board.folder if board is not None else "qemu")


def board_of(target: str) -> Board:
    if target not in BOARDS:
        raise TargetError(f"'{target}' is not a QEMU target",
                          f"choose one of: {', '.join(BOARDS)}")
    return BOARDS[target]


def _bytes(text: str) -> int:
    m = re.fullmatch(r"(0x[0-9a-fA-F]+|\d+)([KM]?)", text)
    if m is None:
        raise ValueError(f"not a linker-script size: {text!r}")
    return int(m.group(1), 0) * {"": 1, "K": 1024, "M": 1024 * 1024}[m.group(2)]


def memory(board: Board) -> dict[str, int]:
    """FLASH, RAM and STACK bytes, read from the board's linker script (one source)."""
    text = (board_dir(board) / board.linker_script).read_text()
    sizes = {m.group(1): _bytes(m.group(2)) for m in re.finditer(
        r"^\s*(FLASH|RAM)\s*\(\w+\)\s*:\s*ORIGIN\s*=\s*\w+\s*,\s*LENGTH\s*=\s*(\w+)",
        text, re.M)}
    stack = re.search(r"^TG_STACK_BYTES\s*=\s*(\w+)\s*;", text, re.M)
    if set(sizes) != {"FLASH", "RAM"} or stack is None:
        raise ValueError(f"{board.linker_script} lacks FLASH, RAM or TG_STACK_BYTES")
    sizes["STACK"] = _bytes(stack.group(1))
    return sizes


def check_fit(board: Board, ctx: TargetContext) -> dict[str, int]:
    """Raise TargetError, with the numbers, if the build cannot fit the board."""
    mem = memory(board)
    flash = ctx.report["flash"]
    vectors = sum(len(inp) + 1 for inp, _ in ctx.vectors)
    flash_need = flash["total_bytes"] + vectors + CODE_ESTIMATE
    arena = int(ctx.report["arena_bytes"])
    out_bytes = int(np.prod(ctx.report["output"]["shape"]))
    ram_need = arena + mem["STACK"] + 2 * out_bytes + RAM_EXTRA
    if flash_need > mem["FLASH"] or ram_need > mem["RAM"]:
        raise TargetError(
            f"model '{ctx.model_name}' does not fit {board.target} ({board.machine}, "
            f"{board.cpu}): flash needs {flash_need:,} B of {mem['FLASH']:,} B available "
            f"(weights {flash['weights_bytes']:,}, quantization data "
            f"{flash.get('quant_bytes', 0):,}, schedule {flash['schedule_bytes']:,}, "
            f"{len(ctx.vectors)} test vectors {vectors:,}, code estimate {CODE_ESTIMATE:,}); "
            f"RAM needs {ram_need:,} B of {mem['RAM']:,} B available (arena {arena:,}, "
            f"stack {mem['STACK']:,}, buffers {2 * out_bytes + RAM_EXTRA:,})",
            "choose a smaller model or fewer --vectors, or build for --target host")
    return {"flash_needed": flash_need, "flash_available": mem["FLASH"],
            "ram_needed": ram_need, "ram_available": mem["RAM"]}


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise TargetError(f"{name} not found",
                          f"install it: apt-get install {package}")
    return path


MAKEFILE = """\
# Rebuild and run the QEMU firmware by hand (tinygen build did both already):
#   make -C qemu           firmware.elf
#   make -C qemu run       run it: one `tg_out K <hex>` line per test vector, exit status 0
#   make -C qemu count     run it with the instruction-count plugin: icount.txt
CC = {cc}
CFLAGS = {cflags}
LDFLAGS = {ldflags}
SRC = {board_sources} $(sort $(wildcard ../model/*.c)) \\
      $(sort $(wildcard ../lib/tinygen/*.c)) {kernels} \\
      $(sort $(wildcard ../lib/tinygen/audio/*.c))
{library}
firmware.elf: $(SRC){library_dep}
\t$(CC) $(CFLAGS) $(SRC){library_objects} $(LDFLAGS) -o $@

"""
# Running and counting: every backend's Makefile ends with these.
MAKEFILE_RUN = """\
NM = {nm}
HOSTCC ?= cc
QEMU ?= {qemu}
RUN = $(QEMU) {qemu_args} -kernel firmware.elf
addr = 0x$$($(NM) firmware.elf | awk '$$3 == "$(1)" {{ print $$1 }}')

run: firmware.elf
\t$(RUN)

{plugin}: {plugin_source}
\t$(HOSTCC) -std=c99 -O2 -shared -fPIC $< -o $@

START = start=$(call addr,tg_mark_start)
STEP = step=$(call addr,tg_mark_step)
STOP = stop=$(call addr,tg_mark_stop)

count: firmware.elf {plugin}
\t$(RUN) -plugin ./{plugin},$(START),$(STEP),$(STOP),out=icount.txt

.PHONY: run count
"""

# The esp-nn backend's part of the Makefile: ESP-NN's ANSI C sources from $(ESP_NN).
MAKEFILE_ESP_NN = """\
ESP_NN ?= $({env})
override ESP_NN := $(abspath $(ESP_NN))
ESP_NN_SRC = $(sort $(wildcard $(ESP_NN)/src/*/*_ansi.c))
ESP_NN_OBJ = $(addprefix {objects}/,$(sort $(notdir $(ESP_NN_SRC:.c=.o))))
ESP_NN_CFLAGS = {esp_nn_cflags}
"""
MAKEFILE_ESP_NN_RULE = """
{objects}/.built: $(ESP_NN_SRC)
\t@test -n "$(ESP_NN_SRC)" || {{ echo "set ESP_NN or {env} to an esp-nn checkout"; exit 1; }}
\trm -rf {objects} && mkdir {objects}
\tcd {objects} && $(CC) $(ESP_NN_CFLAGS) -c $(ESP_NN_SRC) && touch .built
"""


def _cflags(board: Board, backend: str, scratch: int = 0) -> list[str]:
    flags = [*CFLAGS, *board.arch.cflags, *board.cflags, "-ffunction-sections",
             "-fdata-sections", "-include", "tg_qemu_markers.h", "-I.", "-I../model",
             "-I../lib/tinygen", "-I../lib/tinygen/audio"]
    if backend == "esp-nn":
        flags += [f"-DTG_NN_SCRATCH_BYTES={scratch}", "-I$(ESP_NN)/include"]
    return flags


def _esp_nn_cflags(board: Board) -> list[str]:
    return [*ESP_NN_CFLAGS, *board.arch.cflags, "-ffunction-sections", "-fdata-sections",
            "-I$(ESP_NN)/include", "-I$(ESP_NN)/src/common"]


def _ldflags(board: Board) -> list[str]:
    return [*board.arch.ldflags, "-L.", "-T", board.linker_script]


def esp_nn_root() -> Path:
    """The ESP-NN checkout $TINYGEN_ESP_NN points at (its include/ and src/)."""
    value = os.environ.get(ESP_NN_ENV, "")
    if not value:
        raise TargetError(f"--backend esp-nn on qemu-xtensa compiles ESP-NN's ANSI C "
                          f"kernels, and ${ESP_NN_ENV} is not set",
                          f"set {ESP_NN_ENV} to an esp-nn v1.1.2 checkout, or build "
                          "with --backend portable")
    root = Path(value)
    if not (root / "include" / "esp_nn.h").is_file():
        raise TargetError(f"${ESP_NN_ENV}={value} is not an esp-nn checkout (no "
                          "include/esp_nn.h)", "point it at an esp-nn v1.1.2 checkout")
    return root


def _backend(board: Board, ctx: TargetContext) -> dict[str, Any]:
    """The kernels the firmware builds: which adapters replace portable kernels, those
    kept portable (with why) and the scratch the adapters share."""
    if ctx.backend not in board.backends:
        raise TargetError(f"backend '{ctx.backend}' is not available for target "
                          f"'{board.target}'", f"choose one of: {', '.join(board.backends)}")
    if ctx.backend == "portable":
        return {"adapters": [], "portable_kept": {}, "scratch_bytes": 0}
    if ctx.backend == "tflm":
        from tinygen.targets import tflm

        tflm.root()
        return {"adapters": [], "portable_kept": {}, "scratch_bytes": 0,
                "library": "TFLM reference kernels"}
    from tinygen.targets import boards, platformio

    esp_nn_root()
    plan = ctx.options.get("plan")
    steps = list(plan.steps) if plan is not None else []
    files, dropped = platformio.adapters(ctx.backend, steps)
    # The ESP32-S3 project's scratch (the ANSI kernels ask for none): the same buffer.
    scratch = platformio.scratch_bytes(ctx.backend, boards.resolve("esp32s3", None), steps,
                                       files)
    return {"adapters": files, "portable_kept": dropped, "scratch_bytes": scratch,
            "library": "ESP-NN ANSI C"}


def write(out: Path, ctx: TargetContext) -> None:
    from tinygen.compiler.codegen import int8_literal, render

    board = board_of(ctx.target)
    if not ctx.vectors:
        raise TargetError(f"the {board.target} firmware runs the build's test vectors, "
                          "and there are none", "pass --vectors 1 or more")
    kernels = _backend(board, ctx)
    if ctx.backend == "tflm":  # OUT/tflm/ (the .tflite, the model API on TFLM)
        from tinygen.targets import tflm

        ctx.report["tflm"] = tflm.write(out, ctx)
        tflm.check_fit(board, ctx, memory(board))
    else:
        check_fit(board, ctx)
    ctx.report["qemu"] = {"machine": board.machine, "cpu": board.cpu, **kernels}
    qemu = out / "qemu"
    qemu.mkdir(parents=True, exist_ok=True)
    bodies = [int8_literal(np.frombuffer(inp, dtype=np.int8)) for inp, _ in ctx.vectors]
    step_bytes = int(np.prod(ctx.report["input"]["shape"]))
    chunks = [len(inp) // step_bytes for inp, _ in ctx.vectors]  # a stream: many steps
    (qemu / "main.c").write_text(render(
        "qemu/main.c.j2", version=ctx.version, model_name=ctx.model_name,
        machine=board.machine, cpu=board.cpu, vectors=bodies, chunks=chunks,
        nn=ctx.backend not in ("portable", "tflm"), tflm=ctx.backend == "tflm"))
    boards_dir = firmware_dir() / "boards"
    tflm_files = (TFLM_SYSCALLS,) if ctx.backend == "tflm" else ()
    for name in (*board.arch.files, *SHARED_FILES, f"{board.folder}/{board.linker_script}",
                 *tflm_files):
        shutil.copyfile(boards_dir / name, qemu / Path(name).name)
    shutil.copyfile(firmware_dir() / "tools" / PLUGIN_SOURCE, qemu / PLUGIN_SOURCE)
    adapters = kernels["adapters"]
    portable = "$(sort $(wildcard ../lib/tinygen/portable/*.c))"
    library = library_dep = library_objects = ""
    if ctx.backend == "esp-nn":
        portable = (f"$(filter-out {' '.join(f'../lib/tinygen/portable/{f}' for f in adapters)}"
                    f", {portable}) \\\n      "
                    + " ".join(f"../lib/tinygen/esp_nn/{f}" for f in adapters))
        library = MAKEFILE_ESP_NN.format(env=ESP_NN_ENV, objects=ESP_NN_OBJECTS,
                                         esp_nn_cflags=" ".join(_esp_nn_cflags(board)))
        library_dep = f" {ESP_NN_OBJECTS}/.built"
        library_objects = " $(ESP_NN_OBJ)"
    makefile = MAKEFILE.format(
        cc=board.arch.cc, cflags=" ".join(_cflags(board, ctx.backend, kernels["scratch_bytes"])),
        ldflags=" ".join(_ldflags(board)), kernels=portable, library=library,
        library_dep=library_dep, library_objects=library_objects,
        board_sources=" ".join(["main.c", *board.arch.sources]))
    if ctx.backend == "esp-nn":
        makefile += MAKEFILE_ESP_NN_RULE.format(objects=ESP_NN_OBJECTS, env=ESP_NN_ENV)
    if ctx.backend == "tflm":
        from tinygen.targets import tflm

        makefile = tflm.makefile(board.arch.cc, board.arch.cc.replace("gcc", "g++"),
                                 board.arch.nm.replace("-nm", "-ar"),
                                 _cflags(board, "portable"), _core(board), _ldflags(board),
                                 _tflm_sources(board), "firmware.elf", cxx_extra=TFLM_CXX)
    elif hears(out, board):
        (qemu / "transcribe.c").write_text(render(
            "qemu/transcribe.c.j2", version=ctx.version, model_name=ctx.model_name,
            machine=board.machine, cpu=board.cpu))
        makefile += MAKEFILE_TRANSCRIBE.format(library_dep=library_dep,
                                               library_objects=library_objects)
        if listen.app_option(ctx.options) == "listen":
            p = listen.plan(ctx.report)
            listen.render_app(qemu, p, ctx.version, ctx.model_name)
            (qemu / "listen.c").write_text(render(
                "listen/driver.c.j2", version=ctx.version, model_name=ctx.model_name,
                semihost=True, machine=board.machine))
            ctx.report["listen"] = listen.ram_flash(ctx.report, p)
            makefile += MAKEFILE_LISTEN.format(library_dep=library_dep,
                                               library_objects=library_objects)
    if listen.app_option(ctx.options) == "listen" and not (qemu / "listen.c").is_file():
        listen.plan(ctx.report)  # refuses a model without the audio front end
    makefile += MAKEFILE_RUN.format(nm=board.arch.nm, qemu=board.arch.qemu,
                                    qemu_args=" ".join(board.qemu_args()), plugin=PLUGIN,
                                    plugin_source=PLUGIN_SOURCE)
    (qemu / "Makefile").write_text(makefile)


MAKEFILE_TRANSCRIBE = """
# The transcriber (tinygen verify OUT --audio FILE): PCM from tg_audio.pcm, text out.
transcribe.elf: transcribe.c $(filter-out main.c, $(SRC)){library_dep}
\t$(CC) $(CFLAGS) transcribe.c $(filter-out main.c, $(SRC)){library_objects} $(LDFLAGS) -o $@
"""


MAKEFILE_LISTEN = """
# The listen loop (--app listen): PCM from tg_listen.pcm in mic-sized blocks, words out.
LISTEN_SRC = listen.c tg_listen_app.c $(filter-out main.c, $(SRC))
listen.elf: $(LISTEN_SRC){library_dep}
\t$(CC) $(CFLAGS) $(LISTEN_SRC){library_objects} $(LDFLAGS) -o $@
"""


def hears(out: Path, board: Board) -> bool:
    """Whether the build gets the transcriber: a speech model on an Arm board (the
    Xtensa board's semihosting has no file reads)."""
    return board.arch is ARM and (out / "model" / "tg_audio_tables.h").is_file()


def sources(out: Path, board: Board | None = None, adapters: tuple[str, ...] = (),
            folder: str = "esp_nn") -> list[str]:
    """Firmware sources relative to OUT/qemu, in a fixed order (the Makefile's): portable
    kernels minus those ``adapters`` replace, then the adapters from lib/tinygen/<folder>."""
    lib = out / "lib" / "tinygen"
    board = board or BOARDS["qemu-m4"]
    return ["main.c", *board.arch.sources,
            *[f"../model/{p.name}" for p in sorted((out / "model").glob("*.c"))],
            *[f"../lib/tinygen/{p.name}" for p in sorted(lib.glob("*.c"))],
            *[f"../lib/tinygen/portable/{p.name}" for p in sorted((lib / "portable").glob("*.c"))
              if p.name not in adapters],
            *[f"../lib/tinygen/{folder}/{name}" for name in adapters],
            *[f"../lib/tinygen/audio/{p.name}" for p in sorted((lib / "audio").glob("*.c"))]]


def _check(cmd: list[str], cwd: Path, what: str,
           fix: str = "this is a tinygen bug; please report it with the model") -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError:
        raise TargetError(f"{cmd[0]} not found", "check your PATH") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()] or ["no output"]
        errors = [ln for ln in lines if "error" in ln] or lines
        raise TargetError(f"{what} failed: {errors[0][:300]}", fix)


def compile_plugin(source: Path, target: Path, compiler: str | None = None) -> Path:
    """Compile the instruction-count plugin (host code) ``source`` to ``target``."""
    cc = find_compiler(compiler)
    _check([*cc.split(), *CFLAGS, "-shared", "-fPIC", source.name, "-o",
            str(target.resolve())], source.parent,
           "compiling the QEMU instruction-count plugin")
    return target


def _esp_nn_objects(board: Board, root: Path, folder: Path) -> list[str]:
    """Compile ESP-NN's ANSI C sources into ``folder``; the objects, in a fixed order."""
    srcs = sorted((root / "src").glob("*/*_ansi.c"))
    flags = [f.replace("$(ESP_NN)", str(root)) for f in _esp_nn_cflags(board)]
    _check([board.arch.cc, *flags, "-c", *[str(p) for p in srcs]], folder,
           f"{board.arch.cc} for ESP-NN's ANSI C kernels")
    return sorted(str(folder / f"{p.stem}.o") for p in srcs)  # the Makefile's order


# The markers for OUT/tflm/tg_tflm_model.cc (a step per TFLM operator).
TFLM_CXX = ("-include", "tg_qemu_markers.h", "-I.")


def _tflm_sources(board: Board) -> list[str]:
    """The C sources of a tflm firmware in OUT/qemu (OUT/tflm/'s are added to them)."""
    return ["main.c", *board.arch.sources, Path(TFLM_SYSCALLS).name]


def _core(board: Board) -> tuple[str, ...]:
    """The core flags TFLM's C++ shares with the board's C build."""
    return (*board.arch.cflags, *board.cflags, "-ffunction-sections", "-fdata-sections")


def build(out: Path, ctx: TargetContext) -> None:
    board = board_of(ctx.target)
    cc = _tool(board.arch.cc, board.arch.apt_toolchain)
    info = ctx.report["qemu"]
    if ctx.backend == "tflm":
        from tinygen.targets import tflm

        tflm.compile_and_link(cc, _tool(cc.replace("gcc", "g++"), board.arch.apt_toolchain),
                              _tool(board.arch.nm.replace("-nm", "-ar"),
                                    board.arch.apt_toolchain),
                              out / "qemu", _tflm_sources(board),
                              _cflags(board, "portable"), _core(board), _ldflags(board),
                              "firmware.elf", cxx_extra=TFLM_CXX)
        compile_plugin(out / "qemu" / PLUGIN_SOURCE, out / "qemu" / PLUGIN,
                       ctx.options.get("compiler"))
        return
    cflags = _cflags(board, ctx.backend, info["scratch_bytes"])
    with tempfile.TemporaryDirectory(prefix="tinygen-lib-") as tmp:
        objects: list[str] = []
        if ctx.backend == "esp-nn":
            root = esp_nn_root()
            cflags = [f.replace("$(ESP_NN)", str(root)) for f in cflags]
            objects = _esp_nn_objects(board, root, Path(tmp))
        # Relative paths from OUT/qemu: no temp-folder name ends up in the ELF.
        srcs = sources(out, board, tuple(info["adapters"]))
        _check([cc, *cflags, *srcs, *objects, *_ldflags(board), "-o", "firmware.elf"],
               out / "qemu", f"{board.arch.cc} for {board.target}")
        if hears(out, board):
            _check([cc, *cflags, "transcribe.c", *srcs[1:], *objects, *_ldflags(board),
                    "-o", "transcribe.elf"], out / "qemu",
                   f"{board.arch.cc} for the {board.target} transcriber")
        if (out / "qemu" / "listen.c").is_file():
            _check([cc, *cflags, "listen.c", "tg_listen_app.c", *srcs[1:], *objects,
                    *_ldflags(board), "-o", "listen.elf"], out / "qemu",
                   f"{board.arch.cc} for the {board.target} listen loop")
    compile_plugin(out / "qemu" / PLUGIN_SOURCE, out / "qemu" / PLUGIN,
                   ctx.options.get("compiler"))


def marker_addresses(elf: Path, board: Board | None = None) -> dict[str, int]:
    arch = (board or BOARDS["qemu-m4"]).arch
    nm = _tool(arch.nm, arch.apt_toolchain)
    proc = subprocess.run([nm, str(elf)], capture_output=True, text=True, timeout=60)
    symbols = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            symbols[parts[2]] = int(parts[0], 16) & arch.address_mask
    missing = [s for s in MARKERS.values() if s not in symbols]
    if proc.returncode != 0 or missing:
        raise TargetError(f"{elf} has no instruction-count markers ({', '.join(missing)})",
                          "rebuild it with `tinygen build --target qemu-...`")
    return {key: symbols[sym] for key, sym in MARKERS.items()}


def _parse_counts(text: str) -> tuple[list[int], list[list[int]]]:
    totals: list[int] = []
    steps: list[list[int]] = []
    for line in text.splitlines():
        m = re.fullmatch(r"vector (\d+) total (\d+) steps((?: \d+)*)", line.strip())
        if m is None or int(m.group(1)) != len(totals):
            raise TargetError(f"unexpected instruction-count line: {line[:80]!r}")
        totals.append(int(m.group(2)))
        steps.append([int(v) for v in m.group(3).split()])
    return totals, steps


def _parse_outputs(console: str) -> list[bytes]:
    outputs: list[bytes] = []
    for m in re.finditer(r"^tg_out (\d+) ([0-9a-f]*)\s*$", console, re.M):
        k = int(m.group(1))
        if k == len(outputs):
            outputs.append(b"")
        elif k != len(outputs) - 1:
            raise TargetError(f"firmware printed vector {k} out of order")
        outputs[-1] += bytes.fromhex(m.group(2))  # a stream prints one line per step
    return outputs


def run(out: Path, report: dict[str, Any] | None = None, count: bool = True,
        timeout: float = 600) -> QemuRun:
    """Run ``OUT/qemu/firmware.elf`` under its board's QEMU; with ``count``, through the
    instruction-count plugin (``OUT/qemu/qemu_icount_plugin.so``, or compiled afresh)."""
    import json

    out = Path(out)
    if report is None:
        report = json.loads((out / "report.json").read_text())
    board = board_of(str(report["target"]))
    elf = (out / ELF).resolve()
    if not elf.is_file():
        raise TargetError(f"{elf} is missing", "rebuild OUT with `tinygen build`")
    console, code, totals, steps = run_elf(out, elf, board, count=count, timeout=timeout)
    return QemuRun(_parse_outputs(console), code, totals, steps, console)


def run_elf(out: Path, elf: Path, board: Board, count: bool = True, timeout: float = 600,
            cwd: Path | None = None) -> tuple[str, int, list[int], list[list[int]]]:
    """Run ``elf`` under ``board``'s QEMU (in ``cwd``, where its semihosting opens files):
    the console, the exit status, and with ``count`` the instructions between each
    start/stop marker pair and of each step."""
    qemu = _tool(board.arch.qemu, board.arch.apt_qemu)
    with tempfile.TemporaryDirectory(prefix="tinygen-qemu-") as tmp:
        cmd = [qemu, *board.qemu_args(), "-kernel", str(elf)]
        counts = Path(tmp) / "icount.txt"
        if count:
            plugin = out / "qemu" / PLUGIN
            if not plugin.is_file():
                plugin = compile_plugin(firmware_dir() / "tools" / PLUGIN_SOURCE,
                                        Path(tmp) / PLUGIN)
            args = ",".join(f"{k}={v:#x}" for k, v in marker_addresses(elf, board).items())
            esc = str(plugin.resolve()).replace(",", ",,"), str(counts).replace(",", ",,")
            cmd += ["-plugin", f"{esc[0]},{args},out={esc[1]}"]
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=timeout, cwd=cwd)
        except subprocess.TimeoutExpired:
            raise TargetError(f"{elf} did not finish under QEMU in {timeout:.0f} s",
                              "rebuild OUT; if it persists, report it") from None
        console = (proc.stdout + proc.stderr).decode(errors="replace")
        if count and not counts.is_file():
            first = (console.strip().splitlines() or ["no output"])[0]
            raise TargetError(f"QEMU did not run the instruction-count plugin: {first[:200]}")
        totals, steps = _parse_counts(counts.read_text()) if count else ([], [])
    return console, proc.returncode, totals, steps


def describe() -> dict[str, Any]:
    return {"runs_here": all(shutil.which(a.qemu) for a in (ARM, XTENSA))}
