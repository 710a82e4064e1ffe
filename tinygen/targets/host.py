"""Host target: ``OUT/host/tinygen_model`` reads one raw int8 input on stdin and writes
the raw int8 output on stdout. ``OUT/host/Makefile`` rebuilds it by hand."""

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

MAKEFILE = """\
# Rebuild the host runner: make -C host   (CC and CFLAGS may be overridden)
CC ?= cc
CFLAGS ?= {cflags}
SRC = main.c $(wildcard ../model/*.c) $(wildcard ../lib/tinygen/*.c) \\
      $(wildcard ../lib/tinygen/portable/*.c)

tinygen_model: $(SRC)
\t$(CC) $(CFLAGS) -I../model -I../lib/tinygen $(SRC) -o $@
"""


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
    (host / "Makefile").write_text(MAKEFILE.format(cflags=" ".join(CFLAGS)))


def sources(out: Path) -> list[Path]:
    return [out / "host" / "main.c", *sorted((out / "model").glob("*.c")),
            *runtime_sources(out / "lib" / "tinygen")]


def compile_exe(out: Path, compiler: str | None = None, extra: tuple[str, ...] = (),
                exe: Path | None = None) -> Path:
    cc = find_compiler(compiler)
    target = exe or out / EXE
    if (out / "tflm" / "tg_tflm_model.cc").is_file():  # a --backend tflm build
        from tinygen.targets import tflm

        tflm.compile_and_link(cc, tflm.host_cxx(cc), "ar", out / "host", ["main.c"],
                              list(CFLAGS), (), [], str(target.resolve()), extra)
        return target
    compile_c(cc, sources(out), [out / "model", out / "lib" / "tinygen"], target, extra)
    return target


def build(out: Path, ctx: TargetContext) -> None:
    compile_exe(out, ctx.options.get("compiler"))


def run(exe: Path, inputs: list[bytes]) -> list[bytes]:
    outputs = []
    for inp in inputs:
        proc = subprocess.run([str(exe)], input=inp, capture_output=True, timeout=120)
        if proc.returncode != 0:
            msg = proc.stderr.decode(errors="replace").strip().splitlines()
            raise TargetError("the host build failed on a test vector: "
                              f"{(msg or ['exit ' + str(proc.returncode)])[0][:200]}")
        outputs.append(proc.stdout)
    return outputs


def describe() -> dict[str, Any]:
    return {"runs_here": True}
