"""QEMU Cortex-M targets: ``OUT/qemu/firmware.elf`` for three boards QEMU emulates.

    qemu-m4   mps2-an386   Cortex-M4   (4 MiB code SSRAM at 0x0, 4 MiB SSRAM at 0x20000000)
    qemu-m7   mps2-an500   Cortex-M7   (the same two 4 MiB SSRAMs)
    qemu-m55  mps3-an547   Cortex-M55  (512 KiB ITCM at 0x0, 512 KiB DTCM at 0x20000000)

The firmware embeds the build's test vectors, runs the model on each and prints
``tg_out K <hex>`` over Arm semihosting, then exits 0. The board support (startup, linker
scripts, semihosting, instruction-count markers) is firmware/boards/qemu/. :func:`run`
runs it under qemu-system-arm with a small TCG plugin (firmware/tools/
qemu_icount_plugin.c, compiled by the host C compiler) that counts the instructions of
each inference and of each schedule step, exactly and repeatably.

A model that does not fit the board's memory is refused by :func:`write`, before the
build writes anything, with the bytes needed and available.
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
from tinygen.targets import CFLAGS, TargetContext, TargetError, find_compiler

ELF = "qemu/firmware.elf"
PLUGIN = "qemu_icount_plugin.so"
BOARD_SOURCES = ("tg_qemu_startup.c", "tg_semihost.c", "tg_qemu_markers.c")
BOARD_HEADERS = ("tg_qemu_markers.h", "tg_semihost.h")
SECTIONS_LD = "tg_qemu_sections.ld"
PLUGIN_SOURCE = "qemu_icount_plugin.c"
MARKERS = {"start": "tg_mark_start", "step": "tg_mark_step", "stop": "tg_mark_stop"}
ARM_CC, ARM_NM, QEMU = "arm-none-eabi-gcc", "arm-none-eabi-nm", "qemu-system-arm"
APT_TOOLCHAIN = "gcc-arm-none-eabi libnewlib-arm-none-eabi"
LDFLAGS = ("-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections")
# Flash the runtime, kernels, main, startup and the libc/libgcc pieces take at -O2
# (about 9 KiB measured on each board), with a wide margin; RAM beyond the arena and the
# stack: the output line buffer (two bytes per output byte) plus this.
CODE_ESTIMATE = 24 * 1024
RAM_EXTRA = 1024


@dataclass(frozen=True)
class Board:
    target: str
    machine: str  # qemu-system-arm -M
    cpu: str
    cflags: tuple[str, ...]  # arm-none-eabi-gcc: core, FPU, float ABI

    @property
    def linker_script(self) -> str:
        return f"{self.machine}.ld"


BOARDS: dict[str, Board] = {
    "qemu-m4": Board("qemu-m4", "mps2-an386", "Cortex-M4",
                     ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")),
    "qemu-m7": Board("qemu-m7", "mps2-an500", "Cortex-M7",
                     ("-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard")),
    "qemu-m55": Board("qemu-m55", "mps3-an547", "Cortex-M55",
                      ("-mcpu=cortex-m55", "-mfpu=auto", "-mfloat-abi=hard")),
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


def board_dir() -> Path:
    return firmware_dir() / "boards" / "qemu"


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
    text = (board_dir() / board.linker_script).read_text()
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
CC = arm-none-eabi-gcc
NM = arm-none-eabi-nm
HOSTCC ?= cc
QEMU ?= qemu-system-arm
CFLAGS = {cflags}
LDFLAGS = {ldflags}
SRC = {board_sources} $(sort $(wildcard ../model/*.c)) \\
      $(sort $(wildcard ../lib/tinygen/*.c)) $(sort $(wildcard ../lib/tinygen/portable/*.c))
RUN = $(QEMU) -M {machine} -nographic -semihosting-config enable=on,target=native \\
      -kernel firmware.elf
addr = 0x$$($(NM) firmware.elf | awk '$$3 == "$(1)" {{ print $$1 }}')

firmware.elf: $(SRC)
\t$(CC) $(CFLAGS) $(SRC) $(LDFLAGS) -o $@

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


def _cflags(board: Board) -> list[str]:
    return [*CFLAGS, "-mthumb", *board.cflags, "-ffunction-sections", "-fdata-sections",
            "-include", "tg_qemu_markers.h", "-I.", "-I../model", "-I../lib/tinygen"]


def _ldflags(board: Board) -> list[str]:
    return [*LDFLAGS, "-L.", "-T", board.linker_script]


def write(out: Path, ctx: TargetContext) -> None:
    from tinygen.compiler.codegen import int8_literal, render

    board = board_of(ctx.target)
    if not ctx.vectors:
        raise TargetError(f"the {board.target} firmware runs the build's test vectors, "
                          "and there are none", "pass --vectors 1 or more")
    check_fit(board, ctx)
    qemu = out / "qemu"
    qemu.mkdir(parents=True, exist_ok=True)
    bodies = [int8_literal(np.frombuffer(inp, dtype=np.int8)) for inp, _ in ctx.vectors]
    step_bytes = int(np.prod(ctx.report["input"]["shape"]))
    chunks = [len(inp) // step_bytes for inp, _ in ctx.vectors]  # a stream: many steps
    (qemu / "main.c").write_text(render(
        "qemu/main.c.j2", version=ctx.version, model_name=ctx.model_name,
        machine=board.machine, cpu=board.cpu, vectors=bodies, chunks=chunks))
    src = board_dir()
    for name in (*BOARD_SOURCES, *BOARD_HEADERS, board.linker_script, SECTIONS_LD):
        shutil.copyfile(src / name, qemu / name)
    shutil.copyfile(firmware_dir() / "tools" / PLUGIN_SOURCE, qemu / PLUGIN_SOURCE)
    (qemu / "Makefile").write_text(MAKEFILE.format(
        cflags=" ".join(_cflags(board)), ldflags=" ".join(_ldflags(board)),
        board_sources=" ".join(["main.c", *BOARD_SOURCES]), machine=board.machine,
        plugin=PLUGIN, plugin_source=PLUGIN_SOURCE))


def sources(out: Path) -> list[str]:
    """Firmware sources relative to OUT/qemu, in a fixed order (the Makefile's)."""
    lib = out / "lib" / "tinygen"
    return ["main.c", *BOARD_SOURCES,
            *[f"../model/{p.name}" for p in sorted((out / "model").glob("*.c"))],
            *[f"../lib/tinygen/{p.name}" for p in sorted(lib.glob("*.c"))],
            *[f"../lib/tinygen/portable/{p.name}" for p in sorted((lib / "portable").glob("*.c"))]]


def _check(cmd: list[str], cwd: Path, what: str) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise TargetError(f"{cmd[0]} not found", "check your PATH") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()] or ["no output"]
        errors = [ln for ln in lines if "error" in ln] or lines
        raise TargetError(f"{what} failed: {errors[0][:300]}",
                          "this is a tinygen bug; please report it with the model")


def compile_plugin(source: Path, target: Path, compiler: str | None = None) -> Path:
    """Compile the instruction-count plugin (host code) ``source`` to ``target``."""
    cc = find_compiler(compiler)
    _check([*cc.split(), *CFLAGS, "-shared", "-fPIC", source.name, "-o",
            str(target.resolve())], source.parent,
           "compiling the QEMU instruction-count plugin")
    return target


def build(out: Path, ctx: TargetContext) -> None:
    board = board_of(ctx.target)
    cc = _tool(ARM_CC, APT_TOOLCHAIN)
    # Relative paths from OUT/qemu: no temp-folder name ends up in the ELF.
    _check([cc, *_cflags(board), *sources(out), *_ldflags(board), "-o", "firmware.elf"],
           out / "qemu", f"arm-none-eabi-gcc for {board.target}")
    compile_plugin(out / "qemu" / PLUGIN_SOURCE, out / "qemu" / PLUGIN,
                   ctx.options.get("compiler"))


def marker_addresses(elf: Path) -> dict[str, int]:
    nm = _tool(ARM_NM, APT_TOOLCHAIN)
    proc = subprocess.run([nm, str(elf)], capture_output=True, text=True, timeout=60)
    symbols = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            symbols[parts[2]] = int(parts[0], 16) & ~1  # drop the Thumb bit
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
    """Run ``OUT/qemu/firmware.elf`` under qemu-system-arm; with ``count``, through the
    instruction-count plugin (``OUT/qemu/qemu_icount_plugin.so``, or compiled afresh)."""
    import json

    out = Path(out)
    if report is None:
        report = json.loads((out / "report.json").read_text())
    board = board_of(str(report["target"]))
    qemu = _tool(QEMU, QEMU)
    elf = (out / ELF).resolve()
    if not elf.is_file():
        raise TargetError(f"{elf} is missing", "rebuild OUT with `tinygen build`")
    with tempfile.TemporaryDirectory(prefix="tinygen-qemu-") as tmp:
        cmd = [qemu, "-M", board.machine, "-nographic", "-semihosting-config",
               "enable=on,target=native", "-kernel", str(elf)]
        counts = Path(tmp) / "icount.txt"
        if count:
            plugin = out / "qemu" / PLUGIN
            if not plugin.is_file():
                plugin = compile_plugin(firmware_dir() / "tools" / PLUGIN_SOURCE,
                                        Path(tmp) / PLUGIN)
            args = ",".join(f"{k}={v:#x}" for k, v in marker_addresses(elf).items())
            esc = str(plugin.resolve()).replace(",", ",,"), str(counts).replace(",", ",,")
            cmd += ["-plugin", f"{esc[0]},{args},out={esc[1]}"]
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TargetError(f"{elf} did not finish under QEMU in {timeout:.0f} s",
                              "rebuild OUT; if it persists, report it") from None
        console = (proc.stdout + proc.stderr).decode(errors="replace")
        if count and not counts.is_file():
            first = (console.strip().splitlines() or ["no output"])[0]
            raise TargetError(f"QEMU did not run the instruction-count plugin: {first[:200]}")
        totals, steps = _parse_counts(counts.read_text()) if count else ([], [])
    return QemuRun(_parse_outputs(console), proc.returncode, totals, steps, console)


def describe() -> dict[str, Any]:
    return {"runs_here": shutil.which(QEMU) is not None}
