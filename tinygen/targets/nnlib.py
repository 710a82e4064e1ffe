"""The kernel libraries behind ``--backend cmsis-nn`` and ``--backend esp-nn`` on the
targets tinygen compiles itself (host and qemu-*), and the cache of their static
libraries.

    backend   library          checkout ($ENV)     compiled here              targets
    cmsis-nn  CMSIS-NN v7.0.0  $TINYGEN_CMSIS_NN   Source/*/*.c (board core)  qemu-m4|m7|m55
    esp-nn    ESP-NN v1.1.2    $TINYGEN_ESP_NN     src/*/*_ansi.c (ANSI C)    host, qemu-xtensa

A library is compiled from the user's checkout (never copied into OUT) with the target's
compiler and core flags plus the library's own build flags, into a static library cached
per checkout, compiler and flag set (in ``$TINYGEN_NN_CACHE``, else
``$XDG_CACHE_HOME/tinygen/nn``): each -mcpu compiles it once. The firmware links it after
tinygen's adapters (firmware/tinygen/cmsis_nn/, esp_nn/), which replace the portable
kernels of the same name. :func:`makefile` is the same build for ``make`` by hand.

:func:`static_library` is the cache itself; ``tinygen.targets.tflm`` builds TFLM with it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tinygen.targets import TargetError

CACHE_ENV = "TINYGEN_NN_CACHE"


@dataclass(frozen=True)
class Library:
    backend: str  # the --backend that uses it
    name: str  # as its authors spell it
    version: str  # the version the generated projects pin
    env: str  # the environment variable that names the user's checkout
    make_var: str  # the Makefile variable (default: $(env))
    probe: str  # a file every checkout has, relative to its root
    pattern: str  # the sources tinygen compiles, a glob relative to the root
    includes: tuple[str, ...]  # include folders, relative to the root
    flags: tuple[str, ...]  # the library's own build flags (before the includes)
    archive: str  # the static library's file name

    def adapter_flags(self, tree: str | Path) -> list[str]:
        """What tinygen's adapters need to see the library's public headers."""
        return [f"-I{tree}/{self.includes[0]}"]


LIBRARIES: dict[str, Library] = {
    # CMSIS-NN's README: compile with builtins and without frame pointers (its MVE inline
    # assembly runs out of registers with one: ARM-software/CMSIS-NN#183); never with
    # CMSIS_NN_USE_SINGLE_ROUNDING, which rounds unlike TFLM's reference kernels.
    "cmsis-nn": Library("cmsis-nn", "CMSIS-NN", "v7.0.0", "TINYGEN_CMSIS_NN", "CMSIS_NN",
                        "Include/arm_nnfunctions.h", "Source/*/*.c", ("Include",),
                        ("-O2", "-fomit-frame-pointer", "-fbuiltin"), "libcmsis-nn.a"),
    # ESP-NN's own build options (its CMakeLists.txt); third-party code, not held to
    # -Werror. Only the ANSI C path: its ESP32-S3 assembly needs the S3 core.
    "esp-nn": Library("esp-nn", "ESP-NN", "v1.1.2", "TINYGEN_ESP_NN", "ESP_NN",
                      "include/esp_nn.h", "src/*/*_ansi.c", ("include", "src/common"),
                      ("-std=c99", "-O2", "-Wno-unused-function"), "libesp-nn.a"),
}


def a_checkout(lib: Library) -> str:
    """'an esp-nn v1.1.2 checkout', 'a cmsis-nn v7.0.0 checkout'."""
    return f"{'an' if lib.backend[0] in 'aeiou' else 'a'} {lib.backend} {lib.version} checkout"


def of(backend: str) -> Library | None:
    return LIBRARIES.get(backend)


def root(backend: str, target: str) -> Path:
    """The checkout ``$ENV`` points at, checked; a one-line error when it is unset or
    is not the library."""
    lib = LIBRARIES[backend]
    value = os.environ.get(lib.env, "")
    what = "ANSI C kernels" if backend == "esp-nn" else "kernels"
    if not value:
        raise TargetError(f"--backend {backend} on {target} compiles {lib.name}'s {what}, "
                          f"and ${lib.env} is not set",
                          f"set {lib.env} to {a_checkout(lib)}, or build with --backend "
                          "portable")
    tree = Path(value)
    if not (tree / lib.probe).is_file():
        raise TargetError(f"${lib.env}={value} is not {a_checkout(lib)} (no {lib.probe})",
                          f"point it at {a_checkout(lib)}")
    return tree.resolve()


def sources(lib: Library, tree: Path) -> list[str]:
    """The library's sources tinygen compiles, relative to ``tree``, sorted."""
    return sorted(str(p.relative_to(tree)) for p in tree.glob(lib.pattern))


def build_flags(lib: Library, tree: str | Path, core: tuple[str, ...] | list[str]) -> list[str]:
    return [*lib.flags, *core, *[f"-I{tree}/{d}" for d in lib.includes]]


def cache_dir(env: str = CACHE_ENV, name: str = "nn") -> Path:
    value = os.environ.get(env, "")
    if value:
        return Path(value)
    base = os.environ.get("XDG_CACHE_HOME", "") or str(Path.home() / ".cache")
    return Path(base) / "tinygen" / name


def static_library(cache: Path, compiler: str, ar: str, flags: list[str], tree: Path,
                   srcs: list[str], archive: str,
                   run: Callable[[list[str], Path, str], None]) -> Path:
    """``srcs`` (relative to ``tree``) compiled by ``compiler`` with ``flags`` into the
    static library ``archive`` (members in source order): from ``cache``, or compiled now
    (in parallel) and cached under a key of the checkout, its COMMIT file, the compiler's
    real path, the flags and the sources. ``run(cmd, cwd, what)`` runs one tool and
    raises TargetError when it fails."""
    commit = tree / "COMMIT"
    real = os.path.realpath(shutil.which(compiler.split()[0]) or compiler)
    key = hashlib.sha256("\n".join(
        [str(tree), commit.read_text() if commit.is_file() else "", real,
         *compiler.split()[1:], *flags, *srcs]).encode()).hexdigest()[:16]
    lib = cache / key / archive
    if lib.is_file():
        return lib
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache))
    try:
        names = [Path(s).with_suffix(".o").name for s in srcs]
        if len(set(names)) != len(names):  # one folder of objects: each name once
            names = [f"{k:03d}.o" for k in range(len(srcs))]

        def compile_one(item: tuple[str, str]) -> None:
            src, obj = item
            run([*compiler.split(), *flags, "-c", str(tree / src), "-o", obj], work,
                f"{compiler} for {src}")

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(compile_one, zip(srcs, names, strict=True)))
        run([ar, "rcs", archive, *names], work, f"{ar} for {archive}")
        for obj in names:
            (work / obj).unlink()
        try:
            work.rename(lib.parent)
        except OSError:  # another process cached the same library meanwhile
            if not lib.is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return lib


def library(backend: str, target: str, cc: str, ar: str, core: tuple[str, ...]) -> Path:
    """The backend's library for ``cc`` and ``core`` flags (cached; see the module)."""
    from tinygen.targets.qemu import _check

    lib = LIBRARIES[backend]
    tree = root(backend, target)

    def run(cmd: list[str], cwd: Path, what: str) -> None:
        _check(cmd, cwd, what, f"check the {lib.name} checkout; if it is {lib.version}, "
                               "report it")

    return static_library(cache_dir(), cc, ar, build_flags(lib, tree, core), tree,
                          sources(lib, tree), lib.archive, run)


# The Makefile part that builds the library from $(VAR) (default: $ENV) into
# OUT/<folder>/<objects>/ and archives it, as :func:`library` does.
MAKEFILE = """\
{var} ?= $({env})
override {var} := $(abspath $({var}))
{var}_SRC = $(sort $(wildcard $({var})/{pattern}))
{var}_FLAGS = {flags}
{var}_LIB = {objects}/{archive}
"""
MAKEFILE_RULE = """
$({var}_LIB): $({var}_SRC)
\t@test -f $({var})/{probe} || {{ echo "set {var} or {env} to {checkout}"; exit 1; }}
\trm -rf {objects} && mkdir {objects}
\tcd {objects} && $(CC) $({var}_FLAGS) -c $({var}_SRC)
\tcd {objects} && $(AR) rcs {archive} $(notdir $({var}_SRC:.c=.o))
"""


def makefile(backend: str, core: tuple[str, ...] | list[str]) -> tuple[str, str]:
    """The variables and the rule of a Makefile that builds the backend's library (its
    path: ``$(VAR_LIB)``); CC and AR are the Makefile's."""
    lib = LIBRARIES[backend]
    fields = {"var": lib.make_var, "env": lib.env, "pattern": lib.pattern,
              "flags": " ".join(build_flags(lib, f"$({lib.make_var})", core)),
              "objects": lib.backend, "archive": lib.archive, "probe": lib.probe,
              "checkout": a_checkout(lib)}
    return MAKEFILE.format(**fields), MAKEFILE_RULE.format(**fields)


def make_kernels(backend: str, adapters: list[str], portable: str) -> str:
    """A Makefile's kernel sources: ``portable`` (an expression that lists OUT's portable
    kernels) minus those the backend's ``adapters`` replace, then the adapters."""
    folder = {"cmsis-nn": "cmsis_nn", "esp-nn": "esp_nn"}[backend]
    replaced = " ".join(f"../lib/tinygen/portable/{f}" for f in adapters)
    return (f"$(filter-out {replaced}, {portable}) \\\n      "
            + " ".join(f"../lib/tinygen/{folder}/{f}" for f in adapters))

