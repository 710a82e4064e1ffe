"""The esp32 compile check: a generated esp32s3 project's C, compiled for an ESP32 core.

No ESP-IDF, no PlatformIO platform and no Xtensa GCC for the ESP32 exist here, but LLVM 22
has an Xtensa backend (CPUs esp32, esp8266, generic; no esp32s3, no PIE/SIMD). Its clang
driver rejects ``-mcpu``, so each file goes through LLVM IR:

    clang-22 --target=xtensa -ffreestanding -std=c99 -O2 -Wall -Wextra -Werror ... -emit-llvm
    llc-22 -mtriple=xtensa -mcpu=esp32 -function-sections -data-sections -filetype=obj

which emits the ESP32's windowed ABI (entry/retw). Without -function-sections llc fails
on literal alignment. C library headers are picolibc's (picolibc-xtensa-lx106-elf; ESP-IDF
ships newlib), never the host's.

:func:`check_project` compiles every C source an esp32s3 project builds that includes no
ESP-IDF header (``esp_*.h`` other than ESP-NN's, ``freertos/``, ``driver/``, ...): the
model, its weights, the test vectors, the runtime and the kernels ``lib/tinygen``'s
srcFilter selects, and the ESP-NN adapters with ESP-NN's headers (from $TINYGEN_ESP_NN;
without it they are listed as not compiled). The adapters' ``sdkconfig.h`` is written from
the project's ``sdkconfig.defaults`` the way ESP-IDF generates it. The ``.text`` (with
literal pools) and ``.rodata`` sizes of the objects are the Xtensa code-size estimate
report.json carries; :func:`runtime_bytes` gives the runtime's share to the esp32s3 fit
check (boards.code_estimate). Neither links anything: ld.lld-22 cannot link Xtensa.

llc-22 -O2 aborts on some calls with many stack arguments (an LLVM Xtensa bug: "Cannot
scavenge register without an emergency spill slot"); such a file is compiled again with
llc -O0 and named in the report, its size then an overestimate.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tinygen.targets import TargetError

CLANG, LLC, SIZE = "clang-22", "llc-22", "llvm-size-22"
APT_PACKAGES = "clang-22 llvm-22"
CPU = "esp32"
LIBC_INCLUDE = Path("/usr/lib/xtensa-lx106-elf/include")  # picolibc-xtensa-lx106-elf
CFLAGS = ("--target=xtensa", "-ffreestanding", "-nostdlibinc", "-std=c99", "-O2", "-Wall",
          "-Wextra", "-Werror", "-ffunction-sections", "-fdata-sections")
LLC_FLAGS = ("-mtriple=xtensa", f"-mcpu={CPU}", "-function-sections", "-data-sections",
             "-filetype=obj")
ESP_NN_ENV = "TINYGEN_ESP_NN"
# An #include of one of these is ESP-IDF's (esp_nn*.h is ESP-NN's; sdkconfig.h is served).
IDF_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"](esp_(?!nn)|freertos/|driver/|soc/|hal/|'
                         r'rom/|nvs|esp32)', re.M)

LOCAL_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)

_SIZES: dict[str, tuple[dict[str, int], bool]] = {}  # digest of file + flags -> sizes


def header_via(path: Path, dirs: list[Path], pattern: re.Pattern[str] = IDF_INCLUDE,
               seen: set[Path] | None = None) -> str | None:
    """The local header through which ``path`` reaches a header that ``pattern`` matches
    (by default ESP-IDF's; ``path``'s own name when it includes one directly), or None.
    Quoted includes are followed through ``path``'s folder and ``dirs``, as the compiler
    would find them."""
    seen = set() if seen is None else seen
    if path in seen:
        return None
    seen.add(path)
    text = path.read_text()
    if pattern.search(text):
        return path.name
    for name in LOCAL_INCLUDE.findall(text):
        for folder in (path.parent, *dirs):
            header = folder / name
            if header.is_file():
                if header_via(header, dirs, pattern, seen) is not None:
                    return name
                break
    return None


def available() -> bool:
    return all(shutil.which(t) for t in (CLANG, LLC, SIZE)) and LIBC_INCLUDE.is_dir()


def _missing() -> str:
    tools = [t for t in (CLANG, LLC, SIZE) if not shutil.which(t)]
    if not LIBC_INCLUDE.is_dir():
        tools.append(f"{LIBC_INCLUDE} (picolibc-xtensa-lx106-elf)")
    return ", ".join(tools)


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


def _sizes(obj: Path, cwd: Path) -> dict[str, int]:
    proc = _run([SIZE, "-A", str(obj)], cwd)
    if proc.returncode != 0:
        raise TargetError(f"{SIZE} failed on {obj.name}: {proc.stderr.strip()[:200]}")
    text = rodata = 0
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        if parts[0].startswith((".text", ".literal")):
            text += int(parts[1])
        elif parts[0].startswith(".rodata"):
            rodata += int(parts[1])
    return {"text": text, "rodata": rodata}


def compile_file(src: Path, includes: list[Path], defines: tuple[str, ...] = ()
                 ) -> tuple[dict[str, int], bool]:
    """Compile ``src`` for the ESP32 with -Wall -Wextra -Werror; its .text/.rodata bytes
    and whether llc had to fall back to -O0. Raises TargetError on any diagnostic."""
    flags = [*CFLAGS, "-isystem", str(LIBC_INCLUDE), *defines,
             *[f"-I{p.resolve()}" for p in includes]]
    # cached by content (every build copies the same runtime), not by folder names
    key = hashlib.sha256("\0".join([*defines, src.name]).encode() + src.read_bytes()
                         + b"".join(p.name.encode() + p.read_bytes() for inc in includes
                                    for p in sorted(inc.glob("*.h")))).hexdigest()
    if key in _SIZES:
        return _SIZES[key]
    with tempfile.TemporaryDirectory(prefix="tinygen-xtensa-") as tmp:
        cwd = Path(tmp)
        proc = _run([CLANG, *flags, "-emit-llvm", "-c", str(src.resolve()), "-o", "unit.bc"],
                    cwd)
        if proc.returncode != 0 or proc.stderr.strip():
            first = (proc.stderr.strip().splitlines() or ["no output"])[0]
            raise TargetError(f"{CLANG} --target=xtensa: {first[:300]}",
                              "this is a tinygen bug; please report it with the model")
        fallback = False
        proc = _run([LLC, *LLC_FLAGS, "unit.bc", "-o", "unit.o"], cwd)
        if proc.returncode != 0 and "Cannot scavenge register" in proc.stderr:
            fallback = True
            proc = _run([LLC, *LLC_FLAGS, "-O0", "unit.bc", "-o", "unit.o"], cwd)
        if proc.returncode != 0:
            first = (proc.stderr.strip().splitlines() or ["no output"])[0]
            raise TargetError(f"{LLC} -mcpu={CPU} failed on {src.name}: {first[:300]}",
                              "this is a tinygen bug; please report it with the model")
        _SIZES[key] = (_sizes(cwd / "unit.o", cwd), fallback)
    return _SIZES[key]


def _esp_nn_include() -> Path | None:
    """ESP-NN's include/ folder under $TINYGEN_ESP_NN, if it is there."""
    inc = Path(os.environ.get(ESP_NN_ENV, "") or "/nonexistent") / "include"
    return inc if (inc / "esp_nn.h").is_file() else None


def library_sources(lib: Path) -> list[str]:
    """lib/tinygen/library.json's srcFilter applied to the files under lib/tinygen, with
    PlatformIO's glob semantics (``*`` does not cross ``/``: ``+<*.c>`` is the top level)."""
    spec = json.loads((lib / "library.json").read_text())
    chosen: set[str] = set()
    for item in spec.get("build", {}).get("srcFilter", ["+<*.c>"]):
        m = re.fullmatch(r"([+-])<(.+)>", item.strip())
        if m is None:
            continue
        hits = {str(p.relative_to(lib)) for p in lib.glob(m.group(2))
                if p.suffix == ".c" and p.is_file()}
        chosen = chosen | hits if m.group(1) == "+" else chosen - hits
    return sorted(chosen)


def _sdkconfig_h(defaults: Path) -> str:
    """sdkconfig.h as ESP-IDF writes it from sdkconfig.defaults: X=y -> #define X 1,
    X="s" -> #define X "s", numbers as they are, X=n left out; the target's
    CONFIG_IDF_TARGET_<NAME> 1 besides CONFIG_IDF_TARGET."""
    lines = ["/* sdkconfig.h for the esp32 compile check, from sdkconfig.defaults */"]
    for raw in defaults.read_text().splitlines() if defaults.is_file() else []:
        m = re.fullmatch(r"(CONFIG_\w+)=(.*)", raw.strip())
        if m is None or m.group(2) == "n":
            continue
        name, value = m.groups()
        lines.append(f"#define {name} {'1' if value == 'y' else value}")
        if name == "CONFIG_IDF_TARGET":
            lines.append(f"#define CONFIG_IDF_TARGET_{value.strip(chr(34)).upper()} 1")
    return "\n".join(lines) + "\n"


def check_project(out: Path) -> dict[str, Any]:
    """Compile the esp32s3 project in ``out`` for the ESP32; report.json's "xtensa"."""
    if not available():
        return {"checked": False,
                "reason": f"not found: {_missing()} (apt-get install {APT_PACKAGES} "
                          "picolibc-xtensa-lx106-elf)"}
    lib, src = out / "lib" / "tinygen", out / "src"
    scratch = re.findall(r"-DTG_NN_SCRATCH_BYTES=\d+", (lib / "library.json").read_text())
    esp_nn = _esp_nn_include()
    files: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    fallback: list[str] = []
    units = [(p, f"src/{p.name}") for p in sorted(src.glob("*.c"))]
    units += [(lib / rel, f"lib/tinygen/{rel}") for rel in library_sources(lib)]
    with tempfile.TemporaryDirectory(prefix="tinygen-sdkconfig-") as tmp:
        (Path(tmp) / "sdkconfig.h").write_text(_sdkconfig_h(out / "sdkconfig.defaults"))
        for path, rel in units:
            text = path.read_text()
            via = header_via(path, [src, lib])
            if via is not None:
                skipped[rel] = ("includes ESP-IDF headers" if via == path.name
                                else f"includes ESP-IDF headers through {via}")
                continue
            includes = [src, lib]
            if '"esp_nn.h"' in text:
                if esp_nn is None:
                    skipped[rel] = (f"needs ESP-NN's headers: ${ESP_NN_ENV} is not set or "
                                    "has no include/esp_nn.h")
                    continue
                includes += [Path(tmp), esp_nn]
            sizes, slow = compile_file(path, includes, tuple(scratch))
            files[rel] = sizes
            if slow:
                fallback.append(rel)
    runtime = [v for k, v in files.items() if k.startswith("lib/")]
    return {
        "checked": True,
        "compiler": f"{CLANG} -> {LLC} -mcpu={CPU} (Xtensa LX6, windowed ABI), -O2 "
                    "-Wall -Wextra -Werror; picolibc headers",
        "files_compiled": len(files),
        "text_bytes": sum(v["text"] for v in files.values()),
        "rodata_bytes": sum(v["rodata"] for v in files.values()),
        "runtime_text_bytes": sum(v["text"] for v in runtime),
        "runtime_rodata_bytes": sum(v["rodata"] for v in runtime),
        "files": files,
        "not_compiled": skipped,
        "llc_O0_fallback": fallback,
    }


def runtime_bytes(lib: Path, backend: str) -> int | None:
    """.text + .rodata of the runtime and kernels an esp32s3 project with ``backend``
    builds, compiled for the ESP32 (None without the tools). The adapters replace the
    portable kernels of the same name; without ESP-NN's headers ($TINYGEN_ESP_NN) the
    portable kernel stands in for an adapter's size."""
    if not available():
        return None
    esp_nn = _esp_nn_include() if backend == "esp-nn" else None
    adapters = {p.name for p in (lib / "esp_nn").glob("*.c")} if esp_nn else set()
    total = 0
    with tempfile.TemporaryDirectory(prefix="tinygen-sdkconfig-") as tmp:
        (Path(tmp) / "sdkconfig.h").write_text(
            '#define CONFIG_IDF_TARGET "esp32s3"\n#define CONFIG_IDF_TARGET_ESP32S3 1\n'
            "#define CONFIG_NN_OPTIMIZED 1\n")
        audio = [lib / rel for rel in library_sources(lib) if rel.startswith("audio/")] \
            if (lib / "library.json").is_file() else []  # what the project compiles of it
        srcs = [*sorted(lib.glob("*.c")),
                *[p for p in sorted((lib / "portable").glob("*.c")) if p.name not in adapters],
                *[lib / "esp_nn" / name for name in sorted(adapters)], *audio]
        for path in srcs:
            includes = [lib, Path(tmp), esp_nn] if esp_nn else [lib]
            sizes, _ = compile_file(path, includes)
            total += sizes["text"] + sizes["rodata"]
    return total
