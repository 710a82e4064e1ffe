"""Quantization data that respects sharing (docs/quantization.md): scale tying gives the
uses of a shared weight one input and one output range, so their per-channel
multipliers, shifts and biases are stored once; shifts are int8, packed into one array.

The oracles are hand counts over the graph (how many distinct weights and layer norms the
fully connected, conv, depthwise and layer-norm nodes use), TFLite's range rule applied by
hand to the union of the calibrated ranges, and the untied compile of the same model and
calibration. That the tied model still equals the C bit for bit (host, QEMU) and TFLM is
what the existing end-to-end tests check, with tying on by default.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from tinygen.compiler import codegen, plan
from tinygen.compiler.capture import parameter_counts
from tinygen.compiler.pipeline import Compiled, compile_model
from tinygen.compiler.quantize import activation_quant, shared_scale_groups
from tinygen.speech.calib import inputs, window_frames
from tinygen.speech.checkpoint import load_model

PRESETS = ["mcu-tiny", "share-lowrank"]
WEIGHTED = ("fully_connected", "conv2d", "depthwise_conv2d")


@pytest.fixture(scope="module")
def compiled() -> dict[tuple[str, bool], Compiled]:
    """(preset, tie_scales) -> the compile of preset on the same two calibration windows."""
    out = {}
    for preset in PRESETS:
        model = load_model(f"preset:{preset}")
        frames = window_frames(model.cfg, 1000)
        cal = inputs(model.cfg, frames, 2, seed=0)
        for tie in (True, False):
            out[(preset, tie)] = compile_model(model, frames, cal, tie_scales=tie)
    return out


def generated(c: Compiled) -> codegen.Generated:
    return codegen.generate(c.int8, plan.make_plan(c.int8), "t", {})


@pytest.mark.parametrize("preset", PRESETS)
def test_one_set_of_multipliers_per_shared_weight(compiled, preset: str) -> None:  # type: ignore[no-untyped-def]
    """Tied: one per-channel multiplier array per distinct weight (and at most one per
    distinct layer norm), however many layers use it; untied: more, because the uses'
    ranges differ."""
    tied, untied = compiled[(preset, True)], compiled[(preset, False)]
    weights = {n.inputs[1] for n in tied.int8.nodes if n.op in WEIGHTED}
    norms = {n.attrs["gamma"] for n in tied.int8.nodes if n.op == "layer_norm"}
    uses = sum(1 for n in tied.int8.nodes if n.op in WEIGHTED or n.op == "layer_norm")
    assert uses > len(weights) + len(norms)  # the preset shares
    gen = generated(tied)
    mults = [a for a in gen.pool.arrays if a.symbol.startswith("tg_q_multiplier")]
    # (at most: two layer norms with equal gammas and output scales share one array)
    assert len(weights) <= len(mults) <= len(weights) + len(norms)
    biases = [a for a in gen.pool.arrays if a.kind == "bias"]  # (equal contents: once)
    assert len(biases) <= len({n.inputs[2] for n in tied.int8.nodes
                               if n.op in WEIGHTED and n.inputs[2]})
    loose = generated(untied)
    assert len([a for a in loose.pool.arrays if a.symbol.startswith("tg_q_multiplier")]) \
        > len(mults)
    assert len([a for a in loose.pool.arrays if a.kind == "bias"]) >= len(biases)
    assert gen.quant_bytes < loose.quant_bytes and gen.weights_bytes == loose.weights_bytes


@pytest.mark.parametrize("preset", PRESETS)
def test_tied_ranges_are_the_union(compiled, preset: str) -> None:  # type: ignore[no-untyped-def]
    """The members of a tied group share one quantization, and it covers each member's
    calibrated range (a group that shares a member with another, or with a concat, gets
    the union of both: it may be wider than its own); the uses of each shared weight
    then have equal multipliers and shifts."""
    c = compiled[(preset, True)]
    groups = shared_scale_groups(c.float_graph)
    assert groups
    # a batch matmul's output that a transpose reordered is, in the int8 graph, that
    # transpose's output (passes.fold_matmul_layout folds the transpose into the matmul's
    # strides; a transpose keeps its input's quantization)
    transposed = {n.inputs[0]: n.outputs[0] for n in c.float_graph.nodes
                  if n.op == "transpose"}

    def int8_name(x: str) -> str:
        return x if x in c.int8.values else transposed[x]

    for group in groups:
        quants = {(c.int8.values[int8_name(x)].quant.s, c.int8.values[int8_name(x)].quant.zp)
                  for x in group}
        assert len(quants) == 1, group
        (s, zp), = quants
        for x in group:  # TFLite's rule: [min(lo, 0), max(hi, 0)] within half a step
            assert s * (-128 - zp) <= min(c.ranges.lo[x], 0.0) + 0.501 * s, x
            assert s * (127 - zp) >= max(c.ranges.hi[x], 0.0) - 0.501 * s, x
        untied = activation_quant(c.ranges.lo[group[0]], c.ranges.hi[group[0]])
        assert s >= untied.s * (1 - 1e-6)  # never finer than the member's own
    by_weight: dict[str, list] = {}  # type: ignore[type-arg]
    for n in c.int8.nodes:
        if n.op in WEIGHTED:
            by_weight.setdefault(n.inputs[1], []).append(n.attrs["params"])
    shared = [ps for ps in by_weight.values() if len(ps) > 1]
    assert shared
    for ps in shared:
        assert len({(tuple(np.atleast_1d(p.output_multiplier)),
                     tuple(np.atleast_1d(p.output_shift))) for p in ps}) == 1


def test_shifts_are_int8_and_packed(compiled) -> None:  # type: ignore[no-untyped-def]
    """The fully connected and conv records point into one int8 array; no int32 shift
    array is left but the layer norms' own."""
    c = compiled[("mcu-tiny", True)]
    gen = generated(c)
    packed = [a for a in gen.pool.arrays if a.symbol == codegen.PACKED_SYMBOL]
    assert len(packed) == 1 and packed[0].ctype == "int8_t"
    int32_shifts = [a for a in gen.pool.arrays if a.symbol.startswith("tg_q_shift")]
    norms = {n.attrs["gamma"] for n in c.int8.nodes if n.op == "layer_norm"}
    assert 0 < len(int32_shifts) <= len(norms)  # (equal contents: once)
    model_c = gen.files["model/tinygen_model.c"]
    refs = re.findall(r"\.shift = (\w+)(?: \+ (\d+))?", model_c)
    assert refs and all(sym == codegen.PACKED_SYMBOL or sym.startswith("tg_q_shift")
                        for sym, _ in refs)
    offsets = {int(off) for sym, off in refs if off}
    assert max(offsets) < packed[0].length


def test_mcu_tiny_flash_near_unique_params(compiled) -> None:  # type: ignore[no-untyped-def]
    """Weights + quantization data + schedule of mcu-tiny within 1.15x its unique
    parameters (one byte each is the int8 floor)."""
    c = compiled[("mcu-tiny", True)]
    gen = generated(c)
    total = gen.weights_bytes + gen.quant_bytes + gen.schedule_bytes
    unique = parameter_counts(c.int8)["unique_params"]
    assert total <= 1.15 * unique, (total, unique)
