"""Bring your own model: where a model comes from, and the Python API.

Routes, one per thing a user has:

- ``preset:NAME`` or a tinygen checkpoint: tinygen's own Conformer (``speech.checkpoint``);
- ``model.pt2``: a ``torch.export.save``d ExportedProgram, compiled as exported (the input
  shape is the exported one);
- ``--module pkg.mod:factory [--weights state_dict.pt]``: the user's own code, imported
  from the current folder (a trusted local file), ``factory()`` called, the state_dict
  loaded with ``weights_only=True``; ``--input-shape FRAMES,FEATURES`` says what it takes.

Every other file a user might hand over (TorchScript, a pickled ``nn.Module``, a bare
state_dict, ONNX, .tflite, anything else) is named in one line with the way to compile
it, before anything is unpickled or imported.

Sharing survives every route: the compiler keys parameters by their storage, so tied
names that ``torch.export.load`` turns into separate tensor objects are still one
weight. :func:`untied_duplicates` reports parameters that hold identical values in
separate storage (a route, or the user's code, broke a tie).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinygen.errors import TinygenError

EXPORT_HOWTO = ("torch.export.save(torch.export.export(model.eval(), (x,)), 'model.pt2') "
                "and build model.pt2")


class ModelSourceError(TinygenError):
    """The model cannot be loaded from what the user gave."""


@dataclass
class Source:
    """A model ready to compile, and what is known about its input."""

    model: torch.nn.Module | torch.export.ExportedProgram
    name: str
    cfg: Any | None = None  # tinygen's ConformerConfig, for tinygen's own models
    shape: tuple[int, int] | None = None  # (frames, features) when the source fixes it

    def frames(self, window_ms: float) -> int:
        if self.shape is not None:
            return self.shape[0]
        from tinygen.speech.calib import window_frames

        return window_frames(self.cfg, window_ms)

    def inputs(self, frames: int, n: int, seed: int, data: Path | None,
               split: str) -> list[np.ndarray]:
        """Calibration / test windows: tinygen's log-mel front end with the model's
        feature count (speech-like synthetic signals, or the --data corpus)."""
        from tinygen.speech.calib import inputs

        return inputs(self.feature_config(), frames, n, seed, data=data, split=split)

    def feature_config(self) -> Any:
        if self.cfg is not None:
            return self.cfg
        from dataclasses import replace

        from tinygen.speech.config import ConformerConfig

        assert self.shape is not None
        return replace(ConformerConfig(), n_mels=self.shape[1])


# ------------------------------------------------------------------------ the CLI hook
def add_arguments(p: argparse.ArgumentParser) -> None:
    """The bring-your-own-model options of build / info / export-tflite."""
    p.add_argument("--module", default=None, metavar="PKG.MOD:FACTORY",
                   help="compile the nn.Module that FACTORY() in your module returns "
                        "(imported from the current folder); instead of MODEL")
    p.add_argument("--weights", type=Path, default=None, metavar="STATE_DICT",
                   help="a state_dict file (torch.save(model.state_dict())) loaded into "
                        "the --module model with weights_only")
    p.add_argument("--input-shape", default=None, metavar="FRAMES,FEATURES",
                   help="the input a --module model takes, (1, FRAMES, FEATURES); a .pt2 "
                        "carries its own")


def load(args: argparse.Namespace) -> Source:
    """The model of a command line: MODEL (preset, checkpoint, .pt2) or --module."""
    model, module = getattr(args, "model", None), getattr(args, "module", None)
    shape = parse_shape(args.input_shape) if getattr(args, "input_shape", None) else None
    if module:
        if model:
            raise ModelSourceError(f"both MODEL ({model}) and --module given",
                               "give one of them")
        return load_module(module, getattr(args, "weights", None), shape)
    if not model:
        raise ModelSourceError("no model given", "give MODEL (preset:NAME, a checkpoint or a "
                           ".pt2) or --module pkg.mod:factory")
    if getattr(args, "weights", None):
        raise ModelSourceError("--weights goes with --module",
                           f"tinygen build --module pkg.mod:factory --weights {args.weights}")
    return load_path(str(model), shape)


def parse_shape(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[,x]\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise ModelSourceError(f"--input-shape {text!r} is not FRAMES,FEATURES",
                           "e.g. --input-shape 101,80")
    return int(m.group(1)), int(m.group(2))


# --------------------------------------------------------------------------- files
def load_path(spec: str, shape: tuple[int, int] | None = None) -> Source:
    from tinygen.speech.checkpoint import PRESET_PREFIX, check_finite, load_model

    path = Path(spec)
    if not spec.startswith(PRESET_PREFIX) and path.is_file():
        kind = sniff(path)
        if kind == "pt2":
            return load_pt2(path, shape)
        if kind != "tinygen":
            raise foreign_file_error(path, kind)
    model = load_model(spec)
    check_finite(model)
    if shape is not None and shape[1] != model.cfg.n_mels:
        raise ModelSourceError(f"--input-shape has {shape[1]} features, {spec} takes "
                           f"{model.cfg.n_mels}", "drop --input-shape; use --window-ms")
    name = model.cfg.name if spec.startswith(PRESET_PREFIX) else path.stem
    return Source(model, name, model.cfg,
                  None if shape is None else (shape[0], model.cfg.n_mels))


def sniff(path: Path) -> str:
    """What a file is, from its bytes, without unpickling code: pt2, torchscript,
    state_dict, pickled_module, onnx, tflite, unknown, or tinygen (a checkpoint, or a
    torch file the checkpoint loader explains: damaged, or other content)."""
    with path.open("rb") as f:
        head = f.read(16)
    if head[4:8] == b"TFL3":
        return "tflite"
    if not zipfile.is_zipfile(path):
        if head[:2] == b"PK" or path.suffix.lower() in (".pt", ".pth", ".ckpt"):
            return "tinygen"  # a damaged torch file: the checkpoint loader says so
        if path.suffix.lower() == ".onnx" or head[:1] == b"\x08":
            return "onnx"  # a protobuf ModelProto starts with field 1 (ir_version)
        return "unknown"
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    tails = {n.split("/", 1)[-1] for n in names}
    if "archive_format" in tails or "models/model.json" in tails or any(
            t.startswith("serialized_exported_program") for t in tails):
        return "pt2"
    if "constants.pkl" in tails or any(t.startswith("code/") for t in tails):
        return "torchscript"
    if "data.pkl" not in tails:
        return "tinygen"  # not torch.save's layout: the checkpoint loader says what is wrong
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # weights_only refuses a class: a pickled module
        found = re.search(r"GLOBAL (\S+)", str(err))
        return "pickled_module" if found else "tinygen"
    if isinstance(data, dict) and data.get("format") == "tinygen-checkpoint":
        return "tinygen"
    if isinstance(data, dict):
        inner = data.get("state_dict", data.get("model", data))
        if isinstance(inner, dict) and inner and all(
                isinstance(v, torch.Tensor) for v in inner.values()):
            return "state_dict"
    return "tinygen"  # other torch.save content: the checkpoint loader names it


def foreign_file_error(path: Path, kind: str) -> ModelSourceError:
    what, fix = {
        "torchscript": ("a TorchScript archive (torch.jit); TorchScript drops the Python "
                        "module structure the compiler captures", EXPORT_HOWTO),
        "pickled_module": ("a pickled nn.Module (torch.save(model)); tinygen never "
                           "unpickles code", "save model.state_dict() and build with "
                           "--module pkg.mod:factory --weights FILE, or "
                           + EXPORT_HOWTO),
        "state_dict": ("not a tinygen checkpoint but a state_dict: weights without the "
                       "code that uses them",
                       f"tinygen build --module pkg.mod:factory --weights {path} "
                       "--input-shape FRAMES,FEATURES"),
        "onnx": ("an ONNX model; tinygen compiles PyTorch models",
                 "from the PyTorch model it came from: " + EXPORT_HOWTO),
        "tflite": ("a .tflite flatbuffer (an already converted model)",
                   "from the PyTorch model it came from: " + EXPORT_HOWTO),
    }.get(kind, ("not a model file tinygen reads (.pt2, a tinygen checkpoint, "
                 "preset:NAME)", EXPORT_HOWTO + ", or use --module pkg.mod:factory"))
    return ModelSourceError(f"{path} is {what}", fix)


def load_pt2(path: Path, shape: tuple[int, int] | None = None) -> Source:
    export_log = logging.getLogger("torch.export")
    level = export_log.level
    try:
        export_log.setLevel(logging.CRITICAL)  # it logs a traceback before raising
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ep = torch.export.load(str(path))
    except Exception as err:
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else \
            type(err).__name__
        raise ModelSourceError(f"{path} is a .pt2 that torch.export.load cannot read "
                           f"({first})", "re-export it with this torch version") from None
    finally:
        export_log.setLevel(level)
    exported = program_input_shape(ep, str(path))
    if shape is not None and shape != exported:
        raise ModelSourceError(f"{path} was exported for input (1, {exported[0]}, "
                           f"{exported[1]}), not --input-shape {shape[0]},{shape[1]}",
                           "drop --input-shape, or re-export with that example input")
    return Source(ep, path.stem, None, exported)


def program_input_shape(ep: torch.export.ExportedProgram, what: str) -> tuple[int, int]:
    """(frames, features) of a program's one user input, which must be (1, T, F)."""
    users = [s for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    if len(users) != 1:
        raise ModelSourceError(f"{what} takes {len(users)} inputs",
                           "export a model that takes one (1, frames, features) tensor")
    name = getattr(users[0].arg, "name", "")
    node = next(n for n in ep.graph.nodes if n.op == "placeholder" and n.name == name)
    val = node.meta.get("val")
    dims = tuple(val.shape) if isinstance(val, torch.Tensor) else ()
    if not all(isinstance(d, int) for d in dims):
        raise ModelSourceError(f"{what} was exported with dynamic shapes {dims}",
                           "export it with a fixed example input and no dynamic_shapes")
    if len(dims) != 3 or dims[0] != 1:
        raise ModelSourceError(f"{what} takes input {dims}, not (1, frames, features)",
                           "export it with an example of shape (1, frames, features)")
    return int(dims[1]), int(dims[2])


# -------------------------------------------------------------------------- --module
def load_module(spec: str, weights: Path | None, shape: tuple[int, int] | None) -> Source:
    m = re.fullmatch(r"([A-Za-z_][\w.]*):([A-Za-z_]\w*)", spec)
    if not m:
        raise ModelSourceError(f"--module {spec!r} is not pkg.mod:factory",
                           "e.g. --module mymodels.conformer:build_model")
    mod_name, attr = m.groups()
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # the user's own code, from where they run
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as err:
        raise ModelSourceError(f"--module: cannot import {mod_name} ({err})",
                           "run tinygen from the folder that holds it, or set "
                           "PYTHONPATH") from None
    except Exception as err:
        raise ModelSourceError(f"--module: importing {mod_name} raised "
                           f"{type(err).__name__}: {str(err)[:120]}",
                           "fix the module so that it imports") from None
    factory = getattr(mod, attr, None)
    if not callable(factory):
        raise ModelSourceError(f"--module: {mod_name} has no callable {attr}",
                           "name a function or class that returns the nn.Module")
    try:
        model = factory()
    except Exception as err:
        raise ModelSourceError(f"--module: {spec}() raised {type(err).__name__}: "
                           f"{str(err)[:120]}", "call it without arguments, or wrap it"
                           ) from None
    if not isinstance(model, torch.nn.Module):
        raise ModelSourceError(f"--module: {spec}() returned {type(model).__name__}, not an "
                           "nn.Module", "return the model")
    if weights is not None:
        load_weights(model, weights)
    cfg = getattr(model, "cfg", None)
    if shape is None:
        n_mels = getattr(cfg, "n_mels", None)
        if n_mels is None:
            raise ModelSourceError(f"--module {spec}: the model does not say what input it "
                               "takes", "add --input-shape FRAMES,FEATURES")
        return Source(model.eval(), attr, cfg, None)
    return Source(model.eval(), attr, None, shape)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """A state_dict into ``model`` (weights_only: tensors, no code)."""
    if not path.is_file():
        raise ModelSourceError(f"--weights {path} does not exist", "give a state_dict file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        kind = sniff(path)
        raise ModelSourceError(f"--weights {path} is not a state_dict ({kind.replace('_', ' ')})",
                           "save it with torch.save(model.state_dict(), path)") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ModelSourceError(f"--weights {path} is not a state_dict",
                           "save it with torch.save(model.state_dict(), path)")
    result = model.load_state_dict(sd, strict=False)
    missing = list(result.missing_keys)
    unexpected = list(result.unexpected_keys)
    if missing or unexpected:
        parts = ([f"missing {', '.join(missing[:3])}"] if missing else []) + \
            ([f"unexpected {', '.join(unexpected[:3])}"] if unexpected else [])
        raise ModelSourceError(f"--weights {path} does not fit the model ({'; '.join(parts)})",
                           "give the state_dict of this model")


# --------------------------------------------------------------------------- info
def print_info(src: Source, as_json: bool) -> int:
    """``tinygen info`` for a model that is not tinygen's: what the compiler sees."""
    from tinygen.compiler import passes
    from tinygen.compiler.capture import capture, capture_program, parameter_counts

    if src.shape is None:
        raise ModelSourceError(f"{src.name}: the input shape is unknown",
                               "add --input-shape FRAMES,FEATURES")
    if isinstance(src.model, torch.export.ExportedProgram):
        graph = capture_program(src.model)
    else:
        graph = capture(src.model, torch.zeros(1, *src.shape))
    graph = passes.optimize(graph)
    info = {"name": src.name, "input_shape": [1, *src.shape], **parameter_counts(graph),
            "ops": graph.op_counts(),
            "untied_identical_params": untied_duplicates(src.model)}
    if as_json:
        import json

        print(json.dumps(info, indent=2))
        return 0
    print(f"{src.name}: input (1, {src.shape[0]}, {src.shape[1]})\n"
          f"unique params  {info['unique_params']:>12,}\n"
          f"virtual params {info['virtual_params']:>12,}   "
          f"({info['virtual_params'] / max(1, info['unique_params']):.2f}x reuse)\n"
          f"parameter tensors {info['parameter_tensors']}, shared: "
          f"{len(info['sharing_groups'])}")
    for g in info["sharing_groups"]:
        print(f"  {g['numel']:>9,} x {g['uses']} uses  {', '.join(g['params'])}")
    print("ops: " + ", ".join(f"{k} {v}" for k, v in info["ops"].items()))
    return 0


# ------------------------------------------------------------------------- checks
def untied_duplicates(model: torch.nn.Module | torch.export.ExportedProgram
                      ) -> list[list[str]]:
    """Parameters with identical values in separate storage: ties a route (or the code)
    broke. Each group is the parameter names that would be one weight if tied."""
    from tinygen.compiler.capture import tensor_key

    if isinstance(model, torch.export.ExportedProgram):
        params = {s.target: model.state_dict[s.target]
                  for s in model.graph_signature.input_specs
                  if s.kind.name == "PARAMETER" and s.target in model.state_dict}
    else:
        params = dict(model.named_parameters())
    by_key: dict[tuple[Any, ...], list[str]] = {}
    for name, t in params.items():
        by_key.setdefault(tensor_key(t), []).append(name)
    by_content: dict[tuple[Any, ...], list[str]] = {}
    for names in by_key.values():
        t = params[names[0]].detach()
        if t.numel() < 2 or bool((t == t.flatten()[0]).all()):
            continue  # constant tensors (zeros, ones) are equal by design, not ties
        content = (tuple(t.shape), str(t.dtype), t.cpu().contiguous().numpy().tobytes())
        by_content.setdefault(content, []).append(names[0])
    return [sorted(g) for g in by_content.values() if len(g) > 1]


# -------------------------------------------------------------------- the Python API
def compile_model(model: torch.nn.Module | torch.export.ExportedProgram,
                  example_input: torch.Tensor | tuple[int, ...], out: str | Path, *,
                  calib: list[np.ndarray] | None = None, calib_count: int = 16,
                  vectors: int = 8, target: str = "host", backend: str = "portable",
                  force: bool = False, name: str | None = None,
                  progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Compile ``model`` for ``target`` into the folder ``out``; returns report.json.

    See :func:`tinygen.compile`."""
    from tinygen.build import BuildOptions, build

    dims = tuple(example_input.shape) if isinstance(example_input, torch.Tensor) else \
        tuple(int(d) for d in example_input)
    if len(dims) != 3 or dims[0] != 1:
        raise ModelSourceError(f"example input of shape {dims}",
                           "give a (1, frames, features) tensor")
    shape = (int(dims[1]), int(dims[2]))
    if isinstance(model, torch.export.ExportedProgram):
        exported = program_input_shape(model, "the ExportedProgram")
        if exported != shape:
            raise ModelSourceError(f"the ExportedProgram takes (1, {exported[0]}, "
                               f"{exported[1]}), the example is {dims}",
                               "give the example it was exported with")
    src = Source(model, name or type(model).__name__, None, shape)
    cal = calib if calib is not None else src.inputs(shape[0], calib_count, 0, None, "train")
    vecs = src.inputs(shape[0], vectors, 1, None, "train")
    report = build(model, Path(out), cal, vecs, BuildOptions(target=target, backend=backend,
                   force=force, vectors=vectors), src.name, progress=progress)
    report["untied_identical_params"] = untied_duplicates(model)
    return report
