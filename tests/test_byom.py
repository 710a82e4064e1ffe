"""Bring your own model: Conformers written in plain torch.nn (tests/byom_models.py),
compiled through a torch.export ``.pt2`` and through ``--module``.

Oracles: PyTorch itself (the captured float graph gives the module's outputs), the
tflite-micro wheel (the .tflite export runs bit-exactly like the golden reference), the
host C build (bit-exact with the golden reference), and counts taken from the module with
forward hooks (each call of a module adds the parameters it applies), independent of the
compiler's graph. Every foreign file format gets a one-line error that says what the file
is and how to compile it.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import tinygen
from tests.byom_models import FACTORIES, FRAMES, N_MELS
from tests.conftest import REPO
from tinygen import importer
from tinygen.compiler.capture import UnsupportedOpError, capture, parameter_counts
from tinygen.compiler.pipeline import compile_model
from tinygen.tflite.export import to_tflite
from tinygen.tflite.runner import run_tflm
from tinygen.verify import verify

VARIANTS = sorted(FACTORIES)
SHAPE = f"{FRAMES},{N_MELS}"


def hook_counts(model: nn.Module) -> tuple[int, int]:
    """(unique, virtual) parameters of one forward pass, counted from the module: unique
    by Parameter identity (model.parameters() yields each object once), virtual by adding
    a module's own parameters at each of its calls (nn.MultiheadAttention applies its
    out_proj inside its own call, so it counts as one unit)."""
    virtual = 0

    def hook(mod: nn.Module, _args: Any, _out: Any) -> None:
        nonlocal virtual
        recurse = isinstance(mod, nn.MultiheadAttention)
        virtual += sum(p.numel() for p in mod.parameters(recurse=recurse))

    inside_mha = {id(m) for mha in model.modules() if isinstance(mha, nn.MultiheadAttention)
                  for m in mha.modules() if m is not mha}
    handles = [m.register_forward_hook(hook) for m in model.modules()
               if id(m) not in inside_mha]
    try:
        with torch.no_grad():
            model(torch.zeros(1, FRAMES, N_MELS))
    finally:
        for h in handles:
            h.remove()
    return sum(p.numel() for p in model.parameters()), virtual


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each variant built for the host twice through the command line (in this process:
    the one-line-error checks below run it as a child): from a .pt2 and with --module."""
    import contextlib
    import io
    import os

    from tinygen.cli import main

    root = tmp_path_factory.mktemp("byom")
    out: dict[str, dict[str, Any]] = {}
    for name in VARIANTS:
        model = FACTORIES[name]()
        pt2 = root / f"{name}.pt2"
        torch.export.save(torch.export.export(model, (torch.zeros(1, FRAMES, N_MELS),)), pt2)
        routes = {
            "pt2": [str(pt2)],
            "module": ["--module", f"tests.byom_models:{name}", "--input-shape", SHAPE],
        }
        out[name] = {}
        for route, args in routes.items():
            folder = root / f"{name}-{route}"
            stdout = io.StringIO()
            cwd = os.getcwd()
            os.chdir(REPO)  # --module imports from the current folder, as a user runs it
            try:
                with contextlib.redirect_stdout(stdout):
                    code = main(["build", *args, "-o", str(folder), "--calib", "1",
                                 "--vectors", "2", "--json"])
            finally:
                os.chdir(cwd)
            assert code == 0
            out[name][route] = (folder, json.loads(stdout.getvalue()))
    return out


@pytest.mark.parametrize("variant", VARIANTS)
def test_both_routes_build_bit_exact_host_c(builds, variant: str) -> None:  # type: ignore[no-untyped-def]
    reports = {}
    for route, (folder, report) in builds[variant].items():
        result = verify(folder)
        assert result["vectors"] == 2 and result["bit_exact"], (route, result)
        assert result["snr_db"] > 25, (route, result["snr_db"])  # int8 tracks the float
        reports[route] = report
    a, b = reports["pt2"], reports["module"]
    for key in ("flash", "arena_bytes", "ops", "unique_params", "virtual_params",
                "weight_arrays", "macs_per_inference"):
        assert a[key] == b[key], key  # one model, whichever way it came in


@pytest.mark.parametrize("variant", VARIANTS)
def test_report_counts_equal_the_models_own(builds, variant: str) -> None:  # type: ignore[no-untyped-def]
    unique, virtual = hook_counts(FACTORIES[variant]())
    for route, (_, report) in builds[variant].items():
        assert (report["unique_params"], report["virtual_params"]) == (unique, virtual), route
        assert virtual > unique  # every variant shares
        shared = [g for g in report["sharing_groups"] if len(g["params"]) > 1]
        assert shared, route  # tied names are reported as one group
        # weights are stored once: fewer weight arrays than weighted ops
        weighted = sum(report["ops"].get(k, 0) for k in ("fully_connected", "conv2d",
                                                         "depthwise_conv2d"))
        assert report["weight_arrays"] < weighted


@pytest.mark.parametrize("variant", VARIANTS)
def test_float_graph_is_the_module_and_tflite_export_is_tflm_exact(variant: str) -> None:
    model = FACTORIES[variant]()
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((1, FRAMES, N_MELS)).astype(np.float32) for _ in range(3)]
    compiled = compile_model(model, FRAMES, xs[:2])
    with torch.no_grad():
        want = model(torch.from_numpy(xs[2])).numpy()
    np.testing.assert_allclose(compiled.run_float(xs[2]), want, atol=2e-4)
    blob, _ = to_tflite(compiled.tflite_int8)
    for x in xs:
        xq = compiled.quantize_input(x)
        assert np.array_equal(run_tflm(blob, [xq])[0],
                              compiled.run_int8(xq, tflite_flavour=True))
    ops = compiled.int8.op_counts()
    assert "log_softmax" in ops and ops["softmax"] >= 3  # the head and the attention


def test_ties_survive_a_pt2_round_trip(tmp_path: Path) -> None:
    model = FACTORIES["torchaudio_style"]()
    path = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(model, (torch.zeros(1, FRAMES, N_MELS),)), path)
    loaded = torch.export.load(str(path))
    # torch.export.load gives every tied name its own tensor object...
    sd = loaded.state_dict
    assert sd["blocks.0.ffn1.up.weight"] is not sd["blocks.0.ffn2.up.weight"]
    # ...over one storage, which is what the compiler keys weights by.
    counts = parameter_counts(capture(model, torch.zeros(1, FRAMES, N_MELS)))
    src = importer.load_pt2(path)
    from tinygen.compiler.capture import capture_program

    assert parameter_counts(capture_program(src.model)) == counts
    assert importer.untied_duplicates(loaded) == []
    # ep.module() re-creates the parameters as attributes of a GraphModule: still one each
    module = loaded.module()
    assert importer.untied_duplicates(module) == []
    assert parameter_counts(capture(module, torch.zeros(1, FRAMES, N_MELS))) == counts


def test_a_broken_tie_is_detected() -> None:
    model = FACTORIES["fused_qkv_style"]()
    assert importer.untied_duplicates(model) == []
    blk = model.blocks[1]
    blk.attn.out_weight = nn.Parameter(blk.attn.out_weight.detach().clone())  # untied copy
    groups = importer.untied_duplicates(model)
    assert groups == [["blocks.0.attn.out_weight", "blocks.1.attn.out_weight"]]


def test_weights_load_into_the_module_route(tmp_path: Path) -> None:
    trained = FACTORIES["espnet_style"]()
    with torch.no_grad():
        for p in trained.parameters():
            p.mul_(1.5)
    torch.save(trained.state_dict(), tmp_path / "sd.pt")
    src = importer.load_module("tests.byom_models:espnet_style", tmp_path / "sd.pt",
                               (FRAMES, N_MELS))
    assert isinstance(src.model, nn.Module)
    for (name, a), b in zip(src.model.state_dict().items(), trained.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
    # a tie in the code survives loading a state_dict that stores both names
    blk = src.model.blocks[0]
    assert blk.ffn1.down.weight is blk.ffn2.down.weight
    torch.save({"nope": torch.zeros(3)}, tmp_path / "wrong.pt")
    with pytest.raises(importer.ModelSourceError, match="does not fit the model"):
        importer.load_module("tests.byom_models:espnet_style", tmp_path / "wrong.pt",
                             (FRAMES, N_MELS))


def test_python_api(tmp_path: Path) -> None:
    model = FACTORIES["fused_qkv_style"]()
    report = tinygen.compile(model, torch.zeros(1, FRAMES, N_MELS), tmp_path / "out",
                             calib_count=1, vectors=1)
    assert verify(tmp_path / "out")["bit_exact"]
    assert (report["unique_params"], report["virtual_params"]) == hook_counts(model)
    assert report["untied_identical_params"] == []
    with pytest.raises(importer.ModelSourceError, match="example input"):
        tinygen.compile(model, torch.zeros(FRAMES, N_MELS), tmp_path / "other")


# ---- foreign formats: one line each, naming the file's kind and the way to compile it ----
def _foreign_files(tmp: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    lin = nn.Linear(4, 3)
    files: dict[str, tuple[Path, tuple[str, ...]]] = {}
    torch.jit.save(torch.jit.script(lin), tmp / "scripted.pt")
    files["torchscript"] = (tmp / "scripted.pt", ("TorchScript", "torch.export.save"))
    torch.save(lin, tmp / "pickled.pt")
    files["pickled module"] = (tmp / "pickled.pt", ("pickled nn.Module", "--module"))
    torch.save(lin.state_dict(), tmp / "weights.pt")
    files["state_dict"] = (tmp / "weights.pt", ("state_dict", "--module pkg.mod:factory",
                                                "--weights"))
    # the first bytes of an ONNX ModelProto: field 1 (ir_version) = 8, then producer_name
    (tmp / "model.onnx").write_bytes(b"\x08\x08\x12\x07pytorch\x1a\x032.3")
    files["onnx"] = (tmp / "model.onnx", ("ONNX", "torch.export.save"))
    compiled = compile_model(FACTORIES["fused_qkv_style"](), FRAMES,
                             [np.zeros((1, FRAMES, N_MELS), np.float32)])
    (tmp / "model.tflite").write_bytes(to_tflite(compiled.tflite_int8)[0])
    files["tflite"] = (tmp / "model.tflite", (".tflite", "PyTorch model"))
    (tmp / "notes.txt").write_text("hello\n")
    files["other"] = (tmp / "notes.txt", ("not a model file", "torch.export.save"))
    with zipfile.ZipFile(tmp / "broken.pt2", "w") as z:
        z.writestr("broken/archive_format", "pt2")
    files["damaged pt2"] = (tmp / "broken.pt2", ("torch.export.load cannot read",))
    return files


CHILD = """
import json, os, sys, tempfile
from tinygen.cli import main
results = []
for args in json.loads(sys.argv[1]):
    with tempfile.TemporaryFile() as f:
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)  # everything written to stderr, torch's own lines included
        try:
            code = main(args)
        except SystemExit as exc:
            code = exc.code
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        results.append([code, f.read().decode()])
print(json.dumps(results))
"""


def run_cli_cases(cases: list[list[str]]) -> list[tuple[int, str]]:
    """Run ``tinygen`` command lines in one child process (torch imports once); each
    case's exit code and everything it wrote to stderr."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [(int(c), err) for c, err in json.loads(proc.stdout.splitlines()[-1])]


def assert_one_line(code: int, stderr: str, *needles: str) -> None:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1, (code, stderr)
    assert lines[0].startswith("tinygen: error: ") and "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_every_foreign_format_is_one_honest_line(tmp_path: Path) -> None:
    files = _foreign_files(tmp_path)
    cases = [[command, str(path), *(["-o", str(tmp_path / f"out-{kind}")]
                                    if command == "build" else [])]
             for kind, (path, _) in files.items() for command in ("build", "info")]
    results = run_cli_cases(cases)
    for (kind, (path, needles)), k in zip(files.items(), range(0, len(cases), 2),
                                          strict=True):
        for code, stderr in results[k:k + 2]:
            assert_one_line(code, stderr, str(path), *needles)
        assert not (tmp_path / f"out-{kind}").exists()


def test_module_route_mistakes_are_one_line(tmp_path: Path) -> None:
    cases = [
        (["--module", "tests.byom_models"], "not pkg.mod:factory"),
        (["--module", "no_such_pkg.models:make", "--input-shape", SHAPE], "cannot import"),
        (["--module", "tests.byom_models:nothing", "--input-shape", SHAPE],
         "no callable nothing"),
        (["--module", "tests.byom_models:torchaudio_style"], "--input-shape"),
        (["--module", "tests.byom_models:torchaudio_style", "--input-shape", "48"],
         "FRAMES,FEATURES"),
        (["--module", "tests.byom_models:torchaudio_style", "--input-shape", SHAPE,
          "--weights", str(tmp_path / "none.pt")], "does not exist"),
        (["preset:mcu-tiny", "--weights", "x.pt"], "--weights goes with --module"),
        ([], "no model given"),
    ]
    results = run_cli_cases([["build", *args, "-o", str(tmp_path / "out")]
                             for args, _ in cases])
    for (_, needle), (code, stderr) in zip(cases, results, strict=True):
        assert_one_line(code, stderr, needle)
    assert not (tmp_path / "out").exists()


def test_refusals_name_the_op_the_module_and_the_fix() -> None:
    class Dilated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv1d(N_MELS, 8, 3, dilation=2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x.transpose(1, 2))

    class Sorted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(N_MELS, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cumsum(self.proj(x), dim=1)

    class Difference(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(N_MELS, 8), nn.Linear(N_MELS, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x) - self.b(x)

    x = torch.zeros(1, FRAMES, N_MELS)
    with pytest.raises(UnsupportedOpError) as err:
        capture(Difference(), x)
    assert "subtraction of two activations" in str(err.value) and "-1.0 * b" in str(err.value)
    with pytest.raises(UnsupportedOpError) as err:
        capture(Dilated(), x)
    assert "dilated convolution at body.0" in str(err.value) and "dilation 1" in str(err.value)
    with pytest.raises(UnsupportedOpError) as err:
        capture(Sorted(), x)
    assert "cumsum" in str(err.value) and "<top level>" in str(err.value)


@pytest.mark.parametrize("sharing", ["qk", "qkv"])
def test_attn_proj_sharing_builds_and_verifies_on_host_and_qemu(sharing: str,
                                                                  tmp_path: Path) -> None:
    """tinygen's own attn_proj_sharing configs: the attention scale cannot fold into a
    query projection that is also the key projection, so it stays a broadcast multiply."""
    from tinygen.build import BuildOptions, build
    from tinygen.speech.calib import inputs
    from tinygen.speech.config import load_preset
    from tinygen.speech.model import build_model

    cfg = replace(load_preset("mcu-tiny"), attn_proj_sharing=sharing)
    model = build_model(cfg, seed=0)
    frames = 21  # a short window keeps QEMU quick
    calib, vecs = inputs(cfg, frames, 1, seed=0), inputs(cfg, frames, 2, seed=1)
    for target in ("host", "qemu-m4"):
        out = tmp_path / target
        report = build(model, out, calib, vecs, BuildOptions(target=target), sharing)
        result = verify(out)
        assert result["bit_exact"] and result["vectors"] == 2, (target, result)
        assert report["ops"]["mul"] > 0
        q = "blocks.0.attn.q.weight"  # one Parameter applied as q and k (and v)
        group = next(g for g in report["sharing_groups"] if q in g["params"] or any(
            n.endswith("attn.q.weight") for n in g["params"]))
        assert group["uses"] >= len(sharing) * 2  # q and k (and v) in >= 2 layers
