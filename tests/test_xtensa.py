"""ESP32-class checks (Xtensa): ESP-NN on qemu-xtensa, lx106 helpers, the esp32 compile check.

qemu-xtensa with the portable kernels runs in tests/test_qemu.py beside the Cortex-M
boards. Here: preset:mcu-tiny and every share-* preset built for qemu-xtensa with
``--backend esp-nn`` (ESP-NN's ANSI C kernels from $TINYGEN_ESP_NN behind tinygen's
adapters) and run under qemu-system-xtensa, bit-exact against the golden reference; the
lx106 64-bit helpers against Python's integers; and the esp32 compile check of a generated
esp32s3 project (clang-22 -> llc-22 -mcpu=esp32), whose sizes report.json carries.

Lean for CI: 2 calibration inputs, 2 test vectors for mcu-tiny and 1 for each share-*
preset, every build made once per module. The ESP-NN tests skip, saying why, when
$TINYGEN_ESP_NN is unset; the lx106 and LLVM toolchains are required (scripts/setup.sh).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_one_line_error, run_tinygen
from tests.test_qemu import build_preset
from tinygen.resources import firmware_dir
from tinygen.targets import TargetError, boards, qemu, xtensa

PRESETS = ["mcu-tiny", "share-blocks", "share-modules", "share-subcomponents",
           "share-lowrank"]
ESP_NN = os.environ.get(qemu.ESP_NN_ENV, "")
# tinygen adapter -> the ESP-NN ANSI C function it must end up calling
ANSI = {"tg_fully_connected_s8.c": "esp_nn_fully_connected_per_ch_s8_ansi",
        "tg_conv2d_s8.c": "esp_nn_conv_s8_ansi",
        "tg_depthwise_conv2d_s8.c": "esp_nn_depthwise_conv_s8_ansi",
        "tg_add_s8.c": "esp_nn_add_elementwise_s8_ansi",
        "tg_mul_s8.c": "esp_nn_mul_elementwise_s8_ansi",
        "tg_softmax_s8.c": "esp_nn_softmax_s8_ansi"}


def vectors_for(preset: str) -> int:
    return 2 if preset == "mcu-tiny" else 1


@pytest.fixture(scope="module")
def tools() -> None:
    arch = qemu.XTENSA
    for tool, package in ((arch.cc, arch.apt_toolchain), (arch.qemu, arch.apt_qemu),
                          (xtensa.CLANG, xtensa.APT_PACKAGES), (xtensa.LLC, xtensa.APT_PACKAGES)):
        assert shutil.which(tool), f"{tool} is required (apt-get install {package})"


@pytest.fixture(scope="module")
def esp_nn_builds(tmp_path_factory: pytest.TempPathFactory, tools):  # type: ignore[no-untyped-def]
    """preset -> (OUT, report) of its qemu-xtensa esp-nn build, made on first use."""
    if not ESP_NN:
        pytest.skip(f"${qemu.ESP_NN_ENV} is not set: ESP-NN's ANSI C kernels cannot be "
                    "compiled (point it at an esp-nn v1.1.2 checkout, e.g. "
                    "../shared/third_party/esp-nn)")
    root = tmp_path_factory.mktemp("esp-nn")
    cache: dict[str, tuple[Path, dict[str, Any]]] = {}

    def get(preset: str) -> tuple[Path, dict[str, Any]]:
        if preset not in cache:
            out = root / preset
            cache[preset] = (out, build_preset(preset, "qemu-xtensa", out, vectors_for(preset),
                                               backend="esp-nn"))
        return cache[preset]

    return get


def symbols(elf: Path) -> set[str]:
    proc = subprocess.run([qemu.XTENSA.nm, str(elf)], capture_output=True, text=True,
                          timeout=60, check=True)
    return {ln.split()[-1] for ln in proc.stdout.splitlines() if ln.strip()}


@pytest.mark.parametrize("preset", PRESETS)
def test_esp_nn_on_qemu_xtensa_is_bit_exact(esp_nn_builds, preset: str) -> None:  # type: ignore[no-untyped-def]
    out, report = esp_nn_builds(preset)
    n = vectors_for(preset)
    ran = qemu.run(out, report)
    assert ran.exit_code == 0, ran.console[-500:]
    assert ran.outputs == [(out / "test_vectors" / f"expected_{k}.bin").read_bytes()
                           for k in range(n)]
    assert len(ran.instructions_per_inference) == n
    for total, steps in zip(ran.instructions_per_inference, ran.instructions_per_step,
                            strict=True):
        assert len(steps) == report["steps"] and all(s > 0 for s in steps)
        assert sum(steps) == total
    # ESP-NN's kernels really ran: the adapters replaced the portable kernels and the
    # firmware links ESP-NN's ANSI C function behind each adapter the model uses.
    info = report["qemu"]
    assert info["library"] == "ESP-NN v1.1.2 ANSI C"
    assert "tg_fully_connected_s8.c" in info["adapters"]
    names = symbols(out / qemu.ELF)
    used = [a for a in info["adapters"] if a[len("tg_"):-len("_s8.c")] in report["ops"]]
    assert "tg_fully_connected_s8.c" in used
    assert [a for a in used if ANSI[a] not in names] == []
    print(f"{preset} on qemu-xtensa (esp-nn): {ran.instructions_per_inference[0]:,} "
          f"instructions per inference, "
          f"{ran.instructions_per_inference[0] / report['macs_per_inference']:.2f} per MAC")


def test_esp_nn_makefile_rebuilds_the_same_elf(esp_nn_builds) -> None:  # type: ignore[no-untyped-def]
    out, _ = esp_nn_builds("share-lowrank")
    folder = out / "qemu"
    assert (folder / "sdkconfig.h").is_file()
    built = (folder / "firmware.elf").read_bytes()
    proc = subprocess.run(["make", "-s", "-B", "-C", str(folder), "firmware.elf"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (folder / "firmware.elf").read_bytes() == built
    assert str(Path(ESP_NN).resolve()) not in (folder / "Makefile").read_text()


def test_esp_nn_without_its_checkout_is_one_line(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(qemu.ESP_NN_ENV, raising=False)
    out = tmp_path / "out"
    with pytest.raises(TargetError) as err:
        build_preset("share-lowrank", "qemu-xtensa", out, 1, backend="esp-nn")
    assert str(err.value) == (
        "--backend esp-nn on qemu-xtensa compiles ESP-NN's ANSI C kernels, and "
        "$TINYGEN_ESP_NN is not set (set TINYGEN_ESP_NN to an esp-nn v1.1.2 checkout, or "
        "build with --backend portable)")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_other_backends_are_refused_on_qemu_xtensa(tmp_path: Path) -> None:
    result = run_tinygen("build", "preset:mcu-tiny", "--target", "qemu-xtensa", "--backend",
                         "cmsis-nn", "-o", str(tmp_path / "o"))
    assert_one_line_error(result, "backend 'cmsis-nn' is not available for target "
                                  "'qemu-xtensa'", "portable, esp-nn")
    assert not (tmp_path / "o").exists()


def test_memory_map() -> None:
    mib = 1024 * 1024
    assert qemu.memory(qemu.BOARDS["qemu-xtensa"]) == {"FLASH": 64 * mib, "RAM": 128 * mib,
                                                       "STACK": 16 * 1024}


HELPERS = r"""
#include <stdint.h>
#include "tg_semihost.h"

uint64_t __muldi3(uint64_t a, uint64_t b);
uint64_t __udivdi3(uint64_t n, uint64_t d);

static const uint64_t tg_cases[][2] = {
%s
};

static void tg_hex(uint64_t v)
{
    char line[18];
    int i;
    for (i = 15; i >= 0; --i) {
        line[i] = "0123456789abcdef"[v & 0xFu];
        v >>= 4;
    }
    line[16] = '\n';
    line[17] = '\0';
    tg_sh_write0(line);
}

int main(void)
{
    volatile int64_t s = -7, t = 3; /* GCC's own call of __muldi3 for int64_t */
    unsigned k;
    tg_hex((uint64_t)(s * t));
    for (k = 0; k < sizeof tg_cases / sizeof tg_cases[0]; ++k) {
        tg_hex(__muldi3(tg_cases[k][0], tg_cases[k][1]));
        tg_hex(__udivdi3(tg_cases[k][0], tg_cases[k][1]));
    }
    return 0;
}
"""


def run_firmware(folder: Path, main_c: str) -> subprocess.CompletedProcess[str]:
    """Build ``main_c`` with the qemu-xtensa board files alone and run it under QEMU."""
    (folder / "main.c").write_text(main_c)
    boards_dir = firmware_dir() / "boards"
    board = qemu.BOARDS["qemu-xtensa"]
    for name in (*board.arch.files, *qemu.SHARED_FILES, f"{board.folder}/{board.linker_script}"):
        shutil.copyfile(boards_dir / name, folder / Path(name).name)
    cmd = [board.arch.cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
           *board.arch.cflags, "-I.", "main.c", "tg_xtensa_startup.c", "tg_semihost.c",
           "tg_xtensa_libgcc.c", *board.arch.ldflags, "-L.", "-T", board.linker_script,
           "-o", "firmware.elf"]
    proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return subprocess.run([board.arch.qemu, *board.qemu_args(), "-kernel", "firmware.elf"],
                          cwd=folder, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_lx106_64bit_helpers_match_python(tmp_path: Path, tools) -> None:  # type: ignore[no-untyped-def]
    m = (1 << 64) - 1
    cases = [(0, 1), (1, 1), (m, 1), (m, m), (m, 3), (1 << 63, 2), (0xFFFFFFFF, 0xFFFFFFFF),
             (0x123456789ABCDEF0, 0x0FEDCBA987654321), (0x7FFFFFFF, (1 << 33) + 5),
             ((-5) & m, 7), ((-(1 << 31)) & m, (1 << 31) - 1), (0xDEADBEEF, 0xBEEF)]
    rows = ",\n".join(f"    {{0x{a:016x}ULL, 0x{b:016x}ULL}}" for a, b in cases)
    run = run_firmware(tmp_path, HELPERS % rows)
    assert "__muldi3" in symbols(tmp_path / "firmware.elf")
    assert run.returncode == 0, run.stdout + run.stderr
    want = [(-7 * 3) & m]
    for a, b in cases:
        want += [(a * b) & m, a // b]
    assert [int(x, 16) for x in run.stdout.split()] == want


def test_lx106_exception_ends_the_run_with_status_3(tmp_path: Path, tools) -> None:  # type: ignore[no-untyped-def]
    run = run_firmware(tmp_path, '#include "tg_semihost.h"\n'
                                 "int main(void)\n{\n"
                                 '    tg_sh_write0("before\\n");\n'
                                 '    __asm__ volatile("ill");\n'
                                 "    return 0;\n}\n")
    assert run.returncode == 3 and run.stdout == "before\ntg_fault\n", run.stdout + run.stderr


# ------------------------------------------------------------------ esp32 compile check
@pytest.fixture(scope="module")
def esp32s3(tmp_path_factory: pytest.TempPathFactory, tools):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("esp32s3") / "mcu-tiny"
    return out, build_preset("mcu-tiny", "esp32s3", out, 2, backend="esp-nn")


def project_sources(out: Path) -> set[str]:
    """What the project builds: src/*.c and lib/tinygen's srcFilter, read independently."""
    import json

    lib = out / "lib" / "tinygen"
    filt = json.loads((lib / "library.json").read_text())["build"]["srcFilter"]
    adapters = {f[len("+<esp_nn/"):-1] for f in filt if f.startswith("+<esp_nn/")}
    names = {f"src/{p.name}" for p in (out / "src").glob("*.c")}
    names |= {f"lib/tinygen/{p.name}" for p in lib.glob("*.c")}
    names |= {f"lib/tinygen/portable/{p.name}" for p in (lib / "portable").glob("*.c")
              if p.name not in adapters}
    if "+<audio/*.c>" in filt:  # the audio front end, CTC decoder, gate and ring
        names |= {f"lib/tinygen/audio/{p.name}" for p in (lib / "audio").glob("*.c")}
    return names | {f"lib/tinygen/esp_nn/{a}" for a in adapters}


def test_esp32_compile_check_covers_the_project(esp32s3) -> None:  # type: ignore[no-untyped-def]
    out, report = esp32s3
    check = report["xtensa"]
    assert check["checked"] is True and "-mcpu=esp32" in check["compiler"]
    assert "-Werror" in check["compiler"]
    compiled, skipped = set(check["files"]), set(check["not_compiled"])
    assert compiled | skipped == project_sources(out) and not compiled & skipped
    assert check["not_compiled"]["src/main.c"] == "includes ESP-IDF headers"
    adapters = {f for f in project_sources(out) if "/esp_nn/" in f}
    assert adapters, "the esp-nn project builds ESP-NN adapters"
    if ESP_NN:
        assert skipped == {"src/main.c"} and adapters <= compiled
    else:
        assert skipped == {"src/main.c"} | adapters
    assert check["files_compiled"] == len(compiled)
    assert check["text_bytes"] == sum(v["text"] for v in check["files"].values())
    # The weights' .rodata holds every weight and quantization byte the generator counted
    # (the arrays pad to 4 bytes and int8 strings keep a NUL: a few bytes per array).
    flash = report["flash"]
    rodata = check["files"]["src/tinygen_weights.c"]["rodata"]
    assert flash["weights_bytes"] + flash["quant_bytes"] <= rodata
    assert rodata <= 1.02 * (flash["weights_bytes"] + flash["quant_bytes"])
    assert all(check["files"][f]["text"] > 0 for f in compiled if f.startswith("lib/"))


def test_esp32_sizes_feed_the_fit_check(esp32s3) -> None:  # type: ignore[no-untyped-def]
    _, report = esp32s3
    est = report["fit"]["code_estimate"]
    check = report["xtensa"]
    assert est["runtime_measured_with"].startswith("clang-22 -> llc-22 -mcpu=esp32")
    measured = check["runtime_text_bytes"] + check["runtime_rodata_bytes"]
    assert est["runtime_bytes"] != boards.RUNTIME_CODE_ESTIMATE
    if ESP_NN:  # same files; only the scratch size constant differs between the two
        assert abs(est["runtime_bytes"] - measured) <= 64
    assert est["total_bytes"] == sum(v for k, v in est.items() if k.endswith("_bytes")
                                     and k != "total_bytes")
    assert "compiled with clang-22" in report["platformio"]["checked"]


def test_esp32_check_fails_on_a_warning(esp32s3, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out, _ = esp32s3
    copy = tmp_path / "project"
    shutil.copytree(out, copy)
    (copy / "src" / "tinygen_extra.c").write_text(
        "int tg_extra(int a);\nint tg_extra(int a)\n{\n    int unused;\n    return a;\n}\n")
    (copy / "src" / "tinygen_idf.c").write_text('#include "freertos/FreeRTOS.h"\n')
    with pytest.raises(TargetError) as err:
        xtensa.check_project(copy)
    assert "clang-22 --target=xtensa" in str(err.value) and "unused" in str(err.value)
    (copy / "src" / "tinygen_extra.c").unlink()
    check = xtensa.check_project(copy)
    assert check["not_compiled"]["src/tinygen_idf.c"] == "includes ESP-IDF headers"


def test_esp32_check_without_llvm_keeps_the_constant(esp32s3, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = esp32s3
    monkeypatch.setenv("PATH", str(tmp_path))
    check = xtensa.check_project(out)
    assert check["checked"] is False and "clang-22" in check["reason"]
    est = boards.code_estimate(out / "lib" / "tinygen", boards.resolve("esp32s3", None),
                               "esp-nn")
    assert est["runtime_bytes"] == boards.RUNTIME_CODE_ESTIMATE
    assert est["runtime_measured_with"].startswith("constant")
