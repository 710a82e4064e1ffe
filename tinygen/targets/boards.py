"""Boards that PlatformIO targets build for, and the fit check: does a model fit a board?

Each ``Board`` carries what the generated project needs (PlatformIO platform, board id,
framework, ``-mcpu``) and what the fit check needs (flash and RAM the application may
use, and what the framework itself takes). Sizes are bytes. ``source`` says where each
board's numbers come from: the PlatformIO board manifest (``upload.maximum_size`` /
``maximum_ram_size``), the framework's devicetree (the RAM region Zephyr links ``.bss``
into), or the partition table tinygen writes (ESP32-S3).

``fit`` runs before any project file is written: a model too big for its board is
refused with one line giving needed vs available for weights, schedule, code and arena.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinygen.errors import TinygenError
from tinygen.targets import nnlib

KiB = 1024
MiB = 1024 * KiB


class BoardError(TinygenError):
    """An unknown board, or a board that does not match the target or backend."""


class FitError(TinygenError):
    """A model that does not fit the board's flash or RAM."""


@dataclass(frozen=True)
class Board:
    name: str  # --board NAME: the PlatformIO board id, or a tinygen variant of one
    target: str  # the tinygen target it belongs to: esp32s3 | cortex-m4 | cortex-m7 | ...
    platform: str  # PlatformIO platform, pinned to the release these settings were read from
    pio_board: str  # PlatformIO board id (a custom manifest in OUT/boards/ when custom_board)
    framework: str  # espidf | zephyr
    mcu: str
    cpu: str  # arm-none-eabi-gcc -mcpu; "" for the ESP32-S3's Xtensa LX7 (no compiler here)
    flash_bytes: int  # flash the application image may use
    ram_bytes: int  # internal SRAM the linker places .bss (the arena) in
    clock_mhz: int  # maximum core clock; the framework's board config sets the actual one
    default_backend: str  # cmsis-nn | esp-nn
    flash_reserved: int  # framework code + data (documented estimate, not compiled here)
    ram_reserved: int  # framework RAM: kernel objects, stacks, heap (documented estimate)
    source: str  # where the sizes come from
    psram_bytes: int = 0  # external PSRAM the arena may fall back to (ESP32-S3 variants)
    zephyr_version: str = ""  # Zephyr release of the platform's framework-zephyr package
    zephyr_board: str = ""  # Zephyr board name, for a custom PlatformIO board manifest
    custom_board: bool = False  # PlatformIO has no such board: OUT/boards/<pio_board>.json
    monitor_speed: int = 115200
    note: str = ""  # a caveat the report and README repeat
    # GCC of the toolchain package the platform pins for this board's framework (a
    # backend that needs a newer one is refused), and where that pin is read from.
    gcc: tuple[int, ...] = ()  # () where not read (the ESP32-S3: ESP-IDF's own toolchain)
    toolchain: str = ""
    # FPU flags the framework passes with the generated configuration (Zephyr: prj.conf
    # CONFIG_FPU=y and CONFIG_FP_HARDABI=y give -mfpu=<GCC_M_FPU> -mfloat-abi=hard).
    fpu_flags: tuple[str, ...] = ()
    # --app listen on Zephyr: the devicetree node of a microphone its Zephyr has a DMIC
    # driver for (the overlay labels it dmic_dev); "" where none (ESP32-S3: I2S, always)
    dmic_node: str = ""

    @property
    def framework_cflags(self) -> tuple[str, ...]:
        """What the board's framework passes to every C file it compiles, as far as it
        changes what the adapters and CMSIS-NN compile to: the target and FPU ABI
        (Zephyr's cmake/gcc-m-cpu.cmake and gcc-m-fpu.cmake map the SoC's Kconfig to -mcpu
        and -mfpu; compiler/gcc/target_arm.cmake adds -mfloat-abi), -Os, and
        -ffreestanding, which implies -fno-builtin. Empty for the ESP32-S3 (no Xtensa
        compiler here). docs/targets.md says which sources these were read from."""
        if not self.cpu:
            return ()
        return ("-mthumb", f"-mcpu={self.cpu}", "-mabi=aapcs", *self.fpu_flags, "-Os",
                "-ffreestanding", "-fno-common", "-std=c99")

    @property
    def cpu_family(self) -> str:
        """The CMSIS-NN code path the CPU selects: mve (M55), dsp (M4, M7) or xtensa."""
        if not self.cpu:
            return "xtensa"
        return "mve" if self.cpu in ("cortex-m55", "cortex-m85") else "dsp"


_ST = "platformio/platform-ststm32 19.6.0 boards/{}.json; Zephyr 3.4 devicetree zephyr,sram"
# The toolchain-gccarmnoneeabi each platform pins when framework = zephyr:
# toolchain-gccarmnoneeabi ~1.120301.0 is GCC 12.3.1, ~1.80201.0 is GCC 8.2.1.
_ST_GCC = "platform-ststm32 19.6.0 platform.py: toolchain-gccarmnoneeabi ~1.120301.0 for zephyr"
_NRF_GCC = ("platform-nordicnrf52 10.11.0 platform.py: toolchain-gccarmnoneeabi ~1.80201.0 "
            "for zephyr")
_ST_GCC_VERSION = (12, 3, 1)
_HARD_FP = ("-mfloat-abi=hard",)
_ZEPHYR_RESERVE = ("Zephyr kernel, UART console and printk: 64 KiB flash; kernel objects, "
                   "a 4 KiB main stack, ISR and idle stacks: 16 KiB RAM")

BOARDS: dict[str, Board] = {b.name: b for b in (
    Board("esp32-s3-devkitc-1", "esp32s3", "espressif32 @ ~6.13.0", "esp32-s3-devkitc-1",
          "espidf", "esp32s3", "", 8 * MiB - 64 * KiB, 327_680, 240, "esp-nn",
          flash_reserved=256 * KiB, ram_reserved=64 * KiB,
          source="platformio/platform-espressif32 6.13.0 boards/esp32-s3-devkitc-1.json "
                 "(ESP32-S3-DevKitC-1-N8: 8 MB flash, maximum_ram_size 327680 = the DRAM "
                 "ESP-IDF gives static data, no PSRAM); flash = the 0x7F0000-byte factory "
                 "partition of tinygen's partitions.csv"),
    Board("esp32-s3-devkitc-1-n8r8", "esp32s3", "espressif32 @ ~6.13.0",
          "esp32-s3-devkitc-1", "espidf", "esp32s3", "", 8 * MiB - 64 * KiB, 327_680, 240,
          "esp-nn", flash_reserved=256 * KiB, ram_reserved=64 * KiB, psram_bytes=8 * MiB,
          source="as esp32-s3-devkitc-1, for the ESP32-S3-DevKitC-1-N8R8 module (8 MB "
                 "octal PSRAM, Espressif's DevKitC-1 user guide); PlatformIO has one board "
                 "id for both, so PSRAM is enabled through sdkconfig.defaults"),
    Board("nucleo_f429zi", "cortex-m4", "ststm32 @ ~19.6.0", "nucleo_f429zi", "zephyr",
          "stm32f429zit6", "cortex-m4", 2 * MiB, 192 * KiB, 180, "cmsis-nn",
          flash_reserved=64 * KiB, ram_reserved=16 * KiB, zephyr_version="3.4",
          gcc=_ST_GCC_VERSION, toolchain=_ST_GCC, fpu_flags=(*_HARD_FP, "-mfpu=fpv4-sp-d16"),
          source=_ST.format("nucleo_f429zi") + " (maximum_size 2097152, maximum_ram_size "
                                               "196608; Zephyr's stm32f429Xi.dtsi: flash0 "
                                               "2048 KB, sram0 192 KB, the 64 KB CCM apart)"),
    Board("nucleo_f446re", "cortex-m4", "ststm32 @ ~19.6.0", "nucleo_f446re", "zephyr",
          "stm32f446ret6", "cortex-m4", 512 * KiB, 128 * KiB, 180, "cmsis-nn",
          flash_reserved=64 * KiB, ram_reserved=16 * KiB, zephyr_version="3.4",
          gcc=_ST_GCC_VERSION, toolchain=_ST_GCC, fpu_flags=(*_HARD_FP, "-mfpu=fpv4-sp-d16"),
          source=_ST.format("nucleo_f446re") + " (512 KB flash, 128 KB SRAM)"),
    Board("nucleo_h743zi", "cortex-m7", "ststm32 @ ~19.6.0", "nucleo_h743zi", "zephyr",
          "stm32h743zit6", "cortex-m7", 2 * MiB, 512 * KiB, 400, "cmsis-nn",
          flash_reserved=64 * KiB, ram_reserved=16 * KiB, zephyr_version="3.4",
          gcc=_ST_GCC_VERSION, toolchain=_ST_GCC, fpu_flags=(*_HARD_FP, "-mfpu=fpv5-d16"),
          source=_ST.format("nucleo_h743zi") + " (2 MB flash; zephyr,sram = the 512 KB AXI "
                                               "SRAM; DTCM and SRAM1-4 stay unused)",
          note="Zephyr 3.4's nucleo_h743zi devicetree clocks the core at 96 MHz, not 400"),
    Board("disco_f746ng", "cortex-m7", "ststm32 @ ~19.6.0", "disco_f746ng", "zephyr",
          "stm32f746ngh6", "cortex-m7", 1 * MiB, 256 * KiB, 216, "cmsis-nn",
          flash_reserved=64 * KiB, ram_reserved=16 * KiB, zephyr_version="3.4",
          gcc=_ST_GCC_VERSION, toolchain=_ST_GCC, fpu_flags=(*_HARD_FP, "-mfpu=fpv5-sp-d16"),
          source=_ST.format("disco_f746ng") + " (1 MB flash; PlatformIO lists 320 KB RAM, "
                                              "Zephyr links .bss into the 256 KB SRAM1+2, "
                                              "not the 64 KB DTCM)"),
    Board("nrf52840_dk", "cortex-m4", "nordicnrf52 @ ~10.11.0", "nrf52840_dk", "zephyr",
          "nrf52840", "cortex-m4", 1 * MiB, 256 * KiB, 64, "portable",
          flash_reserved=64 * KiB, ram_reserved=16 * KiB, zephyr_version="2.7",
          gcc=(8, 2, 1), toolchain=_NRF_GCC, fpu_flags=(*_HARD_FP, "-mfpu=fpv4-sp-d16"),
          dmic_node="pdm0",
          source="platformio/platform-nordicnrf52 10.11.0 boards/nrf52840_dk.json "
                 "(1 MB flash, 256 KB RAM)",
          note="platform-nordicnrf52 10.11.0 ships Zephyr 2.7 and GCC 8.2.1, whose "
               "arm_acle.h lacks the DSP intrinsics CMSIS-NN v7 uses: portable kernels by "
               "default, no cmsis-nn"),
    Board("mps3_an547", "cortex-m55", "ststm32 @ ~19.6.0", "tinygen_mps3_an547", "zephyr",
          "sse300", "cortex-m55", 512 * KiB, 512 * KiB, 32, "cmsis-nn",
          flash_reserved=64 * KiB, ram_reserved=16 * KiB, zephyr_version="3.4",
          zephyr_board="mps3_an547", custom_board=True,
          gcc=_ST_GCC_VERSION, toolchain=_ST_GCC, fpu_flags=(*_HARD_FP, "-mfpu=auto"),
          source="Zephyr 3.4 boards/arm/mps3_an547 devicetree (zephyr,flash = 512 KB ITCM, "
                 "zephyr,sram = 512 KB DTCM), the memory QEMU's mps3-an547 models too; "
                 "32 MHz: the AN547 system clock (QEMU hw/arm/mps2-tz.c sysclk_frq)",
          note="no PlatformIO board has a Cortex-M55, so this is Arm's Corstone-300 "
               "reference system (MPS3 FPGA + AN547) as a custom board manifest; "
               "`pio run -t upload` runs it under qemu-system-arm -M mps3-an547"),
)}

# --target cortex-mN picks a default board; --board NAME picks one directly.
TARGET_BOARDS: dict[str, str] = {
    "esp32s3": "esp32-s3-devkitc-1",
    "cortex-m4": "nucleo_f429zi",
    "cortex-m7": "nucleo_h743zi",
    "cortex-m55": "mps3_an547",
}

BACKENDS = ("portable", "cmsis-nn", "esp-nn", "tflm")
TARGET_BACKENDS: dict[str, tuple[str, ...]] = {
    "esp32s3": ("esp-nn", "portable", "tflm"),
    "cortex-m4": ("cmsis-nn", "portable", "tflm"),
    "cortex-m7": ("cmsis-nn", "portable", "tflm"),
    "cortex-m55": ("cmsis-nn", "portable", "tflm"),
    # esp-nn: its ANSI C kernels, cmsis-nn: CMSIS-NN for the core, from the checkouts
    # $TINYGEN_ESP_NN and $TINYGEN_CMSIS_NN name (targets/nnlib.py); tflm: TFLM's
    # reference kernels from $TINYGEN_TFLM (targets/tflm.py)
    "qemu-xtensa": ("portable", "esp-nn"),
    "host": ("portable", "esp-nn", "tflm"),
    "qemu-m4": ("portable", "cmsis-nn", "tflm"),
    "qemu-m7": ("portable", "cmsis-nn", "tflm"),
    "qemu-m55": ("portable", "cmsis-nn", "tflm"),
}

# Library code the generated project links besides tinygen's runtime (estimates: the
# kernels a tinygen model calls, after --gc-sections).
LIBRARY_FLASH = {"portable": 0, "cmsis-nn": 24 * KiB, "esp-nn": 32 * KiB,
                 "tflm": 320 * KiB}
# tinygen's runtime (executor + every portable kernel) when no compiler for the board's CPU
# is there to measure it (the ESP32-S3's Xtensa): 4.6 KiB measured at -Os for Cortex-M4
# and M55 with arm-none-eabi-gcc 12.2, with a wide margin for Xtensa's code density.
RUNTIME_CODE_ESTIMATE = 16 * KiB
MAIN_CODE_ESTIMATE = 2 * KiB  # the generated main: a loop, printf and timing calls


def board_names() -> list[str]:
    return sorted(BOARDS)


def resolve(target: str, name: str | None) -> Board:
    """The board for ``target`` (its default when ``name`` is None)."""
    if name is None:
        if target not in TARGET_BOARDS:
            raise BoardError(f"target '{target}' has no boards",
                             f"boards belong to {', '.join(TARGET_BOARDS)}")
        return BOARDS[TARGET_BOARDS[target]]
    if name not in BOARDS:
        raise BoardError(f"unknown board '{name}'",
                         f"known boards: {', '.join(board_names())}")
    board = BOARDS[name]
    if board.target != target:
        raise BoardError(f"board {name} is a {board.target} board, not {target}",
                         f"use --target {board.target}, or leave --target out")
    return board


def target_of(name: str) -> str:
    """The target a --board NAME belongs to."""
    if name not in BOARDS:
        raise BoardError(f"unknown board '{name}'",
                         f"known boards: {', '.join(board_names())}")
    return BOARDS[name].target


@dataclass(frozen=True)
class BackendNeeds:
    """What a backend's library needs from the board's toolchain and CPU."""
    min_gcc: tuple[int, ...] = ()  # oldest GCC whose headers have what the library uses
    intrinsics: tuple[str, ...] = ()  # ACLE intrinsics it calls, from <arm_acle.h>
    isa: dict[str, str] | None = None  # cpu_family -> the feature macro it must see
    why: str = ""


# CMSIS-NN v7.0.0 Include/Internal/arm_nn_compiler.h maps SMLABB, SMLATT, SMLALD, QADD,
# QSUB8, QSUB16 and SADD16 onto these ACLE intrinsics whenever __ARM_FEATURE_DSP is 1.
# GCC's <arm_acle.h> has them from GCC 10 on; GCC 8 and 9 do not (the implicit
# declarations of tensorflow/tflite-micro#2126), so a Zephyr board whose platform pins
# GCC 8.2.1 cannot build CMSIS-NN for a DSP core. tests/test_board_matrix.py checks the
# list against the CMSIS-NN header and the installed GCC's <arm_acle.h>.
BACKEND_NEEDS: dict[str, BackendNeeds] = {
    "cmsis-nn": BackendNeeds(
        min_gcc=(10,),
        intrinsics=("__smlabb", "__smlatt", "__smlald", "__qadd", "__qsub8", "__qsub16",
                    "__sadd16"),
        # CMSIS-NN's arm_nn_math_types.h: ARM_MATH_MVEI from __ARM_FEATURE_MVE & 1,
        # ARM_MATH_DSP from __ARM_FEATURE_DSP == 1; cmsis_nn/tg_cmsis_nn_isa.h turns a
        # missing one into #error when the project says the board's CPU has it.
        isa={"mve": "ARM_MATH_MVEI", "dsp": "ARM_MATH_DSP"},
        why="the ACLE DSP intrinsics of CMSIS-NN v7's arm_nn_compiler.h (__qadd, "
            "__qsub16, __smlabb, ...) arrived in GCC 10's arm_acle.h"),
}


def _version(v: tuple[int, ...]) -> str:
    return ".".join(str(x) for x in v)


def backend_problem(board: Board, backend: str) -> str:
    """Why ``backend`` cannot build on ``board`` with the toolchain its platform pins
    ("" when it can)."""
    needs = BACKEND_NEEDS.get(backend)
    if needs is None or not needs.min_gcc or not board.gcc or board.gcc >= needs.min_gcc:
        return ""
    return (f"backend '{backend}' needs GCC {_version(needs.min_gcc)} or newer ({needs.why}); "
            f"{board.name}'s platform pins GCC {_version(board.gcc)} ({board.toolchain})")


def board_backends(board: Board) -> tuple[str, ...]:
    """The backends the CLI offers for ``board``: its target's, minus those its toolchain
    cannot build."""
    return tuple(b for b in TARGET_BACKENDS[board.target] if not backend_problem(board, b))


def default_backend(target: str, board: str | None = None) -> str:
    if target in TARGET_BOARDS:
        return resolve(target, board).default_backend
    return "portable"


def check_backend(target: str, backend: str, board: str | None = None) -> None:
    """Refuse a backend the target has not, or one the board's pinned toolchain cannot
    build (``board`` None: the target's default board)."""
    allowed = TARGET_BACKENDS.get(target, ("portable",))
    if backend not in allowed:
        raise BoardError(f"backend '{backend}' is not available for target '{target}'",
                         f"choose one of: {', '.join(allowed)}")
    if target not in TARGET_BOARDS and nnlib.of(backend) is not None:
        nnlib.root(backend, target)  # host and qemu-* compile the library from it
    if target in TARGET_BOARDS:
        b = resolve(target, board)
        problem = backend_problem(b, backend)
        if problem:
            raise BoardError(problem, f"choose one of: {', '.join(board_backends(b))}, or "
                                      "another board")


# ---------------------------------------------------------------------------------- fit
def _runtime_sources(lib: Path) -> list[Path]:
    return sorted(lib.glob("*.c")) + sorted((lib / "portable").glob("*.c"))


_MEASURED: dict[tuple[str, str], int] = {}  # (cpu, sources digest) -> bytes


def _measure(cpu: str, files: list[Path]) -> int:
    """text + data of ``files`` compiled with -Os for ``cpu`` (-1 if they do not compile);
    cached by content, since every build copies the same runtime."""
    digest = hashlib.sha256(b"".join(f.name.encode() + f.read_bytes() for f in files)).hexdigest()
    if (cpu, digest) in _MEASURED:
        return _MEASURED[(cpu, digest)]
    gcc, size = shutil.which("arm-none-eabi-gcc"), shutil.which("arm-none-eabi-size")
    assert gcc and size
    with tempfile.TemporaryDirectory() as tmp:
        objs = []
        for k, src in enumerate(files):
            obj = Path(tmp) / f"{k}.o"
            proc = subprocess.run([gcc, "-std=c99", "-Os", f"-mcpu={cpu}", "-mthumb",
                                   "-ffunction-sections", "-fdata-sections", "-c", str(src),
                                   "-o", str(obj)], capture_output=True, text=True,
                                  timeout=300)
            if proc.returncode != 0:
                return -1
            objs.append(str(obj))
        proc = subprocess.run([size, "-t", *objs], capture_output=True, text=True,
                              timeout=60)
        if proc.returncode != 0:
            return -1
        total = proc.stdout.strip().splitlines()[-1].split()
    _MEASURED[(cpu, digest)] = int(total[0]) + int(total[1])  # text (incl. rodata) + data
    return _MEASURED[(cpu, digest)]


def code_estimate(lib: Path, board: Board, backend: str) -> dict[str, Any]:
    """Bytes of code and constant data besides the model: tinygen's runtime measured with
    arm-none-eabi-gcc -Os for the board's CPU, or for the ESP32-S3 with clang-22/llc-22
    -mcpu=esp32 (.text + .rodata), when the tools are there (else
    RUNTIME_CODE_ESTIMATE), plus the generated main, the backend library and the
    framework (documented constants)."""
    runtime, how = RUNTIME_CODE_ESTIMATE, "constant (no compiler for this CPU here)"
    if backend == "tflm":
        runtime, how = 0, "none (TFLM runs the .tflite; its code is in library_bytes)"
    elif not board.cpu and board.target == "esp32s3":  # Xtensa: see targets/xtensa.py
        from tinygen.targets import xtensa

        measured = xtensa.runtime_bytes(lib, backend)
        if measured is not None:
            runtime, how = measured, f"{xtensa.CLANG} -> {xtensa.LLC} -mcpu=esp32 -O2"
    elif board.cpu and shutil.which("arm-none-eabi-gcc") and shutil.which("arm-none-eabi-size"):
        measured = _measure(board.cpu, _runtime_sources(lib))
        if measured >= 0:
            runtime, how = measured, f"arm-none-eabi-gcc -Os -mcpu={board.cpu}"
    parts = {"runtime_bytes": runtime, "main_bytes": MAIN_CODE_ESTIMATE,
             "library_bytes": LIBRARY_FLASH[backend], "framework_bytes": board.flash_reserved}
    return {**parts, "total_bytes": sum(parts.values()), "runtime_measured_with": how}


def fit(report: dict[str, Any], board: Board, code_estimate: dict[str, Any]) -> dict[str, Any]:
    """Check the model of ``report`` against ``board``; raise FitError with the numbers,
    or return the figures (and where the arena goes) for the report.

    Flash: weights + quantization data + schedule + test vectors (report["flash"],
    report.get("vectors_bytes")) + code estimate. RAM: the arena (TFLM's for the tflm
    backend) + library scratch + the framework's share. On an ESP32-S3 with PSRAM the
    arena may go to PSRAM when internal SRAM is too small.
    """
    f = report["flash"]
    tflm = report.get("tflm")
    model_flash = (tflm["model_bytes"] if tflm else
                   f["weights_bytes"] + f.get("quant_bytes", 0) + f["schedule_bytes"])
    vectors = int(report.get("vectors_bytes", 0))
    code = int(code_estimate["total_bytes"])
    flash_needed = model_flash + vectors + code
    arena = int(tflm["arena_bytes"] if tflm else report["arena_bytes"])
    scratch = int(report.get("scratch_bytes", 0))
    ram_free = board.ram_bytes - board.ram_reserved
    placement = "internal SRAM"
    ram_ok = arena + scratch <= ram_free
    if not ram_ok and board.psram_bytes and arena <= board.psram_bytes and scratch <= ram_free:
        placement, ram_ok = "PSRAM", True
    flash_ok = flash_needed <= board.flash_bytes
    if not (flash_ok and ram_ok):
        what = (f"model ({report.get('model', '?')}, backend {report.get('backend', '?')}) "
                f"does not fit {board.name}: ")
        if tflm:
            model_part = f".tflite {tflm['model_bytes']:,}"
        else:
            model_part = (f"weights {f['weights_bytes']:,} + quantization data "
                          f"{f.get('quant_bytes', 0):,} + schedule {f['schedule_bytes']:,}")
        flash = (f"flash {'OK' if flash_ok else 'TOO SMALL'}: needs {flash_needed:,} B "
                 f"({model_part} + test vectors {vectors:,} + code estimate {code:,}) of "
                 f"{board.flash_bytes:,} B")
        ram = (f"RAM {'OK' if ram_ok else 'TOO SMALL'}: needs {arena + scratch:,} B "
               f"(arena {arena:,} + scratch {scratch:,}) of {ram_free:,} B "
               f"({board.ram_bytes:,} internal SRAM - {board.ram_reserved:,} for "
               f"{board.framework})")
        if board.psram_bytes:
            ram += f", PSRAM {board.psram_bytes:,} B"
        raise FitError(what + flash + "; " + ram, _bigger_boards(board, flash_needed - code,
                                                               arena + scratch))
    return {"flash_needed_bytes": flash_needed, "flash_available_bytes": board.flash_bytes,
            "model_flash_bytes": model_flash, "vectors_bytes": vectors,
            "code_estimate": code_estimate, "arena_bytes": arena, "scratch_bytes": scratch,
            "ram_needed_bytes": arena + scratch, "ram_available_bytes": ram_free,
            "psram_available_bytes": board.psram_bytes, "arena_placement": placement}


def _bigger_boards(board: Board, data_flash: int, ram: int) -> str:
    fits = [b.name for b in BOARDS.values()
            if b.name != board.name
            and data_flash + b.flash_reserved + 32 * KiB <= b.flash_bytes
            and (ram <= b.ram_bytes - b.ram_reserved or ram <= b.psram_bytes)]
    if fits:
        return f"use a smaller model, or a bigger board: --board {' | '.join(sorted(fits))}"
    return "use a smaller model: no known board has room for this one"
