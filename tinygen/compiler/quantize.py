"""Post-training int8 quantization of the optimized float IR.

Contract (docs/quantization.md):

- weights: per-channel symmetric int8, zero point 0, one set of parameters per *constant*
  -- a weight shared by eight virtual layers is quantized once, so it is stored once;
- activations: asymmetric int8 with a range per *use*, from calibration;
- bias: int32 in accumulator units (input scale x weight scale), so per use when the
  input scales of the uses differ (identical arrays are stored once);
- scale tying (default): the uses of a shared weight (fully connected, conv, depthwise)
  get one input range and one output range, the union of their calibrated ranges, and
  the uses of a shared layer norm one output range; so their multipliers, shifts, biases,
  layer-norm data and the logistic tables behind them are equal and stored once. The
  cost is a coarser step where the uses' ranges differ (docs/quantization.md);
- requantization: TFLite Micro's integer multipliers and shifts, computed by
  ``tinygen.reference.kernels.prepare_*`` exactly as TFLM's Prepare does.

The result is a Graph whose values are int8/int32 with ``Quant`` and whose nodes carry
their prepared integer parameters in ``attrs["params"]``; ``tinygen.reference.interpreter``
runs it bit-exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tinygen.compiler.ir import Graph, Node, Quant, Value
from tinygen.errors import TinygenError
from tinygen.reference import floatref
from tinygen.reference import kernels as K
from tinygen.reference.layernorm import prepare_layer_norm

PROB = Quant((K.PROB_SCALE,), (K.PROB_ZERO_POINT,))
LOG_PROB = Quant((K.LOG_PROB_SCALE,), (K.LOG_PROB_ZERO_POINT,))


class QuantizationError(TinygenError):
    """The model or the calibration data cannot be quantized."""


# -------------------------------------------------------------------- calibration
@dataclass
class Ranges:
    """Running min/max of every activation over the calibration set."""

    lo: dict[str, float] = field(default_factory=dict)
    hi: dict[str, float] = field(default_factory=dict)
    samples: int = 0

    def observe(self, name: str, value: np.ndarray) -> None:
        lo, hi = float(value.min()), float(value.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise QuantizationError(f"activation {name} is NaN/Inf on calibration input "
                                    f"{self.samples}", "check the weights and the inputs")
        self.lo[name] = min(lo, self.lo.get(name, lo))
        self.hi[name] = max(hi, self.hi.get(name, hi))


def calibrate(graph: Graph, inputs: Iterable[np.ndarray],
              progress: Callable[[int], None] | None = None) -> Ranges:
    ranges = Ranges()
    for x in inputs:
        floatref.run(graph, [x], observe=ranges.observe)
        ranges.samples += 1
        if progress:
            progress(ranges.samples)
    if ranges.samples == 0:
        raise QuantizationError("the calibration set is empty",
                                "give at least one calibration input (--calib N, N >= 1)")
    return ranges


# The smallest activation scale: a range narrower than 255 steps of it (a degenerate model,
# e.g. all-zero weights) is widened. TFLM's LOGISTIC needs scale >= 2^-28 and SOFTMAX
# scale > 2^-26, so with this floor every activation has a valid int8 form.
MIN_ACTIVATION_SCALE = 2.0**-24


def activation_quant(lo: float, hi: float) -> Quant:
    """Asymmetric int8 covering [min(lo, 0), max(hi, 0)], as TFLite's converter does."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 255 * MIN_ACTIVATION_SCALE:
        hi = lo + 255 * MIN_ACTIVATION_SCALE
    scale = float(np.float32((hi - lo) / 255.0))
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))
    return Quant((scale,), (zp,))


def weight_quant(w: np.ndarray, axis: int) -> tuple[np.ndarray, Quant]:
    """Per-channel symmetric int8 along ``axis`` (zero point 0, range ±127)."""
    moved = np.moveaxis(w.astype(np.float64), axis, 0).reshape(w.shape[axis], -1)
    max_abs = np.abs(moved).max(axis=1)
    scales = np.where(max_abs > 0, max_abs / 127.0, 1.0 / 127.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scales.astype(np.float64).reshape(shape)), -127, 127)
    return q.astype(np.int8), Quant(tuple(float(s) for s in scales),
                                    (0,) * len(scales), axis)


def quantize_array(x: np.ndarray, q: Quant) -> np.ndarray:
    """float -> int8 as TFLite's QUANTIZE op does it (the host side of the model input)."""
    return K.quantize(x, q.s, q.zp)


def dequantize_array(x: np.ndarray, q: Quant) -> np.ndarray:
    return ((x.astype(np.float64) - q.zp) * q.s).astype(np.float32)


# -------------------------------------------------------------------- quantizer
def _conv_padding(node: Node, in_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> str:
    """TFLite's SAME or VALID when the model's padding is one of them, else EXPLICIT (the
    kernels take the top/left pads; the .tflite export puts a PAD op in front)."""
    ph, pw = node.attrs.get("pad", [0, 0])
    sh, sw = node.attrs["stride"]
    if ph == 0 and pw == 0:
        return "VALID"
    for pad, size, k, s in ((ph, in_shape[1], w_shape[1], sh), (pw, in_shape[2], w_shape[2],
                                                                 sw)):
        out = (size + s - 1) // s
        total = max((out - 1) * s + k - size, 0)
        if pad != total // 2 or (size + 2 * pad - k) // s + 1 != out:
            return "EXPLICIT"
    return "SAME"


def _unify_concat_ranges(graph: Graph, ranges: Ranges) -> Ranges:
    """TFLite's CONCATENATION copies bytes: its inputs and output share one quantization.
    Give them the union of their calibrated ranges (constant inputs are then quantized
    with it)."""
    lo, hi = dict(ranges.lo), dict(ranges.hi)
    for _ in range(3):  # chains of concats settle in a few rounds
        for n in graph.nodes:
            if n.op != "concat":
                continue
            names = [i for i in n.inputs if not graph.values[i].is_const] + n.outputs
            names = [i for i in names if i in lo]
            if not names:
                continue
            a, b = min(lo[i] for i in names), max(hi[i] for i in names)
            for i in names:
                lo[i], hi[i] = a, b
    return Ranges(lo, hi, ranges.samples)


# Ops whose constant data depends on their activations' ranges, the input that names the
# shared constant, and whether the input's range matters (a layer norm's multipliers and
# biases depend on its output range only).
TIED_OPS = {"linear": (1, True), "conv2d": (1, True), "depthwise_conv2d": (1, True),
            "layer_norm": (1, False)}
# Ops whose output takes its input's quantization (the range of the output is unused).
PASS_THROUGH = ("relu", "transpose", "reshape", "split", "slice")
# Ops whose output has a fixed quantization (PROB, LOG_PROB).
FIXED_OUTPUT = ("softmax", "logistic", "log_softmax")


def _quant_source(graph: Graph, producers: dict[str, Node], name: str) -> str | None:
    """The activation whose calibrated range sets ``name``'s quantization (through
    data-movement ops and ReLU), or None when it is fixed (a model input, a softmax or
    logistic output)."""
    seen = set()
    while name in producers and producers[name].op in PASS_THROUGH and name not in seen:
        seen.add(name)
        name = producers[name].inputs[0]
    if name in graph.inputs or (name in producers and producers[name].op in FIXED_OUTPUT):
        return None
    return name


def shared_scale_groups(graph: Graph) -> list[list[str]]:
    """Activations that scale tying gives one range: for every constant that two or more
    TIED_OPS nodes use, their inputs' quantization sources (when the op's data depends on
    it) and their outputs' (a source that is fixed is left out)."""
    producers = {o: n for n in graph.nodes for o in n.outputs}
    uses: dict[str, list[Node]] = {}
    for n in graph.nodes:
        if n.op in TIED_OPS and len(n.inputs) > TIED_OPS[n.op][0] and n.inputs[TIED_OPS[n.op][0]]:
            uses.setdefault(n.inputs[TIED_OPS[n.op][0]], []).append(n)
    groups = []
    for nodes in uses.values():
        if len(nodes) < 2:
            continue
        sides = [[n.outputs[0] for n in nodes]]
        if TIED_OPS[nodes[0].op][1]:
            sides.append([n.inputs[0] for n in nodes])
        for side in sides:
            group = sorted({src for x in side
                            if (src := _quant_source(graph, producers, x)) is not None})
            if len(group) > 1:
                groups.append(group)
    return groups


def _union_ranges(ranges: Ranges, groups: list[list[str]]) -> Ranges:
    """Every activation of a group (and of groups that share a member, transitively) gets
    the union of their ranges."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for group in groups:
        names = [x for x in group if x in ranges.lo]
        for x in names[1:]:
            a, b = find(names[0]), find(x)
            if a != b:
                parent[max(a, b)] = min(a, b)
    lo, hi = dict(ranges.lo), dict(ranges.hi)
    classes: dict[str, list[str]] = {}
    for x in parent:
        classes.setdefault(find(x), []).append(x)
    for root, members in classes.items():
        names = [root, *members]
        a, b = min(lo[x] for x in names), max(hi[x] for x in names)
        for x in names:
            lo[x], hi[x] = a, b
    return Ranges(lo, hi, ranges.samples)


class _Quantizer:
    def __init__(self, graph: Graph, ranges: Ranges) -> None:
        self.f = graph
        self.r = ranges
        self.g = Graph(inputs=list(graph.inputs), outputs=list(graph.outputs),
                       meta=dict(graph.meta))
        self.q: dict[str, Quant] = {}  # float value name -> quant of its int8 twin
        self.weights: dict[tuple[str, int], str] = {}  # (float const, axis) -> int8 const
        self.biases: dict[tuple[str, bytes], str] = {}  # (bias const, content) -> int32
        self.operands: dict[str, str] = {}  # constant operand (+ its quant) -> int8 const

    # ----------------------------------------------------------------- values
    def act(self, name: str, quant: Quant | None = None) -> str:
        """The int8 value for float activation ``name`` (created on first use)."""
        if name not in self.g.values:
            fv = self.f.values[name]
            if quant is None:
                if name not in self.r.lo:
                    raise QuantizationError(f"no calibration range for {name} "
                                            f"({fv.origin})")
                quant = activation_quant(self.r.lo[name], self.r.hi[name])
            self.g.values[name] = Value(name, fv.shape, "int8", None, quant, fv.origin)
            self.q[name] = quant
        return name

    def weight(self, name: str, axis: int) -> str:
        key = (name, axis)
        if key not in self.weights:
            fv = self.f.values[name]
            assert fv.data is not None
            data, quant = weight_quant(fv.data, axis)
            new = self.g.add_const(name, data, fv.origin)
            self.g.values[new].quant = quant
            self.weights[key] = new
        return self.weights[key]

    def bias(self, name: str, in_scale: float, w_quant: Quant) -> str:
        if not name:
            return ""
        fv = self.f.values[name]
        assert fv.data is not None
        acc_scale = np.float64(np.float32(in_scale)) * np.array(w_quant.scale, np.float64)
        q = np.clip(np.round(fv.data.astype(np.float64) / acc_scale), -(2**31), 2**31 - 1)
        data = q.astype(np.int32)
        key = (name, data.tobytes())
        if key not in self.biases:  # one array per distinct content, not per use
            new = self.g.add_const(name, data, fv.origin)
            self.g.values[new].quant = Quant(tuple(float(s) for s in acc_scale.astype(
                np.float32)), (0,) * len(acc_scale), 0)
            self.biases[key] = new
        return self.biases[key]

    def emit(self, op: str, inputs: list[str], outputs: list[str], params: Any,
             src: Node, **attrs: Any) -> None:
        at = {"scope": src.attrs.get("scope", ""), **attrs, "params": params}
        self.g.nodes.append(Node(op, inputs, outputs, at, origin=src.origin, name=src.name))

    def temp(self, base: str, shape: tuple[int, ...], quant: Quant, origin: str) -> str:
        name = self.g.fresh_name(base)
        while name in self.f.values:
            name = self.g.fresh_name(name + "_")
        self.g.values[name] = Value(name, shape, "int8", None, quant, origin)
        self.q[name] = quant
        return name

    # --------------------------------------------------------------------- run
    def run(self) -> Graph:
        for name in self.f.inputs:
            self.act(name)
        for n in self.f.nodes:
            handler = getattr(self, f"_q_{n.op}", None)
            if handler is None:
                raise QuantizationError(f"op {n.op} at {n.origin} has no int8 form")
            try:
                handler(n)
            except ValueError as err:  # a scale or multiplier TFLM's int8 kernels refuse
                raise QuantizationError(
                    f"{n.op} at {n.origin} has no int8 form for these weights: {err}",
                    "the weights are degenerate (huge, tiny or all zero); retrain or "
                    "repair the checkpoint") from None
        return self.g

    def _in(self, n: Node, i: int = 0) -> tuple[str, Quant]:
        name = self.act(n.inputs[i])
        return name, self.q[name]

    def _q_linear(self, n: Node) -> None:
        x, qx = self._in(n)
        w = self.weight(n.inputs[1], 0)
        qw = self.g.values[w].quant
        assert qw is not None
        b = self.bias(n.inputs[2], qx.s, qw)
        y = self.act(n.outputs[0])
        qy = self.q[y]
        act = "RELU" if n.attrs.get("act") == "relu" else "NONE"
        p = K.prepare_fully_connected(qx.s, qx.zp, list(qw.scale), qy.s, qy.zp, act)
        self.emit("fully_connected", [x, w, b], [y], p, n)

    def _q_conv(self, n: Node, depthwise: bool) -> None:
        x, qx = self._in(n)
        w = self.weight(n.inputs[1], 3 if depthwise else 0)
        wv = self.g.values[w]
        qw = wv.quant
        assert qw is not None
        b = self.bias(n.inputs[2], qx.s, qw)
        y = self.act(n.outputs[0])
        qy = self.q[y]
        act = "RELU" if n.attrs.get("act") == "relu" else "NONE"
        in_shape = self.g.values[x].shape
        padding = _conv_padding(n, in_shape, wv.shape)
        ph, pw = n.attrs.get("pad", [0, 0])
        prep = K.prepare_depthwise_conv2d if depthwise else K.prepare_conv2d
        explicit = padding == "EXPLICIT"
        shape = (in_shape[0], in_shape[1] + 2 * ph, in_shape[2] + 2 * pw, in_shape[3]) \
            if explicit else in_shape  # EXPLICIT: VALID over the zero-point-padded input
        p = prep(qx.s, qx.zp, list(qw.scale), qy.s, qy.zp, input_shape=shape,
                 filter_shape=wv.shape, stride_h=n.attrs["stride"][0],
                 stride_w=n.attrs["stride"][1], padding="VALID" if explicit else padding,
                 activation=act)
        if explicit:
            p = replace(p, pad_h=ph, pad_w=pw)
        self.emit("depthwise_conv2d" if depthwise else "conv2d", [x, w, b], [y], p, n,
                  padding=padding, pad=[ph, pw])

    def _q_conv2d(self, n: Node) -> None:
        self._q_conv(n, depthwise=False)

    def _q_depthwise_conv2d(self, n: Node) -> None:
        self._q_conv(n, depthwise=True)

    def _q_layer_norm(self, n: Node) -> None:
        x, qx = self._in(n)
        y = self.act(n.outputs[0])
        qy = self.q[y]
        gamma = self.f.values[n.inputs[1]].data if n.inputs[1] else None
        beta = self.f.values[n.inputs[2]].data if n.inputs[2] else None
        d = self.g.values[x].shape[-1]
        p = prepare_layer_norm(qx.s, qx.zp, qy.s, qy.zp, gamma, beta, n.attrs["eps"], d)
        self.emit("layer_norm", [x], [y], p, n, eps=n.attrs["eps"],
                  gamma=n.inputs[1], beta=n.inputs[2])

    def _logistic_then_mul(self, n: Node, gate_in: str, other: str, out: str) -> None:
        """out = other * logistic(gate_in), the int8 form of SiLU and GLU."""
        qg = self.q[gate_in]
        gate = self.temp(f"{out}_sigmoid", self.g.values[gate_in].shape, PROB, n.origin)
        self.emit("logistic", [gate_in], [gate], K.prepare_logistic(qg.s, qg.zp), n)
        y = self.act(out)
        qo, qy = self.q[other], self.q[y]
        p = K.prepare_mul(qo.s, qo.zp, PROB.s, PROB.zp, qy.s, qy.zp)
        self.emit("mul", [other, gate], [y], p, n)

    def _q_silu(self, n: Node) -> None:
        x, _ = self._in(n)
        self._logistic_then_mul(n, x, x, n.outputs[0])

    def _q_logistic(self, n: Node) -> None:
        x, qx = self._in(n)
        y = self.act(n.outputs[0], PROB)
        self.emit("logistic", [x], [y], K.prepare_logistic(qx.s, qx.zp), n)

    def _q_glu(self, n: Node) -> None:
        x, qx = self._in(n)
        shape = self.g.values[x].shape
        half = (*shape[:-1], shape[-1] // 2)
        a = self.temp(f"{n.outputs[0]}_a", half, qx, n.origin)
        b = self.temp(f"{n.outputs[0]}_b", half, qx, n.origin)
        self.emit("split", [x], [a, b], None, n, axis=-1, sections=[half[-1], half[-1]])
        self._logistic_then_mul(n, b, a, n.outputs[0])

    def _q_softmax(self, n: Node) -> None:
        x, qx = self._in(n)
        y = self.act(n.outputs[0], PROB)
        self.emit("softmax", [x], [y], K.prepare_softmax(qx.s), n, axis=-1)

    def const_operand(self, src: str, quant: Quant | None = None) -> str:
        """A constant operand of add/mul/batch_matmul/concat: per-tensor int8 (its own
        range, or ``quant``), stored once per (constant, quantization)."""
        data = self.f.values[src].data
        assert data is not None
        cq = quant or activation_quant(float(data.min()), float(data.max()))
        key = f"{src}|{cq.scale}|{cq.zero_point}"
        if key not in self.operands:
            const = self.g.add_const(src, quantize_array(data, cq), self.f.values[src].origin)
            self.g.values[const].quant = cq
            self.q[const] = cq
            self.operands[key] = const
        return self.operands[key]

    def _q_slice(self, n: Node) -> None:
        self._layout(n)

    def _q_concat(self, n: Node) -> None:
        y = self.act(n.outputs[0])
        qy = self.q[y]
        names = []
        for src in n.inputs:
            if self.f.values[src].is_const:
                names.append(self.const_operand(src, qy))
            else:
                x = self.act(src)
                if self.q[x] != qy:
                    raise QuantizationError(
                        f"cat at {n.origin} joins a tensor that another cat also joins",
                        "concatenate each tensor once")
                names.append(x)
        self.emit("concat", names, [y], None, n, axis=n.attrs["axis"])

    def _q_log_softmax(self, n: Node) -> None:
        x, qx = self._in(n)
        y = self.act(n.outputs[0], LOG_PROB)
        self.emit("log_softmax", [x], [y], K.prepare_log_softmax(qx.s), n, axis=-1)

    def _q_batch_matmul(self, n: Node) -> None:
        a, qa = self._in(n, 0)
        if self.f.values[n.inputs[1]].is_const:
            b = self.const_operand(n.inputs[1])
            qb = self.q[b]
        else:
            b, qb = self._in(n, 1)
        y = self.act(n.outputs[0])
        qy = self.q[y]
        p = K.prepare_batch_matmul(qa.s, qa.zp, qb.s, qb.zp, qy.s, qy.zp,
                                   adj_x=bool(n.attrs.get("adj_x")),
                                   adj_y=bool(n.attrs.get("adj_y")))
        self.emit("batch_matmul", [a, b], [y], p, n)

    def _binary(self, n: Node, prep: Callable[..., Any]) -> None:
        names = []
        order = [0, 1]
        if n.op in ("add", "mul") and self.f.values[n.inputs[0]].is_const:
            order = [1, 0]  # commutative: the constant goes second, as the C kernel takes it
        for i in order:
            src = n.inputs[i]
            if self.f.values[src].is_const:  # a constant operand: per-tensor int8, once
                names.append(self.const_operand(src))
            else:
                names.append(self.act(src))
        y = self.act(n.outputs[0])
        qa, qb, qy = self.q[names[0]], self.q[names[1]], self.q[y]
        self.emit(n.op, names, [y], prep(qa.s, qa.zp, qb.s, qb.zp, qy.s, qy.zp), n)

    def _q_add(self, n: Node) -> None:
        self._binary(n, K.prepare_add)

    def _q_sub(self, n: Node) -> None:
        self._binary(n, K.prepare_sub)

    def _q_mul(self, n: Node) -> None:
        self._binary(n, K.prepare_mul)

    def _q_squared_difference(self, n: Node) -> None:
        self._binary(n, K.prepare_squared_difference)

    def _q_mean(self, n: Node) -> None:
        x, qx = self._in(n)
        y = self.act(n.outputs[0])
        qy = self.q[y]
        p = K.prepare_mean(qx.s, qx.zp, qy.s, qy.zp, self.g.values[x].shape[-1])
        self.emit("mean", [x], [y], p, n, axis=-1)

    def _q_rsqrt(self, n: Node) -> None:
        x, qx = self._in(n)
        y = self.act(n.outputs[0])
        qy = self.q[y]
        self.emit("rsqrt", [x], [y], K.prepare_rsqrt(qx.s, qx.zp, qy.s, qy.zp), n)

    def _q_relu(self, n: Node) -> None:
        x, qx = self._in(n)
        y = self.act(n.outputs[0], qx)
        self.emit("relu", [x], [y], None, n)

    def _layout(self, n: Node) -> None:
        x, qx = self._in(n)
        outs = [self.act(o, qx) for o in n.outputs]  # data movement keeps the scale
        attrs = {k: v for k, v in n.attrs.items() if k != "scope"}
        self.emit(n.op, [x], outs, None, n, **attrs)

    _q_transpose = _layout
    _q_reshape = _layout
    _q_split = _layout


def check_constants(graph: Graph) -> None:
    """Raise QuantizationError naming the first constant with NaN or Inf."""
    for v in graph.constants():
        assert v.data is not None
        if not np.isfinite(v.data).all():
            raise QuantizationError(f"weight {v.origin or v.name} has NaN/Inf values",
                                    "retrain or repair the checkpoint; int8 cannot hold them")


def quantize(graph: Graph, ranges: Ranges, tie_scales: bool = True) -> Graph:
    """The int8 graph of an optimized float graph, given calibration ranges; with
    ``tie_scales``, the uses of a shared weight or layer norm share their ranges
    (:func:`shared_scale_groups`)."""
    check_constants(graph)
    if tie_scales:  # with the concats' groups: one union over both kinds of link
        concats = [[i for i in n.inputs if not graph.values[i].is_const] + n.outputs
                   for n in graph.nodes if n.op == "concat"]
        ranges = _union_ranges(ranges, shared_scale_groups(graph) + concats)
    qg = _Quantizer(graph, _unify_concat_ranges(graph, ranges)).run()
    qg.meta["scale_tying"] = tie_scales
    qg.meta["calibration_samples"] = ranges.samples
    return qg
