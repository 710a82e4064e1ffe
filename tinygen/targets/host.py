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
      $(wildcard ../lib/tinygen/portable/*.c) $(wildcard ../lib/tinygen/audio/*.c)

tinygen_model: $(SRC)
\t$(CC) $(CFLAGS) -I../model -I../lib/tinygen -I../lib/tinygen/audio $(SRC) -o $@
"""


def write(out: Path, ctx: TargetContext) -> None:
    from tinygen.compiler.codegen import render

    host = out / "host"
    host.mkdir(parents=True, exist_ok=True)
    (host / "main.c").write_text(render("host/main.c.j2", version=ctx.version,
                                        model_name=ctx.model_name))
    (host / "Makefile").write_text(MAKEFILE.format(cflags=" ".join(CFLAGS)))


def sources(out: Path) -> list[Path]:
    return [out / "host" / "main.c", *sorted((out / "model").glob("*.c")),
            *runtime_sources(out / "lib" / "tinygen")]


def compile_exe(out: Path, compiler: str | None = None, extra: tuple[str, ...] = (),
                exe: Path | None = None) -> Path:
    cc = find_compiler(compiler)
    target = exe or out / EXE
    lib = out / "lib" / "tinygen"
    compile_c(cc, sources(out), [out / "model", lib, lib / "audio"], target, extra)
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
