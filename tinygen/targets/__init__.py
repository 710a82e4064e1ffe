"""Build targets: where the generated C goes and how it is compiled.

Every target gets the same ``OUT/model/`` (weight pool, schedule, header) and
``OUT/lib/tinygen/`` (the C runtime). A target module adds its own files around them:

    write(out: Path, ctx: TargetContext) -> None   # files into the (temp) OUT folder
    build(out: Path, ctx: TargetContext) -> None   # compile what can be compiled here
    run(out: Path, report: dict, inputs: list[bytes]) -> list[bytes]   # optional
                                                     # (qemu: run(out, report) -> QemuRun)

``TARGETS`` maps each target name to its module and a one-line description; ``boards``
holds every board's flash, RAM, CPU and toolchain facts and the fit check.

May import the compiler, the reference and ``tinygen.tflite``; never ``tinygen.speech`` or
the command modules. See ``tinygen.layers``.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from tinygen.errors import TinygenError
from tinygen.resources import firmware_dir

CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")


class TargetError(TinygenError):
    """A target that is unknown, or a toolchain that is missing or failed."""


@dataclass
class TargetContext:
    """What a target needs to write its files: names, sizes and test vectors."""

    target: str
    backend: str
    model_name: str
    version: str
    report: dict[str, Any]  # report.json so far (flash, arena, input/output quantization)
    vectors: list[tuple[bytes, bytes]] = field(default_factory=list)  # (input, expected)
    options: dict[str, Any] = field(default_factory=dict)  # target-specific (board, ...)


@dataclass(frozen=True)
class TargetInfo:
    name: str
    module: str  # tinygen.targets.<module>
    description: str


TARGETS: dict[str, TargetInfo] = {
    "host": TargetInfo("host", "host", "an executable for this machine: raw int8 in on "
                                       "stdin, raw int8 out on stdout"),
    "qemu-m4": TargetInfo("qemu-m4", "qemu", "firmware for QEMU mps2-an386 (Cortex-M4); "
                                             "tinygen verify runs it"),
    "qemu-m7": TargetInfo("qemu-m7", "qemu", "firmware for QEMU mps2-an500 (Cortex-M7); "
                                             "tinygen verify runs it"),
    "qemu-m55": TargetInfo("qemu-m55", "qemu", "firmware for QEMU mps3-an547 (Cortex-M55); "
                                               "tinygen verify runs it"),
    "qemu-xtensa": TargetInfo("qemu-xtensa", "qemu", "firmware for QEMU's Xtensa sim "
                                                     "machine (lx106 core); tinygen verify "
                                                     "runs it"),
    "esp32s3": TargetInfo("esp32s3", "platformio", "a PlatformIO project for "
                                                   "esp32-s3-devkitc-1 (ESP-IDF)"),
    "cortex-m4": TargetInfo("cortex-m4", "platformio", "a PlatformIO project for a "
                                                       "Cortex-M4 board (nucleo_f429zi)"),
    "cortex-m7": TargetInfo("cortex-m7", "platformio", "a PlatformIO project for a "
                                                       "Cortex-M7 board (nucleo_h743zi)"),
    "cortex-m55": TargetInfo("cortex-m55", "platformio", "a PlatformIO project for the "
                                                         "Cortex-M55 MPS3 AN547"),
}


def check_target(name: str) -> TargetInfo:
    if name not in TARGETS:
        raise TargetError(f"unknown target '{name}'", f"choose one of: {', '.join(TARGETS)}")
    return TARGETS[name]


def target_module(name: str) -> ModuleType:
    return importlib.import_module(f"tinygen.targets.{check_target(name).module}")


def copy_runtime(out: Path) -> Path:
    """Copy the C runtime (executor + kernels) to OUT/lib/tinygen."""
    dst = out / "lib" / "tinygen"
    src = firmware_dir() / "tinygen"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.o", "__pycache__"))
    return dst


def runtime_sources(lib: Path) -> list[Path]:
    """The runtime, the portable kernels and the audio C (front end, CTC, gate, ring)."""
    return (sorted(lib.glob("*.c")) + sorted((lib / "portable").glob("*.c"))
            + sorted((lib / "audio").glob("*.c")))


def find_compiler(preferred: str | None = None) -> str:
    """The host C compiler: $CC, else gcc, else cc."""
    for cand in [preferred, os.environ.get("CC"), "gcc", "cc"]:
        if cand and shutil.which(cand.split()[0]):
            return cand
    raise TargetError("no C compiler found (looked for $CC, gcc, cc)",
                      "install one, e.g. `apt-get install gcc`")


def compile_c(compiler: str, sources: list[Path], includes: list[Path], output: Path,
              extra: tuple[str, ...] = ()) -> None:
    cmd = [*compiler.split(), *CFLAGS, *extra, *[f"-I{p}" for p in includes],
           *[str(s) for s in sources], "-o", str(output)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise TargetError(f"C compiler '{compiler}' not found",
                          "install gcc or set $CC") from None
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or ["no output"])[0]
        raise TargetError(f"C compilation failed: {first[:300]}",
                          "this is a tinygen bug; please report it with the model")
