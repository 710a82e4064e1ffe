"""Host target: ``OUT/host/tinygen_model`` reads one raw int8 input on stdin and writes
the raw int8 output on stdout. ``OUT/host/Makefile`` rebuilds it by hand.

A speech model's build (one with ``OUT/model/tg_audio_tables.h``) also gets
``OUT/host/tinygen_transcribe``: int16 PCM on stdin -> audio front end -> model -> CTC
-> text (templates/host/transcribe.c.j2 states its contract); ``tinygen transcribe``
runs it.

With ``--app listen`` a speech model's build also gets ``OUT/host/tinygen_listen``: the
boards' listen loop (tinygen.targets.listen) fed from stdin in mic-sized blocks
(templates/listen/driver.c.j2 states its protocol).

``--backend esp-nn`` (ESP-NN's ANSI C kernels, the path ESP-NN has off the ESP32-S3)
links ESP-NN, compiled from $TINYGEN_ESP_NN by the host compiler and cached
(tinygen.targets.nnlib), after the adapters of firmware/tinygen/esp_nn/, which replace the
portable kernels of the same name; ``OUT/host/sdkconfig.h`` stands in for ESP-IDF's.
report.json's ``host`` says which kernels are whose."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tinygen.resources import firmware_dir
from tinygen.targets import (
    CFLAGS,
    TargetContext,
    TargetError,
    compile_c,
    find_compiler,
    listen,
    nnlib,
    runtime_sources,
)

EXE = "host/tinygen_model"
SDKCONFIG = "sdkconfig.h"  # firmware/boards/host/: ESP-IDF's header, for the ESP-NN adapters
TRANSCRIBE_EXE = "host/tinygen_transcribe"
LISTEN_EXE = "host/tinygen_listen"

MAKEFILE = """\
# Rebuild the host runner: make -C host   (CC and CFLAGS may be overridden)
CC ?= cc
CFLAGS ?= {cflags}
SRC = main.c $(wildcard ../model/*.c) $(wildcard ../lib/tinygen/*.c) \\
      {kernels} $(wildcard ../lib/tinygen/audio/*.c)
INCLUDES = -I../model -I../lib/tinygen -I../lib/tinygen/audio{includes}
{library}
tinygen_model: $(SRC){library_dep}
\t$(CC) $(CFLAGS) $(INCLUDES) $(SRC){library_dep} -o $@
{rule}"""
PORTABLE = "$(wildcard ../lib/tinygen/portable/*.c)"

MAKEFILE_TRANSCRIBE = """
tinygen_transcribe: transcribe.c $(filter-out main.c, $(SRC)){library_dep}
\t$(CC) $(CFLAGS) $(INCLUDES) $^ -o $@
"""

MAKEFILE_LISTEN = """
tinygen_listen: listen.c tg_listen_app.c $(filter-out main.c, $(SRC)){library_dep}
\t$(CC) $(CFLAGS) -I. $(INCLUDES) $^ -o $@
"""


def has_audio(out: Path) -> bool:
    """Whether OUT is a speech model's build (it has the audio tables)."""
    return (out / "model" / "tg_audio_tables.h").is_file()


def write(out: Path, ctx: TargetContext) -> None:
    from tinygen.compiler.codegen import render

    host = out / "host"
    host.mkdir(parents=True, exist_ok=True)
    lib = nnlib.of(ctx.backend)
    if lib is not None:
        from tinygen.targets import qemu

        ctx.report["host"] = qemu.library_backend(ctx, "host", "esp32s3")
        shutil.copyfile(firmware_dir() / "boards" / "host" / SDKCONFIG, host / SDKCONFIG)
    (host / "main.c").write_text(render("host/main.c.j2", version=ctx.version,
                                        model_name=ctx.model_name, nn=lib is not None))
    if ctx.backend == "tflm":  # OUT/tflm/: the .tflite on TFLM behind the same main.c
        from tinygen.targets import tflm

        ctx.report["tflm"] = tflm.write(out, ctx)
        (host / "Makefile").write_text(tflm.makefile(
            "cc", "c++", "ar", list(CFLAGS), (), [], ["main.c"], "tinygen_model", "host"))
        return
    fields = {"cflags": " ".join(CFLAGS), "kernels": PORTABLE, "includes": "", "library": "",
              "library_dep": "", "rule": ""}
    if lib is not None:
        info = ctx.report["host"]
        variables, rule = nnlib.makefile(ctx.backend, ())
        fields.update(
            kernels=nnlib.make_kernels(ctx.backend, info["adapters"], PORTABLE),
            includes=" " + " ".join(["-I.", *info["defines"],
                                     *lib.adapter_flags(f"$({lib.make_var})")]),
            library=f"AR ?= ar\n{variables}", rule=rule, library_dep=f" $({lib.make_var}_LIB)")
    makefile = MAKEFILE.format(**fields)
    if has_audio(out):
        (host / "transcribe.c").write_text(render("host/transcribe.c.j2", version=ctx.version,
                                                  model_name=ctx.model_name))
        makefile += MAKEFILE_TRANSCRIBE.format(library_dep=fields["library_dep"])
    if listen.app_option(ctx.options) == "listen":
        p = listen.plan(ctx.report)
        listen.render_app(host, p, ctx.version, ctx.model_name)
        (host / "listen.c").write_text(render("listen/driver.c.j2", version=ctx.version,
                                              model_name=ctx.model_name, semihost=False))
        ctx.report["listen"] = listen.ram_flash(ctx.report, p)
        makefile += MAKEFILE_LISTEN.format(library_dep=fields["library_dep"])
    (host / "Makefile").write_text(makefile)


def sources(out: Path, main: str = "main.c", kernels: dict[str, Any] | None = None
            ) -> list[Path]:
    """The host build's C sources; with a library backend's ``kernels`` (report.json's
    ``host``), its adapters in place of the portable kernels of the same name."""
    lib = out / "lib" / "tinygen"
    srcs = runtime_sources(lib)
    if kernels:
        from tinygen.targets import platformio

        adapters = kernels["adapters"]
        folder = platformio.BACKEND_DIRS[str(kernels["backend"])]
        srcs = [p for p in srcs if not (p.parent.name == "portable" and p.name in adapters)]
        srcs += [lib / folder / name for name in adapters]
    extra = [out / "host" / "tg_listen_app.c"] if main == "listen.c" else []
    return [out / "host" / main, *extra, *sorted((out / "model").glob("*.c")), *srcs]


def _kernels(out: Path) -> dict[str, Any] | None:
    """report.json's ``host``: a library backend's kernels, or None (portable)."""
    report = out / "report.json"
    if not report.is_file():
        return None
    info = json.loads(report.read_text()).get("host")
    return info if isinstance(info, dict) else None


def compile_exe(out: Path, compiler: str | None = None, extra: tuple[str, ...] = (),
                exe: Path | None = None, main: str = "main.c",
                kernels: dict[str, Any] | None = None) -> Path:
    """Compile OUT's host program ``main`` to ``exe`` (default OUT/host/tinygen_model);
    ``kernels``: a library backend's (default: report.json's)."""
    cc = find_compiler(compiler)
    target = exe or out / EXE
    if (out / "tflm" / "tg_tflm_model.cc").is_file():  # a --backend tflm build
        from tinygen.targets import tflm

        tflm.compile_and_link(cc, tflm.host_cxx(cc), "ar", out / "host", ["main.c"],
                              list(CFLAGS), (), [], str(target.resolve()), extra)
        return target
    lib = out / "lib" / "tinygen"
    kernels = kernels if kernels is not None else _kernels(out)
    archive: list[Path] = []
    if kernels:
        backend = str(kernels["backend"])
        library = nnlib.LIBRARIES[backend]
        tree = nnlib.root(backend, "host")
        archive = [nnlib.library(backend, "host", cc, "ar", ())]
        extra = (*extra, *kernels["defines"], *library.adapter_flags(tree))
    compile_c(cc, [*sources(out, main, kernels), *archive],
              [out / "host", out / "model", lib, lib / "audio"],
              target, extra)
    return target


def build(out: Path, ctx: TargetContext) -> None:
    kernels = ctx.report.get("host")
    compile_exe(out, ctx.options.get("compiler"), kernels=kernels)
    if has_audio(out) and ctx.backend != "tflm":  # transcribe runs tinygen's own kernels
        compile_exe(out, ctx.options.get("compiler"), exe=out / TRANSCRIBE_EXE,
                    main="transcribe.c", kernels=kernels)
    if (out / "host" / "listen.c").is_file():
        compile_exe(out, ctx.options.get("compiler"), exe=out / LISTEN_EXE, main="listen.c",
                    kernels=kernels)


def run(exe: Path, inputs: list[bytes]) -> list[bytes]:
    outputs = []
    for inp in inputs:
        proc = subprocess.run([str(exe)], input=inp, capture_output=True, timeout=120)
        if proc.returncode != 0:
            # the first line that says something (ASan opens with a rule of '=')
            msg = [ln.strip() for ln in proc.stderr.decode(errors="replace").splitlines()
                   if ln.strip(" =")]
            raise TargetError("the host build failed on a test vector: "
                              f"{(msg or ['exit ' + str(proc.returncode)])[0][:200]}")
        outputs.append(proc.stdout)
    return outputs


def describe() -> dict[str, Any]:
    return {"runs_here": True}
