"""Host target: ``OUT/host/tinygen_model`` reads one raw int8 input on stdin and writes
the raw int8 output on stdout. ``OUT/host/Makefile`` rebuilds it by hand.

A speech model's build (one with ``OUT/model/tg_audio_tables.h``) also gets
``OUT/host/tinygen_transcribe``: int16 PCM on stdin -> audio front end -> model -> CTC
-> text (templates/host/transcribe.c.j2 states its contract); ``tinygen transcribe``
runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tinygen.targets import (
    CFLAGS,
    TargetContext,
    TargetError,
    compile_c,
    find_compiler,
    runtime_sources,
)

EXE = "host/tinygen_model"
TRANSCRIBE_EXE = "host/tinygen_transcribe"

MAKEFILE = """\
# Rebuild the host runner: make -C host   (CC and CFLAGS may be overridden)
CC ?= cc
CFLAGS ?= {cflags}
SRC = main.c $(wildcard ../model/*.c) $(wildcard ../lib/tinygen/*.c) \\
      $(wildcard ../lib/tinygen/portable/*.c) $(wildcard ../lib/tinygen/audio/*.c)

tinygen_model: $(SRC)
\t$(CC) $(CFLAGS) -I../model -I../lib/tinygen -I../lib/tinygen/audio $(SRC) -o $@
"""

MAKEFILE_TRANSCRIBE = """
tinygen_transcribe: transcribe.c $(filter-out main.c, $(SRC))
\t$(CC) $(CFLAGS) -I../model -I../lib/tinygen -I../lib/tinygen/audio $^ -o $@
"""


def has_audio(out: Path) -> bool:
    """Whether OUT is a speech model's build (it has the audio tables)."""
    return (out / "model" / "tg_audio_tables.h").is_file()


def write(out: Path, ctx: TargetContext) -> None:
    from tinygen.compiler.codegen import render

    host = out / "host"
    host.mkdir(parents=True, exist_ok=True)
    (host / "main.c").write_text(render("host/main.c.j2", version=ctx.version,
                                        model_name=ctx.model_name))
    if ctx.backend == "tflm":  # OUT/tflm/: the .tflite on TFLM behind the same main.c
        from tinygen.targets import tflm

        ctx.report["tflm"] = tflm.write(out, ctx)
        (host / "Makefile").write_text(tflm.makefile(
            "cc", "c++", "ar", list(CFLAGS), (), [], ["main.c"], "tinygen_model", "host"))
        return
    makefile = MAKEFILE.format(cflags=" ".join(CFLAGS))
    if has_audio(out):
        (host / "transcribe.c").write_text(render("host/transcribe.c.j2", version=ctx.version,
                                                  model_name=ctx.model_name))
        makefile += MAKEFILE_TRANSCRIBE
    (host / "Makefile").write_text(makefile)


def sources(out: Path, main: str = "main.c") -> list[Path]:
    return [out / "host" / main, *sorted((out / "model").glob("*.c")),
            *runtime_sources(out / "lib" / "tinygen")]


def compile_exe(out: Path, compiler: str | None = None, extra: tuple[str, ...] = (),
                exe: Path | None = None, main: str = "main.c") -> Path:
    cc = find_compiler(compiler)
    target = exe or out / EXE
    if (out / "tflm" / "tg_tflm_model.cc").is_file():  # a --backend tflm build
        from tinygen.targets import tflm

        tflm.compile_and_link(cc, tflm.host_cxx(cc), "ar", out / "host", ["main.c"],
                              list(CFLAGS), (), [], str(target.resolve()), extra)
        return target
    lib = out / "lib" / "tinygen"
    compile_c(cc, sources(out, main), [out / "model", lib, lib / "audio"], target, extra)
    return target


def build(out: Path, ctx: TargetContext) -> None:
    compile_exe(out, ctx.options.get("compiler"))
    if has_audio(out) and ctx.backend != "tflm":  # transcribe runs tinygen's own kernels
        compile_exe(out, ctx.options.get("compiler"), exe=out / TRANSCRIBE_EXE,
                    main="transcribe.c")


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
