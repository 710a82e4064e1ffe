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

Backends: portable everywhere; ``tflm`` on the Arm boards (tinygen.targets.tflm);
``cmsis-nn`` on the Arm boards, CMSIS-NN compiled from the checkout $TINYGEN_CMSIS_NN
points at with the board's -mcpu (DSP path on the M4 and M7, Helium on the M55); on
qemu-xtensa ``esp-nn``, ESP-NN's ANSI C kernels from $TINYGEN_ESP_NN (its ESP32-S3
assembly needs the S3 core, which no Debian toolchain describes). Either library is
compiled once per core into a cache (tinygen.targets.nnlib) and linked after the adapters
of firmware/tinygen/cmsis_nn/ or esp_nn/, which replace the portable kernels of the same
name.

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

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinygen.resources import firmware_dir
from tinygen.targets import CFLAGS, TargetContext, TargetError, find_compiler, listen, nnlib

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
ESP_NN_ENV = nnlib.LIBRARIES["esp-nn"].env
CMSIS_NN_ENV = nnlib.LIBRARIES["cmsis-nn"].env
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

    @property
    def ar(self) -> str:
        return self.nm.replace("-nm", "-ar")


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
    # The PlatformIO target of the same core: its CPU family (dsp, mve) sets the ISA
    # check and the library scratch of a cmsis-nn build; esp32s3's, an esp-nn build's.
    project_target: str = "esp32s3"

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


ARM_BACKENDS = ("portable", "cmsis-nn", "tflm")  # tflm: tinygen.targets.tflm
BOARDS: dict[str, Board] = {
    "qemu-m4": Board("qemu-m4", "mps2-an386", "Cortex-M4",
                     ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
                     backends=ARM_BACKENDS, project_target="cortex-m4"),
    "qemu-m7": Board("qemu-m7", "mps2-an500", "Cortex-M7",
                     ("-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard"),
                     backends=ARM_BACKENDS, project_target="cortex-m7"),
    "qemu-m55": Board("qemu-m55", "mps3-an547", "Cortex-M55",
                      ("-mcpu=cortex-m55", "-mfpu=auto", "-mfloat-abi=hard"),
                      backends=ARM_BACKENDS, project_target="cortex-m55"),
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

def _cflags(board: Board, backend: str, kernels: dict[str, Any] | None = None,
            tree: str = "") -> list[str]:
    """The firmware's C flags; with a library backend's ``kernels`` (see :func:`_backend`)
    also its scratch size, ISA check and headers (under ``tree``: the checkout, or the
    Makefile's variable)."""
    flags = [*CFLAGS, *board.arch.cflags, *board.cflags, "-ffunction-sections",
             "-fdata-sections", "-include", "tg_qemu_markers.h", "-I.", "-I../model",
             "-I../lib/tinygen", "-I../lib/tinygen/audio"]
    lib = nnlib.of(backend)
    if lib is not None and kernels is not None:
        flags += [*kernels["defines"], *lib.adapter_flags(tree or f"$({lib.make_var})")]
    return flags


def _core(board: Board) -> tuple[str, ...]:
    """The core flags a library (TFLM, CMSIS-NN, ESP-NN) shares with the board's C build."""
    return (*board.arch.cflags, *board.cflags, "-ffunction-sections", "-fdata-sections")


def _ldflags(board: Board) -> list[str]:
    return [*board.arch.ldflags, "-L.", "-T", board.linker_script]


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
    return library_backend(ctx, board.target, board.project_target)


def library_backend(ctx: TargetContext, target: str, project_target: str) -> dict[str, Any]:
    """A cmsis-nn or esp-nn build's kernels (its library's checkout checked first): the
    adapters, the portable kernels kept (with why), the scratch the adapters share and
    the defines the adapters are compiled with. The scratch and the ISA check are those
    of ``project_target``'s PlatformIO project (the ESP32-S3's for esp-nn, whose ANSI
    kernels ask for none of it)."""
    from tinygen.targets import boards, platformio

    lib = nnlib.LIBRARIES[ctx.backend]
    nnlib.root(ctx.backend, target)
    plan = ctx.options.get("plan")
    steps = list(plan.steps) if plan is not None else []
    files, dropped = platformio.adapters(ctx.backend, steps)
    project = boards.resolve(project_target, None)
    scratch = platformio.scratch_bytes(ctx.backend, project, steps, files)
    name = f"{lib.name} {lib.version}" + (" ANSI C" if ctx.backend == "esp-nn" else "")
    defines = platformio.library_flags(ctx.backend, project, scratch)
    return {"backend": ctx.backend, "adapters": files, "portable_kept": dropped,
            "scratch_bytes": scratch, "library": name, "defines": defines}


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
    lib = nnlib.of(ctx.backend)
    rule = ""
    if lib is not None:
        portable = nnlib.make_kernels(ctx.backend, adapters, portable)
        variables, rule = nnlib.makefile(ctx.backend, _core(board))
        library = f"AR = {board.arch.ar}\n{variables}"
        library_dep = library_objects = f" $({lib.make_var}_LIB)"
    makefile = MAKEFILE.format(
        cc=board.arch.cc, cflags=" ".join(_cflags(board, ctx.backend, kernels)),
        ldflags=" ".join(_ldflags(board)), kernels=portable, library=library,
        library_dep=library_dep, library_objects=library_objects,
        board_sources=" ".join(["main.c", *board.arch.sources])) + rule
    if ctx.backend == "tflm":
        from tinygen.targets import tflm

        makefile = tflm.makefile(board.arch.cc, board.arch.cc.replace("gcc", "g++"),
                                 board.arch.ar,
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


# The markers for OUT/tflm/tg_tflm_model.cc (a step per TFLM operator).
TFLM_CXX = ("-include", "tg_qemu_markers.h", "-I.")


def _tflm_sources(board: Board) -> list[str]:
    """The C sources of a tflm firmware in OUT/qemu (OUT/tflm/'s are added to them)."""
    return ["main.c", *board.arch.sources, Path(TFLM_SYSCALLS).name]


def build(out: Path, ctx: TargetContext) -> None:
    board = board_of(ctx.target)
    cc = _tool(board.arch.cc, board.arch.apt_toolchain)
    info = ctx.report["qemu"]
    if ctx.backend == "tflm":
        from tinygen.targets import tflm

        tflm.compile_and_link(cc, _tool(cc.replace("gcc", "g++"), board.arch.apt_toolchain),
                              _tool(board.arch.ar, board.arch.apt_toolchain),
                              out / "qemu", _tflm_sources(board),
                              _cflags(board, "portable"), _core(board), _ldflags(board),
                              "firmware.elf", cxx_extra=TFLM_CXX)
        compile_plugin(out / "qemu" / PLUGIN_SOURCE, out / "qemu" / PLUGIN,
                       ctx.options.get("compiler"))
        return
    objects: list[str] = []
    tree = ""
    folder = "esp_nn"
    if nnlib.of(ctx.backend) is not None:
        from tinygen.targets import platformio

        tree = str(nnlib.root(ctx.backend, board.target))
        folder = platformio.BACKEND_DIRS[ctx.backend]
        objects = [str(nnlib.library(ctx.backend, board.target, cc,
                                     _tool(board.arch.ar, board.arch.apt_toolchain),
                                     _core(board)))]
    cflags = _cflags(board, ctx.backend, info, tree)
    # Relative paths from OUT/qemu: no temp-folder name ends up in the ELF.
    srcs = sources(out, board, tuple(info["adapters"]), folder)
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
