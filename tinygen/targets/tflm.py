"""TensorFlow Lite Micro as a backend: the one source list and flag set, the library build,
and the ``--backend tflm`` files of the host and qemu-m4/m7/m55 targets.

The source list is TFLM's framework (interpreter, allocator, memory planners, flatbuffer
parsing) plus the reference kernels of the ops tinygen's .tflite export can hold
(:data:`RESOLVER`): nothing else of the tree is compiled. The generated PlatformIO
projects (``tinygen.targets.platformio``) build the same list with the same flags; the
host and QEMU targets compile it here, from the esp-tflite-micro checkout
``$TINYGEN_TFLM`` points at, into a static library cached per compiler and flag set (in
``$TINYGEN_TFLM_CACHE``, else ``$XDG_CACHE_HOME/tinygen/tflm``), so it is compiled once.

A tflm build for host or qemu-* writes ``OUT/tflm/``: the .tflite export as a C array
(``tinygen_tflite.{c,h}``, the board projects' templates) and ``tg_tflm_model.cc``, which
implements ``tinygen_model.h``'s API (init, input, invoke, output) with a
MicroInterpreter whose op resolver and arena size come from the model. The targets' own
mains (host/main.c, qemu/main.c) then run it unchanged: the same stdin/stdout and
``tg_out K <hex>`` protocol, so ``tinygen verify`` works as for tinygen's own kernels.

A streaming model's .tflite is its step (``CompiledStep.tflite_int8``): the new chunk and
the state in, the logits and the new state out, the state as plain int8 inputs and outputs
with one quantization per pair. ``tg_tflm_model.cc`` then implements tg_model_reset() and
tg_model_step(): it keeps the state in a static buffer beside TFLM's arena, copies it into
the state inputs before each Invoke and the state outputs back after it; a reset copies
the .tflite step's own silence state (its fixed point on silence) from flash.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tinygen.compiler.stream import CompiledStep
from tinygen.targets import TargetContext, TargetError

ENV = "TINYGEN_TFLM"
CACHE_ENV = "TINYGEN_TFLM_CACHE"
FOLDER = "tflm"  # OUT/tflm/
LIBRARY = "libtflm.a"

# IR op of the .tflite flavour graph -> MicroMutableOpResolver method, and the reference
# kernel sources (tensorflow/lite/micro/kernels/) that register it.
RESOLVER = {
    "fully_connected": "AddFullyConnected", "conv2d": "AddConv2D",
    "depthwise_conv2d": "AddDepthwiseConv2D", "batch_matmul": "AddBatchMatMul",
    "add": "AddAdd", "sub": "AddSub", "mul": "AddMul",
    "squared_difference": "AddSquaredDifference", "logistic": "AddLogistic",
    "rsqrt": "AddRsqrt", "relu": "AddRelu", "softmax": "AddSoftmax", "mean": "AddMean",
    "transpose": "AddTranspose", "reshape": "AddReshape", "split": "AddSplit",
    "log_softmax": "AddLogSoftmax", "slice": "AddSlice", "concat": "AddConcatenation",
    "pad": "AddPad",  # in front of an explicitly padded convolution
}
KERNELS = {
    "fully_connected": ("fully_connected", "fully_connected_common"),
    "conv2d": ("conv", "conv_common"),
    "depthwise_conv2d": ("depthwise_conv", "depthwise_conv_common"),
    "batch_matmul": ("batch_matmul", "batch_matmul_common"),
    "add": ("add", "add_common"), "sub": ("sub", "sub_common"), "mul": ("mul", "mul_common"),
    "squared_difference": ("squared_difference",),
    "logistic": ("logistic", "logistic_common"), "rsqrt": ("elementwise",),
    "relu": ("activations", "activations_common"),
    "softmax": ("softmax", "softmax_common"), "mean": ("reduce", "reduce_common"),
    "transpose": ("transpose", "transpose_common"), "reshape": ("reshape", "reshape_common"),
    "split": ("split",), "log_softmax": ("log_softmax",), "slice": ("slice",),
    "concat": ("concatenation",), "pad": ("pad", "pad_common"),
}
# The framework: what a MicroInterpreter with one SingleArenaBufferAllocator links of
# tensorflow/lite/micro/ and the TFLite core (checked with nm against a linked firmware);
# the profiler, timers, recording allocators and the LSTM/SVDF helpers are left out.
FRAMEWORK = (
    "tensorflow/lite/micro/debug_log.cc", "tensorflow/lite/micro/flatbuffer_utils.cc",
    "tensorflow/lite/micro/memory_helpers.cc", "tensorflow/lite/micro/micro_allocation_info.cc",
    "tensorflow/lite/micro/micro_allocator.cc", "tensorflow/lite/micro/micro_context.cc",
    "tensorflow/lite/micro/micro_interpreter.cc",
    "tensorflow/lite/micro/micro_interpreter_context.cc",
    "tensorflow/lite/micro/micro_interpreter_graph.cc", "tensorflow/lite/micro/micro_log.cc",
    "tensorflow/lite/micro/micro_op_resolver.cc",
    "tensorflow/lite/micro/micro_resource_variable.cc", "tensorflow/lite/micro/micro_utils.cc",
    "tensorflow/lite/micro/kernels/kernel_util.cc",
    "tensorflow/lite/micro/tflite_bridge/flatbuffer_conversions_bridge.cc",
    "tensorflow/lite/micro/tflite_bridge/micro_error_reporter.cc",
    "tensorflow/lite/micro/memory_planner/greedy_memory_planner.cc",
    "tensorflow/lite/micro/memory_planner/linear_memory_planner.cc",
    "tensorflow/lite/micro/arena_allocator/non_persistent_arena_buffer_allocator.cc",
    "tensorflow/lite/micro/arena_allocator/persistent_arena_buffer_allocator.cc",
    "tensorflow/lite/micro/arena_allocator/single_arena_buffer_allocator.cc",
    "tensorflow/lite/core/c/common.cc", "tensorflow/lite/core/api/flatbuffer_conversions.cc",
    "tensorflow/lite/kernels/kernel_util.cc", "tensorflow/lite/kernels/internal/common.cc",
    "tensorflow/lite/kernels/internal/portable_tensor_utils.cc",
    "tensorflow/lite/kernels/internal/quantization_util.cc",
    "tensorflow/lite/kernels/internal/tensor_ctypes.cc",
    "tensorflow/lite/kernels/internal/reference/portable_tensor_utils.cc",
    "tensorflow/compiler/mlir/lite/core/api/error_reporter.cc",
    "tensorflow/compiler/mlir/lite/schema/schema_utils.cc",
)
INCLUDES = (".", "third_party/flatbuffers/include", "third_party/gemmlowp", "third_party/ruy",
            "third_party/kissfft")
# C++ flags of every TFLM build (board projects included); the target adds its core flags.
FLAGS = ("-std=gnu++17", "-fno-exceptions", "-fno-rtti", "-fno-threadsafe-statics",
         "-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON", "-O2",
         "-Wno-unused-parameter")


def sources() -> list[str]:
    """Every TFLM source a tinygen tflm build compiles, relative to the tree's root."""
    kernels = sorted({f"tensorflow/lite/micro/kernels/{k}.cc"
                      for files in KERNELS.values() for k in files})
    return [*FRAMEWORK, *kernels]


def root() -> Path:
    """The esp-tflite-micro checkout $TINYGEN_TFLM points at."""
    value = os.environ.get(ENV, "")
    if not value:
        raise TargetError(f"--backend tflm on host and qemu-* targets compiles TensorFlow "
                          f"Lite Micro, and ${ENV} is not set",
                          f"set {ENV} to an esp-tflite-micro v1.3.8 checkout")
    tree = Path(value)
    if not (tree / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").is_file():
        raise TargetError(f"${ENV}={value} is not an esp-tflite-micro checkout (no "
                          "tensorflow/lite/micro/micro_interpreter.h)",
                          "point it at an esp-tflite-micro v1.3.8 checkout")
    return tree.resolve()


def cache_dir() -> Path:
    value = os.environ.get(CACHE_ENV, "")
    if value:
        return Path(value)
    base = os.environ.get("XDG_CACHE_HOME", "") or str(Path.home() / ".cache")
    return Path(base) / "tinygen" / "tflm"


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    from tinygen.targets.qemu import _check

    _check(cmd, cwd, what, "check the TFLM checkout; if it is v1.3.8, report it")


def library(cxx: str, ar: str, core_flags: tuple[str, ...], tree: Path | None = None) -> Path:
    """The static library of :func:`sources` compiled by ``cxx`` with :data:`FLAGS` plus
    ``core_flags``: from the cache, or compiled now (in parallel) and cached."""
    from tinygen.targets.nnlib import static_library

    tree = tree or root()
    flags = [*FLAGS, *core_flags, *[f"-I{tree / d}" for d in INCLUDES]]
    return static_library(cache_dir(), cxx, ar, flags, tree, sources(), LIBRARY, _run)


def _compiled(ctx: TargetContext) -> Any:
    compiled = ctx.options.get("compiled")
    if compiled is None:
        raise TargetError("the tflm backend needs the compiled model",
                          "build through tinygen.build.build")
    return compiled


def state_sizes(ctx: TargetContext) -> list[int]:
    """Bytes of each state tensor of a streaming step, in input order ([] for a window)."""
    compiled = _compiled(ctx)
    if not isinstance(compiled, CompiledStep):
        return []
    return [int(np.prod(s, dtype=np.int64)) for s in compiled.state_shapes()]


def export(ctx: TargetContext) -> tuple[bytes, dict[str, Any]]:
    """The .tflite export and TFLM's facts for it: its bytes, the arena TFLM uses on the
    host, the arena to reserve and the ops; for a streaming step also the state a runner
    keeps beside the arena (``state_bytes``, by tensor in ``state_tensor_bytes``)."""
    from tinygen.tflite.export import to_tflite
    from tinygen.tflite.runner import tflm_arena_bytes, tflm_min_arena_bytes

    compiled = _compiled(ctx)
    graph = compiled.tflite_int8
    blob, _ = to_tflite(graph)
    measured = tflm_arena_bytes(blob)
    # host (64-bit) count + 10 % + 8 KiB: target structs are smaller, kernel scratch
    # larger; and at least what TFLM's memory planner needs on the host + 8 KiB (it needs
    # more than the tensors for a streaming step's many small ones)
    need = tflm_min_arena_bytes(blob, measured * 11 // 10)
    arena = need + 8 * 1024
    ops = graph.op_counts()
    pads = sum(1 for n in graph.nodes if n.attrs.get("padding") == "EXPLICIT")
    if pads:  # the export puts a PAD op in front of each (TFLite has SAME/VALID only)
        ops["pad"] = pads
    info = {"model_bytes": len(blob), "measured_arena_bytes": measured,
            "arena_bytes": arena, "ops": dict(sorted(ops.items()))}
    sizes = state_sizes(ctx)
    if sizes:
        info.update(state_bytes=sum(sizes), state_tensor_bytes=sizes)
    return blob, info


def expected(ctx: TargetContext, inputs: list[bytes]) -> list[bytes]:
    """The golden outputs of the .tflite flavour (TFLM decomposes LayerNorm into
    builtins, so its outputs are those, not the fused graph's). For a streaming step each
    input is a whole stream, stepped from the flavour's own silence state."""
    compiled = _compiled(ctx)
    if isinstance(compiled, CompiledStep):
        shape = compiled.int8.values[compiled.int8.inputs[0]].shape
        size = int(np.prod(shape))
        start = compiled.start_state(tflite_flavour=True)
        return [b"".join(y.tobytes() for y in compiled.stream_int8(
            [np.frombuffer(x[k:k + size], np.int8).reshape(shape)
             for k in range(0, len(x), size)], start, tflite_flavour=True)) for x in inputs]
    return [compiled.run_int8(np.frombuffer(x, np.int8), tflite_flavour=True).tobytes()
            for x in inputs]


def resolver(ops: dict[str, int] | list[str]) -> list[str]:
    missing = sorted(set(ops) - set(RESOLVER))
    if missing:
        raise TargetError(f"no TFLM op resolver entry for {', '.join(missing)}",
                          "this is a tinygen bug; please report it with the model")
    return sorted({RESOLVER[op] for op in ops})


def write(out: Path, ctx: TargetContext) -> dict[str, Any]:
    """OUT/tflm/: the .tflite as a C array and the model API on a MicroInterpreter.
    Returns report.json's ``tflm`` entry."""
    from tinygen.cdecl import int_list
    from tinygen.compiler.codegen import int8_literal, render

    blob, info = export(ctx)
    folder = out / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    common = {"version": ctx.version, "model_name": ctx.model_name}
    sizes = state_sizes(ctx)
    state: dict[str, Any] = {"state": sizes}
    if sizes:
        init = _compiled(ctx).start_state(tflite_flavour=True)
        state.update(state_sizes=int_list(np.array(sizes), per_line=8),
                     state_init=int8_literal(np.concatenate([s.reshape(-1) for s in init])))
    (folder / "tinygen_tflite.h").write_text(render(
        "platformio/tinygen_tflite.h.j2", **common, model_bytes=len(blob),
        measured=info["measured_arena_bytes"], arena_bytes=info["arena_bytes"], **state))
    (folder / "tinygen_tflite.c").write_text(render(
        "platformio/tinygen_tflite.c.j2", **common, model_bytes=len(blob),
        body=int8_literal(np.frombuffer(blob, np.int8)), **state))
    (folder / "tg_tflm_model.cc").write_text(render(
        "tflm/tg_tflm_model.cc.j2", **common, resolver=resolver(info["ops"]),
        streaming=bool(sizes)))
    return {**info, "resolver": resolver(info["ops"]), "sources": len(sources())}


def model_sources(out: Path, rel: str = "") -> list[str]:
    """OUT/tflm's sources (relative paths with ``rel`` in front: ``../`` from OUT/qemu)."""
    return [f"{rel}{FOLDER}/{name}" for name in ("tinygen_tflite.c", "tg_tflm_model.cc")]


def compile_and_link(cc: str, cxx: str, ar: str, cwd: Path, c_sources: list[str],
                     c_flags: list[str], core: tuple[str, ...], ldflags: list[str],
                     exe: str, extra: tuple[str, ...] = (), cxx_extra: tuple[str, ...] = ()
                     ) -> None:
    """Build ``exe`` in ``cwd``: ``c_sources`` with ``cc`` and ``c_flags`` (the target's
    own C build), OUT/tflm/tg_tflm_model.cc with ``cxx`` and :data:`FLAGS`, linked by
    ``cxx`` against TFLM's cached library. Source paths are relative to ``cwd``."""
    tree = root()
    lib = library(cxx, ar, core, tree)
    rel = os.path.relpath(cwd.parent / FOLDER, cwd)
    includes = [f"-I{rel}", f"-I{os.path.relpath(cwd.parent / 'model', cwd)}"]
    with tempfile.TemporaryDirectory(prefix="tinygen-tflm-") as tmp:
        objects = []
        for k, src in enumerate([*c_sources, f"{rel}/tinygen_tflite.c"]):
            obj = str(Path(tmp) / f"{k:02d}.o")
            _run([cc, *c_flags, *extra, *includes, "-c", src, "-o", obj], cwd,
                 f"{cc} for {src}")
            objects.append(obj)
        obj = str(Path(tmp) / "model.o")
        _run([cxx, *FLAGS, *core, *extra, *cxx_extra, "-Wall", "-Wextra", "-Werror", *includes,
              *[a for d in INCLUDES for a in ("-isystem", str(tree / d))], "-c",
              f"{rel}/tg_tflm_model.cc", "-o",
              obj], cwd, f"{cxx} for {rel}/tg_tflm_model.cc")
        _run([cxx, *core, *extra, *objects, obj, str(lib), *ldflags, "-o", exe], cwd,
             f"{cxx} linking {exe}")


MAKEFILE = """\
# Rebuild {exe} by hand (tinygen build did already): make -C {folder}
# TFLM (default: $TINYGEN_TFLM) is the esp-tflite-micro checkout; its sources compile
# once into tflm-lib/libtflm.a.
CC = {cc}
CXX = {cxx}
AR = {ar}
TFLM ?= $({env})
override TFLM := $(abspath $(TFLM))
CFLAGS = {cflags}
TFLM_FLAGS = {flags} {core} {includes}
LDFLAGS = {ldflags}
SRC = {c_sources} ../{tflm}/tinygen_tflite.c
OBJ = $(addprefix obj/,$(notdir $(SRC:.c=.o)))
TFLM_SRC = {tflm_sources}
TFLM_OBJ = $(addprefix tflm-lib/,$(TFLM_SRC:.cc=.o))
vpath %.c . ../{tflm}

{exe}: $(OBJ) obj/tg_tflm_model.o tflm-lib/libtflm.a
\t$(CXX) {core} $^ $(LDFLAGS) -o $@

obj/%.o: %.c
\t@mkdir -p obj
\t$(CC) $(CFLAGS) -I../{tflm} -I../model -c $< -o $@

obj/tg_tflm_model.o: ../{tflm}/tg_tflm_model.cc
\t@mkdir -p obj
\t$(CXX) $(TFLM_FLAGS) {cxx_extra}-Wall -Wextra -Werror -I../{tflm} -I../model -c $< -o $@

tflm-lib/libtflm.a: $(TFLM_OBJ)
\t$(AR) rcs $@ $^

tflm-lib/%.o: $(TFLM)/%.cc
\t@test -f $(TFLM)/{probe} || {{ echo "set TFLM or {env} to a TFLM checkout"; exit 1; }}
\t@mkdir -p $(dir $@)
\t$(CXX) $(TFLM_FLAGS) -c $< -o $@

"""


def makefile(cc: str, cxx: str, ar: str, cflags: list[str], core: tuple[str, ...],
             ldflags: list[str], c_sources: list[str], exe: str, folder: str = "qemu",
             cxx_extra: tuple[str, ...] = ()) -> str:
    """The Makefile that rebuilds ``exe`` with TFLM: what :func:`compile_and_link` runs."""
    return MAKEFILE.format(
        exe=exe, folder=folder, cc=cc, cxx_extra="".join(f"{f} " for f in cxx_extra),
        cxx=cxx, ar=ar, env=ENV, cflags=" ".join(cflags),
        flags=" ".join(FLAGS), core=" ".join(core),
        includes=" ".join(f"-I$(TFLM)/{d}".rstrip("/.") for d in INCLUDES),
        ldflags=" ".join(ldflags), c_sources=" ".join(c_sources), tflm=FOLDER,
        tflm_sources=" \\\n    ".join(sources()),
        probe="tensorflow/lite/micro/micro_interpreter.h")


# Flash of TFLM's framework, the reference kernels a model links, main and libc at -O2
# (about 90 KiB measured on qemu-m4), with a margin; RAM beyond the arena: the resolver,
# the interpreter and libc's buffers.
CODE_ESTIMATE = 160 * 1024
RAM_EXTRA = 4 * 1024


def check_fit(board: Any, ctx: TargetContext, mem: dict[str, int]) -> None:
    """Raise TargetError, with the numbers, if the TFLM firmware cannot fit ``board``
    (a qemu Board; ``mem``: its FLASH, RAM and STACK bytes)."""
    info = ctx.report["tflm"]
    vectors = sum(len(inp) + 1 for inp, _ in ctx.vectors)
    state = info.get("state_bytes", 0)  # a streaming step's: its silence state in flash
    flash_need = info["model_bytes"] + state + vectors + CODE_ESTIMATE
    out_bytes = int(np.prod(ctx.report["output"]["shape"]))
    ram_need = info["arena_bytes"] + state + mem["STACK"] + 2 * out_bytes + RAM_EXTRA
    if flash_need > mem["FLASH"] or ram_need > mem["RAM"]:
        raise TargetError(
            f"model '{ctx.model_name}' with TFLM does not fit {board.target} "
            f"({board.machine}, {board.cpu}): flash needs {flash_need:,} B of "
            f"{mem['FLASH']:,} B available (.tflite {info['model_bytes']:,}, "
            + (f"silence state {state:,}, " if state else "")
            + f"{len(ctx.vectors)} test vectors {vectors:,}, code estimate "
            f"{CODE_ESTIMATE:,}); RAM needs {ram_need:,} B of {mem['RAM']:,} B available "
            f"(TFLM arena {info['arena_bytes']:,}, "
            + (f"state {state:,}, " if state else "")
            + f"stack {mem['STACK']:,}, buffers {2 * out_bytes + RAM_EXTRA:,})",
            "choose a smaller model or fewer --vectors, or build with --backend portable")


def host_cxx(cc: str) -> str:
    """The C++ compiler beside the host C compiler ``cc`` ($CXX first)."""
    for cand in (os.environ.get("CXX", ""), cc.replace("clang", "clang++").replace(
            "gcc", "g++"), "g++", "c++"):
        if cand and cand != cc and shutil.which(cand.split()[0]):
            return cand
    raise TargetError("no C++ compiler found (looked for $CXX, g++, c++)",
                      "install one, e.g. `apt-get install g++`")
