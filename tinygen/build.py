"""``tinygen build``: model -> int8 -> plan -> C -> target, written to OUT atomically.

Everything is produced in a temp folder beside OUT and renamed into place at the end, so
OUT is complete or untouched. The same model and flags give byte-identical files.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinygen import __version__
from tinygen.audio_build import audio_input_range, audio_tables
from tinygen.cdecl import c_text
from tinygen.compiler import codegen, plan
from tinygen.compiler.capture import parameter_counts
from tinygen.compiler.ir import Graph
from tinygen.compiler.pipeline import Compiled, compile_model
from tinygen.compiler.stream import CompiledStep
from tinygen.errors import TinygenError
from tinygen.fsutil import OutputError
from tinygen.resources import firmware_dir, templates_dir
from tinygen.targets import TargetContext, check_target, copy_runtime, target_module


@dataclass
class BuildOptions:
    target: str = "host"
    backend: str = "portable"
    force: bool = False
    vectors: int = 16  # test vectors written to OUT/test_vectors
    compiler: str | None = None
    board: str | None = None  # PlatformIO board for cortex-m / esp32 targets
    app: str = "selftest"  # selftest (run the test vectors) | listen (microphone -> text)
    words: tuple[str, ...] = ()  # --words: a command list for --app listen (checked entries)
    inputs: tuple[Path, ...] = field(default_factory=tuple)  # files OUT must not hold
    # how to compile the model again (MODEL, --window-ms, --calib, --data), kept in
    # report.json so that `tinygen verify OUT --audio` can rebuild the golden reference
    source: dict[str, Any] | None = None


# Every OUT that build writes holds this file; --force replaces only a folder that has it.
MARKER = ".tinygen-out"
# The temp folder beside OUT is ".<name>.<random>": leave room for it under NAME_MAX (255).
MAX_NAME_BYTES = 200


def macs(graph: Graph) -> int:
    """Multiply-accumulates of one inference of the int8 graph."""
    total = 0
    for n in graph.nodes:
        p = n.attrs.get("params")
        out = graph.values[n.outputs[0]].shape
        if n.op == "fully_connected":
            w = graph.values[n.inputs[1]].shape
            total += int(np.prod(out[:-1])) * w[0] * w[1]
        elif n.op == "conv2d":
            w = graph.values[n.inputs[1]].shape
            total += int(np.prod(out)) * w[1] * w[2] * w[3]
        elif n.op == "depthwise_conv2d":
            w = graph.values[n.inputs[1]].shape
            total += int(np.prod(out)) * w[1] * w[2]
        elif n.op == "batch_matmul":
            a = graph.values[n.inputs[0]].shape
            k = a[-2] if p.adj_x else a[-1]
            total += int(np.prod(out)) * k
    return total


def check_out(out: Path, force: bool, inputs: Sequence[Path] = ()) -> None:
    """Refuse an OUT that build must not write, before anything is computed.

    Without --force OUT must be absent or an empty folder. With --force a non-empty OUT
    is replaced only if an earlier build wrote it (it holds MARKER) and it holds none of
    ``inputs``. The root, the home folder, the current folder and its ancestors are never
    OUT. See docs/errors.md.
    """
    try:
        _check_out(out, force, inputs)
    except OSError as err:
        raise OutputError(f"cannot use {out} as the output folder: {err.strerror}",
                          "choose another -o") from None


def _check_out(out: Path, force: bool, inputs: Sequence[Path]) -> None:
    long = [part for part in out.parts if len(part.encode()) > MAX_NAME_BYTES]
    if long:
        raise OutputError(f"output folder name {long[0][:24]}... is {len(long[0].encode())} "
                          f"bytes long", f"use names of at most {MAX_NAME_BYTES} bytes")
    if out.exists() and not out.is_dir():
        raise OutputError(f"output {out} exists and is not a folder", "choose another -o")
    where = out.resolve()
    cwd = Path.cwd().resolve()
    for special, what in ((Path(where.anchor), "root"), (Path.home().resolve(), "home")):
        if where == special:
            raise OutputError(f"output folder {out} is the {what} folder",
                              "choose a new folder for -o")
    if where == cwd or where in cwd.parents:
        raise OutputError(f"output folder {out} is the current folder or one of its parents",
                          "choose a new folder for -o, e.g. -o build")
    for own in (firmware_dir(), templates_dir()):  # copying them into themselves recurses
        own = own.resolve()
        if where == own or own in where.parents:
            raise OutputError(f"output folder {out} is inside tinygen's own {own.name}/ "
                              "folder", "choose a folder outside the tinygen installation")
    held = [p for p in inputs if where in (Path(p).resolve(), *Path(p).resolve().parents)]
    if held:
        raise OutputError(f"output folder {out} holds the input {held[0]}",
                          "choose another -o; tinygen never replaces its own input")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise OutputError(f"output folder {out} is not empty",
                              "pass --force to replace it, or choose another -o")
        if not (out / MARKER).is_file():
            raise OutputError(f"output folder {out} was not written by tinygen build (no "
                              f"{MARKER} in it), so --force will not replace it",
                              "choose another -o, or delete it yourself")
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"cannot write {out}: {parent} is not a folder",
                          "choose another -o")


def build(model: torch.nn.Module | torch.export.ExportedProgram, out: Path,
          calib: list[np.ndarray], vectors: list[np.ndarray], opts: BuildOptions,
          model_name: str,
          progress: Callable[[int], None] | None = None,
          compiled: Compiled | CompiledStep | None = None) -> dict[str, Any]:
    """Compile and write OUT; returns report.json's content. ``compiled``: the result of
    an earlier compile of the same model and calibration, to build more targets from."""
    check_target(opts.target)
    check_out(out, opts.force, opts.inputs)
    model_name = c_text(model_name)  # a file name such as q"uote.pt reaches C as q_uote
    frames = calib[0].shape[1]
    check_app(opts)
    if _streams(model) and opts.backend == "tflm" and not _steps_on_tflm(opts.target):
        raise BuildError(f"--backend tflm runs a streaming model on host and qemu-* targets "
                         f"only, not on '{opts.target}'",
                         "build it for --target host or qemu-m4/m7/m55, or with --backend "
                         "portable")
    if compiled is not None:
        pass
    elif _streams(model):
        from tinygen.speech.streaming import compile_streaming

        compiled = compile_streaming(model, calib, progress)  # type: ignore[arg-type]
    else:
        compiled = compile_model(model, frames, calib, progress,
                                 input_range=audio_input_range(model))
    planned = plan.make_plan(compiled.int8)
    gen = codegen.generate(compiled.int8, planned, model_name,
                           {"chunk_ms": compiled.int8.meta.get("chunk_ms", 0)})
    audio = audio_tables(model, compiled, model_name)  # {} for a model without a front end
    gen.files.update(audio.files)
    parent = out.parent if str(out.parent) else Path(".")
    created = [p for p in (parent, *parent.parents) if not p.exists()]
    try:
        parent.mkdir(parents=True, exist_ok=True)  # like mkdir -p: -o out/host just works
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    except OSError as err:
        raise OutputError(f"cannot write {out}: {err.strerror}",
                          "choose a writable location") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; OUT gets the mode mkdir would give
        codegen.write_files(tmp, gen.files)
        copy_runtime(tmp)
        vec = _write_vectors(tmp, model, compiled, vectors, opts.backend == "tflm")
        report = _report(model, compiled, planned, gen, opts, len(vec), model_name)
        audio.count(report)
        if opts.words:
            report["words"] = list(opts.words)
        ctx = TargetContext(opts.target, opts.backend, model_name, __version__, report, vec,
                            {"compiler": opts.compiler, "board": opts.board,
                             "plan": planned, "compiled": compiled,  # (backend files, tflm)
                             "app": opts.app})
        module = target_module(opts.target)
        module.write(tmp, ctx)
        module.build(tmp, ctx)
        (tmp / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        from tinygen.report import write_markdown, write_png

        write_markdown(tmp / "report.md", report)
        write_png(tmp / "report.png", compiled.int8, planned, gen)
        (tmp / MARKER).write_text(f"tinygen {__version__}\n")
        _place(tmp, out, opts)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:  # a failed build leaves no folder it made behind
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    return report


def check_app(opts: BuildOptions) -> None:
    """Refuse an --app the target or backend cannot give, before anything is computed."""
    from tinygen.targets.listen import APPS

    if opts.app not in APPS:
        raise BuildError(f"unknown --app '{opts.app}'", f"choose one of: {', '.join(APPS)}")
    if opts.words and opts.app != "listen":
        raise BuildError("--words is a command list for --app listen",
                         "add --app listen, or drop --words")
    if opts.app != "listen":
        return
    if opts.backend == "tflm":
        raise BuildError("--app listen runs tinygen's own kernels, not --backend tflm",
                         "build it with --backend portable, cmsis-nn or esp-nn")
    if opts.target == "qemu-xtensa":
        raise BuildError("--app listen on qemu-xtensa: its semihosting cannot read the "
                         "audio file", "use qemu-m4, qemu-m7 or qemu-m55")
    from tinygen.targets import TARGETS, boards, listen

    if TARGETS[opts.target].module == "platformio":
        listen.check_board(boards.resolve(opts.target, opts.board))


def _place(tmp: Path, out: Path, opts: BuildOptions) -> None:
    """Rename the finished ``tmp`` to ``out``; a forced replace re-checks OUT first."""
    try:
        os.rename(tmp, out)  # a new name, or an empty folder: replaced atomically
        return
    except OSError as err:
        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise OutputError(f"cannot write {out}: {err.strerror}",
                              "choose another -o") from None
    # OUT is not empty now; check it again, since it may have changed during the build
    if not opts.force:
        raise OutputError(f"output folder {out} was filled by something else during the "
                          "build", "choose another -o, or pass --force")
    check_out(out, opts.force, opts.inputs)
    old = Path(tempfile.mkdtemp(prefix=f".{out.name[:40]}.old.", dir=tmp.parent))
    os.rename(out, old / "out")
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old / "out", out)
        shutil.rmtree(old, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _streams(model: torch.nn.Module) -> bool:
    return bool(getattr(getattr(model, "cfg", None), "streaming", False))


def _steps_on_tflm(target: str) -> bool:
    """Whether ``target``'s tflm firmware steps a stream (host and QEMU Arm boards; the
    board projects' TFLM mains run one window)."""
    from tinygen.targets import qemu

    return target == "host" or target in qemu.BOARDS


def _write_stream_vectors(folder: Path, model: torch.nn.Module, compiled: CompiledStep,
                          vectors: list[np.ndarray], tflite_flavour: bool = False
                          ) -> list[tuple[bytes, bytes]]:
    """A streaming model's test vector is a whole stream: ``input_K.bin`` its chunks one
    after another, ``expected_K.bin`` the golden step's outputs from the silence state (of
    the .tflite flavour's step and its own silence state for a tflm build),
    ``float_K.bin`` the float step's."""
    from tinygen.speech.streaming import chunks_of

    start_q = compiled.start_state(tflite_flavour)
    written = []
    for k, x in enumerate(vectors):
        chunks = chunks_of(x, model.cfg)  # type: ignore[union-attr]
        xq = [compiled.quantize_input(c) for c in chunks]
        expected = b"".join(y.tobytes()
                            for y in compiled.stream_int8(xq, start_q, tflite_flavour))
        state, floats = list(compiled.float_start), []
        for c in chunks:
            y, state = compiled.run_float(c, state)
            floats.append(y.astype("<f4").tobytes())
        inp = b"".join(q.tobytes() for q in xq)
        (folder / f"input_{k}.bin").write_bytes(inp)
        (folder / f"expected_{k}.bin").write_bytes(expected)
        (folder / f"float_{k}.bin").write_bytes(b"".join(floats))
        written.append((inp, expected))
    return written


def _write_vectors(root: Path, model: torch.nn.Module, compiled: Compiled | CompiledStep,
                   vectors: list[np.ndarray], tflite_flavour: bool = False
                   ) -> list[tuple[bytes, bytes]]:
    """Test vectors: inputs, golden outputs (of the .tflite flavour for a tflm build:
    TFLM decomposes LayerNorm into builtins) and float outputs."""
    folder = root / "test_vectors"
    folder.mkdir()
    if isinstance(compiled, CompiledStep):
        return _write_stream_vectors(folder, model, compiled, vectors, tflite_flavour)
    written = []
    for k, x in enumerate(vectors):
        xq = compiled.quantize_input(x).tobytes()
        expected = compiled.run_int8(np.frombuffer(xq, np.int8), tflite_flavour).tobytes()
        (folder / f"input_{k}.bin").write_bytes(xq)
        (folder / f"expected_{k}.bin").write_bytes(expected)
        (folder / f"float_{k}.bin").write_bytes(
            compiled.run_float(x).astype("<f4").tobytes())
        written.append((xq, expected))
    return written


def _io(compiled: Compiled | CompiledStep, name: str) -> dict[str, Any]:
    v = compiled.int8.values[name]
    assert v.quant is not None
    return {"shape": list(v.shape), "dtype": v.dtype, "scale": v.quant.s,
            "zero_point": v.quant.zp}


def _report(model: torch.nn.Module | torch.export.ExportedProgram,
            compiled: Compiled | CompiledStep, planned: plan.Plan, gen: codegen.Generated,
            opts: BuildOptions, vectors: int, model_name: str) -> dict[str, Any]:
    g = compiled.int8
    cfg = getattr(model, "cfg", None)
    report: dict[str, Any] = {
        "tinygen_version": __version__,
        "model": cfg.name if cfg is not None else model_name,
        "target": opts.target,
        "backend": opts.backend,
        "input": _io(compiled, g.inputs[0]),
        "output": _io(compiled, g.outputs[0]),
        "flash": {
            "weights_bytes": gen.weights_bytes,
            "quant_bytes": gen.quant_bytes,
            "schedule_bytes": gen.schedule_bytes,
            "total_bytes": gen.weights_bytes + gen.quant_bytes + gen.schedule_bytes,
        },
        "arena_bytes": planned.scratch_bytes,
        "macs_per_inference": macs(g),
        "ops": g.op_counts(),
        "steps": len(planned.steps),
        "segments": len(planned.segments),
        "programs": len(planned.programs),
        "param_records": gen.param_records,
        "weight_arrays": sum(1 for a in gen.pool.arrays if a.kind == "weights"),
        "calibration_inputs": compiled.ranges.samples,
        "test_vectors": vectors,
    }
    if opts.source is not None:
        report["source"] = opts.source
    if isinstance(compiled, CompiledStep):
        report["flash"]["state_init_bytes"] = planned.state_bytes
        report["flash"]["total_bytes"] += planned.state_bytes
        report["streaming"] = _stream_report(model, compiled, planned)
    else:
        report["window_frames"] = compiled.frames
    report.update(parameter_counts(g))
    if cfg is not None:
        report.update(virtual_layers=cfg.virtual_layers, unique_blocks=cfg.unique_blocks)
    return report


def _stream_report(model: torch.nn.Module, compiled: CompiledStep,
                   planned: plan.Plan) -> dict[str, Any]:
    """State, RAM, latency and cost of a streaming step, and the state's layout."""
    from tinygen.speech.streaming import state_specs

    cfg = model.cfg  # type: ignore[union-attr]
    g = compiled.int8
    per_step = macs(g)
    steps_per_s = 1000.0 / cfg.chunk_ms
    layout = []
    for name, spec in zip(planned.state, state_specs(cfg), strict=True):
        v = g.values[name]
        layout.append({"tensor": spec.name, "shape": list(v.shape),
                       "offset": planned.offset(name),
                       "bytes": int(np.prod(v.shape, dtype=np.int64))})
    return {
        "chunk_frames": cfg.chunk_frames,
        "left_chunks": cfg.left_chunks,
        "input_frames_per_step": cfg.chunk_feature_frames,
        "chunk_ms": cfg.chunk_ms,
        "lookahead_ms": 0.0,
        "latency_ms": cfg.chunk_ms,
        "state_bytes": planned.state_bytes,
        "arena_bytes": planned.scratch_bytes,
        "ram_bytes": planned.arena_bytes,
        "macs_per_step": per_step,
        "macs_per_second": round(per_step * steps_per_s),
        "state": layout,
    }


class BuildError(TinygenError):
    """A build that cannot proceed."""
