"""The compiler's front half end to end: int8 golden reference vs TFLite Micro, sharing
carried into the .tflite file, float-vs-int8 SNR, and bad inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import assert_one_line_error, run_tinygen
from tinygen.compiler.capture import UnsupportedOpError
from tinygen.compiler.pipeline import Compiled, compile_model
from tinygen.errors import TinygenError
from tinygen.reference.layernorm import isqrt64, layer_norm_s8, prepare_layer_norm
from tinygen.speech.calib import inputs, window_frames
from tinygen.speech.checkpoint import load_model, save_checkpoint
from tinygen.speech.summary import unique_params, virtual_params
from tinygen.tflite.export import export_file, to_tflite, unshare
from tinygen.tflite.runner import run_tflm

E2E_PRESETS = ["mcu-tiny", "share-blocks", "share-modules", "share-subcomponents",
               "share-lowrank"]
VECTORS = 16
NATIVE_MAX_DIFF = 32  # int8 steps between the native-LayerNorm graph and TFLM (measured: 8-26)


def compiled_preset(name: str, calib: int = 8) -> tuple[nn.Module, Compiled, list]:  # type: ignore[type-arg]
    model = load_model(f"preset:{name}")
    frames = window_frames(model.cfg, 1000)
    cal = inputs(model.cfg, frames, calib, seed=0)
    held = inputs(model.cfg, frames, VECTORS, seed=1)
    return model, compile_model(model, frames, cal), held


@pytest.mark.parametrize("preset", E2E_PRESETS)
def test_golden_reference_equals_tflite_micro_end_to_end(preset: str) -> None:
    _, compiled, held = compiled_preset(preset)
    blob, _ = to_tflite(compiled.tflite_int8)
    worst_native = 0
    for x in held:
        xq = compiled.quantize_input(x)
        tflm = run_tflm(blob, [xq])[0]
        gold = compiled.run_int8(xq, tflite_flavour=True)
        assert tflm.dtype == np.int8 and tflm.shape == gold.shape
        np.testing.assert_array_equal(gold, tflm)
        native = compiled.run_int8(xq).astype(np.int32)
        worst_native = max(worst_native, int(np.abs(native - tflm).max()))
    # tinygen's integer LayerNorm is not TFLM's decomposition: bounded, not equal.
    print(f"{preset}: native graph vs TFLM max diff {worst_native} int8 steps")
    assert worst_native <= NATIVE_MAX_DIFF


def test_attention_transposes_fold_into_the_matmuls() -> None:
    """The int8 graph's head split (T, H, D) -> (H, T, D) and merge back are the
    matmuls' strides, not copies; the folded graph computes what the unfolded one does,
    whose transposes numpy executes."""
    from tinygen.compiler.passes import matmul_strides
    from tinygen.compiler.plan import make_plan
    from tinygen.compiler.quantize import quantize
    from tinygen.reference import interpreter

    # hand counts: Q stored (1, T=24, H=4, D=24) read as (1, H, T, D)
    assert matmul_strides((1, 24, 4, 24), [0, 2, 1, 3]) == (4, 24, 96)
    assert matmul_strides((1, 24, 4, 24), [0, 2, 1, 3], result=True) == (4, 24, 96)
    assert matmul_strides((2, 3, 5, 7)) == (6, 35, 7)  # packed
    assert matmul_strides((1, 24, 4, 24), [0, 1, 3, 2]) is None  # rows not contiguous
    assert matmul_strides((2, 3, 5, 7), [1, 0, 2, 3]) is None  # batch dims do not merge

    _, compiled, held = compiled_preset("mcu-tiny", calib=2)
    unfolded = quantize(compiled.float_graph, compiled.ranges, compiled.tie_scales)
    ops = [n.op for n in unfolded.nodes]
    assert ops.count("transpose") == 24 and ops.count("batch_matmul") == 12
    folded = [n.op for n in compiled.int8.nodes]
    assert folded.count("transpose") == 0 and folded.count("batch_matmul") == 12
    views = {(tuple(n.attrs.get("lhs_perm", ())), tuple(n.attrs.get("rhs_perm", ())),
              tuple(n.attrs.get("out_perm", ()))) for n in compiled.int8.nodes
             if n.op == "batch_matmul"}
    heads = (0, 2, 1, 3)
    assert views == {(heads, heads, ()), ((), heads, heads)}  # Q K^T; softmax(.) V
    for x in held[:3]:
        xq = compiled.quantize_input(x)
        np.testing.assert_array_equal(interpreter.run(compiled.int8, [xq])[0],
                                      interpreter.run(unfolded, [xq])[0])
    steps = make_plan(compiled.int8).steps
    assert "transpose" not in {st.kind for st in steps}
    qk = next(st.params for st in steps if st.kind == "batch_matmul")
    assert (qk["lhs_batch_stride"], qk["lhs_row_stride"]) == (24, 96)  # Q read in place
    # the export keeps TFLite's TRANSPOSE ops
    assert [n.op for n in compiled.tflite_int8.nodes].count("transpose") == 24


def test_sharing_carries_into_the_file_for_every_preset() -> None:
    from tinygen.speech.config import preset_names

    for name in preset_names():
        model = load_model(f"preset:{name}")
        frames = window_frames(model.cfg, 1000)
        compiled = compile_model(model, frames, inputs(model.cfg, frames, 1, seed=0))
        qg = compiled.tflite_int8
        _, shared = to_tflite(qg)
        _, alone = to_tflite(unshare(qg))
        ratio = unique_params(model) / virtual_params(model)
        print(f"{name}: weights {shared.weights} B shared, {alone.weights} B unshared "
              f"({shared.weights / alone.weights:.4f}x; unique/virtual {ratio:.4f})")
        assert shared.weights <= 1.1 * alone.weights * ratio


def test_weights_are_one_buffer_per_shared_constant() -> None:
    _, compiled, _ = compiled_preset("mcu-tiny", calib=2)
    from tinygen.tflite.writer import load_schema

    blob, _ = to_tflite(compiled.tflite_int8)
    s = load_schema()
    model = s.ModelT.InitFromObj(s.Model.GetRootAsModel(blob, 0))
    sub = model.subgraphs[0]
    buffers = [bytes(b.data) if b.data is not None else b"" for b in model.buffers]
    weighted = {i for i, c in enumerate(model.operatorCodes) if c.builtinCode in (
        s.BuiltinOperator.FULLY_CONNECTED, s.BuiltinOperator.CONV_2D,
        s.BuiltinOperator.DEPTHWISE_CONV_2D)}
    weight_tensors = {op.inputs[1] for op in sub.operators if op.opcodeIndex in weighted}
    weight_buffers = [buffers[sub.tensors[i].buffer] for i in weight_tensors]
    # subsample conv1, conv2, proj; head; 2 shared down factors; per unique block (2):
    # w1 up, w2 up, q, k, v, o, pw1, depthwise, pw2.
    assert len(weight_buffers) == len(set(weight_buffers)) == 3 + 1 + 2 + 2 * 9
    down = load_model("preset:mcu-tiny").shared_factors["ffn_w1_down"]
    users = [op for op in sub.operators
             if any(sub.tensors[i].name.startswith(b"shared_factors_ffn_w1_down")
                    for i in op.inputs if i >= 0)]
    assert len(users) == 12 and tuple(down.shape) == (64, 96)


def test_snr_mcu_tiny_held_out() -> None:
    model = load_model("preset:mcu-tiny")
    frames = window_frames(model.cfg, 1000)
    compiled = compile_model(model, frames, inputs(model.cfg, frames, 32, seed=0))
    held = inputs(model.cfg, frames, 32, seed=1)  # not in the calibration set
    snr, snr_native = compiled.snr_db(held, tflite_flavour=True), compiled.snr_db(held)
    print(f"mcu-tiny float vs int8 SNR: {snr:.2f} dB (.tflite), {snr_native:.2f} dB (native)")
    assert snr >= 20.0 and snr_native >= 20.0


def test_export_is_deterministic(tmp_path: Path) -> None:
    model = load_model("preset:share-lowrank")
    frames = window_frames(model.cfg, 500)
    cal, held = inputs(model.cfg, frames, 2, seed=0), inputs(model.cfg, frames, 1, seed=1)
    a = export_file(model, tmp_path / "a.tflite", cal, held, verify=1)
    b = export_file(model, tmp_path / "b.tflite", cal, held, verify=1)
    assert (tmp_path / "a.tflite").read_bytes() == (tmp_path / "b.tflite").read_bytes()
    assert a["tflm_bit_exact"] and a["snr_db"] == b["snr_db"]


def test_integer_layer_norm_tracks_float() -> None:
    rng = np.random.default_rng(0)
    q = rng.integers(-128, 128, (64, 96), dtype=np.int64)
    assert np.array_equal(isqrt64(q * q), np.abs(q))
    big = rng.integers(0, 2**48, 1000, dtype=np.int64)
    r = isqrt64(big)
    assert np.all(r * r <= big) and np.all((r + 1) * (r + 1) > big)
    x = rng.integers(-100, 120, (24, 96)).astype(np.int8)
    gamma, beta = rng.uniform(-2, 2, 96), rng.uniform(-1, 1, 96)
    s_x, zp_x, s_y, zp_y = 0.05, 10, 0.03, -5
    p = prepare_layer_norm(s_x, zp_x, s_y, zp_y, gamma, beta, 1e-5, 96)
    got = (layer_norm_s8(x, p).astype(np.float64) - zp_y) * s_y
    xf = (x.astype(np.float64) - zp_x) * s_x
    ref = (xf - xf.mean(-1, keepdims=True)) / np.sqrt(xf.var(-1, keepdims=True) + 1e-5)
    ref = np.clip(ref * gamma + beta, (-128 - zp_y) * s_y, (127 - zp_y) * s_y)
    assert np.abs(got - ref).max() <= s_y + 1e-9  # within one output step


@pytest.mark.parametrize("eps", [1e-5, 1e-3])
@pytest.mark.parametrize("depth", [64, 96, 144])
def test_integer_layer_norm_eps_matches_pytorch(depth: int, eps: float) -> None:
    """Rows whose variance is of the order of eps (and constant rows), where eps decides
    the result: the integer LayerNorm against torch.nn.functional.layer_norm."""
    rng = np.random.default_rng(depth + int(1e6 * eps))
    s_x, zp_x, s_y, zp_y = (eps ** 0.5) / 2, 3, 0.03, 2
    steps = rng.integers(-3, 4, (40, depth))  # variance ~ 1 to 4 input steps squared
    steps[::8] = 0  # constant rows: the output is beta
    steps[1::8] *= 20  # and some wide rows, where eps hardly matters
    x = np.clip(steps + zp_x, -128, 127).astype(np.int8)
    gamma, beta = rng.uniform(0.5, 1.5, depth), rng.uniform(-0.5, 0.5, depth)
    p = prepare_layer_norm(s_x, zp_x, s_y, zp_y, gamma, beta, eps, depth)
    got = (layer_norm_s8(x, p).astype(np.float64) - zp_y) * s_y
    xf = torch.from_numpy((x.astype(np.float64) - zp_x) * np.float64(np.float32(s_x)))
    ref = torch.nn.functional.layer_norm(xf, (depth,), torch.from_numpy(gamma),
                                         torch.from_numpy(beta), eps).numpy()
    ref = np.clip(ref, (-128 - zp_y) * s_y, (127 - zp_y) * s_y)
    assert np.abs(got - ref).max() <= s_y + 1e-9  # within one output step


# ------------------------------------------------------------------ bad inputs
def test_unsupported_op_leaves_no_file(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(40, 8), nn.GELU())
    x = np.zeros((1, 10, 40), np.float32)
    with pytest.raises(UnsupportedOpError, match="gelu"):
        export_file(model, tmp_path / "m.tflite", [x], [x])
    assert list(tmp_path.iterdir()) == []


def test_cli_bad_inputs_leave_no_file(tmp_path: Path) -> None:
    out = tmp_path / "m.tflite"
    bad = load_model("preset:share-blocks")
    with torch.no_grad():
        bad.blocks[0].ffn1.w1.weight[3, 3] = float("inf")
    save_checkpoint(bad, tmp_path / "nan.pt")
    assert_one_line_error(run_tinygen("export-tflite", str(tmp_path / "nan.pt"), "-o",
                                      str(out)), "blocks.0.ffn1.w1.weight", "NaN/Inf")
    assert_one_line_error(run_tinygen("export-tflite", "preset:share-blocks", "-o", str(out),
                                      "--calib", "0"), "--calib: 0 is outside 1..")
    assert_one_line_error(run_tinygen("export-tflite", "preset:share-blocks", "-o",
                                      str(tmp_path / "no" / "dir" / "m.tflite"),
                                      "--calib", "1", "--eval", "1", "--verify", "1"),
                          "does not exist")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: use a path under a file
            target = tmp_path / "nan.pt" / "m.tflite"
        else:
            target = locked / "m.tflite"
        assert_one_line_error(run_tinygen("export-tflite", "preset:share-blocks", "-o",
                                          str(target), "--calib", "1", "--eval", "1",
                                          "--verify", "1"), "cannot write")
    finally:
        locked.chmod(0o700)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locked", "nan.pt"]
    assert list(locked.iterdir()) == []


def test_cli_json_summary(tmp_path: Path) -> None:
    out = tmp_path / "m.tflite"
    res = run_tinygen("export-tflite", "preset:share-modules", "-o", str(out), "--calib", "4",
                      "--eval", "4", "--verify", "2", "--window-ms", "500", "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["tflm_bit_exact"] is True
    assert summary["buffer_bytes"]["weights"] < summary["unshared_buffer_bytes"]["weights"]
    assert summary["input"]["shape"] == [1, 51, 40] and summary["input"]["dtype"] == "int8"
    assert out.stat().st_size == summary["file_bytes"]
    assert isinstance(summary["snr_db"], float)


def test_errors_are_tinygen_errors() -> None:
    from tinygen.speech.calib import CalibrationError

    assert issubclass(CalibrationError, TinygenError)
    cfg = load_model("preset:share-blocks").cfg
    with pytest.raises(CalibrationError, match="no encoder frame"):
        window_frames(cfg, 20)
