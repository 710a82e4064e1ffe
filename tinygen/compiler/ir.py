"""tinygen's IR: a flat, topologically ordered graph of ops over named values.

A *value* is an activation tensor or a constant. Constants are keyed by the identity of
the tensor they came from, never by name: a weight that eight virtual layers use is one
constant with eight users. Activations are per use: each virtual layer's ops produce
their own values, so each gets its own quantization range.

Layouts follow TFLite: conv2d is NHWC with OHWI weights, depthwise_conv2d is NHWC with
1HWC weights, linear weights are (out, in).

Float ops (after the frontend):
    linear(x, w, b?)            conv2d(x, w, b?)          depthwise_conv2d(x, w, b?)
    batch_norm(x, mean, var, gamma, beta)  {axis, eps}
    layer_norm(x, gamma?, beta?) {eps}     silu(x)   relu(x)   logistic(x)
    glu(x) {axis}   softmax(x) {axis}   batch_matmul(a, b) {adj_x, adj_y}
    add(a, b)  sub(a, b)  mul(a, b)        transpose(x) {perm}   reshape(x) {shape}
    split(x) {axis, sections}   (several outputs)
    log_softmax(x) {axis}   slice(x) {begin, size}   concat(x0, x1, ...) {axis}

A constant operand may appear in add/mul (scalar or per-channel), in batch_matmul (the
right-hand side) and in concat (e.g. zero padding).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Quant:
    """Affine int8/int32 quantization: real = scale * (q - zero_point).

    ``axis`` is None for per-tensor parameters, else the per-channel axis; ``scale`` and
    ``zero_point`` are then tuples with one entry per channel.
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    @property
    def per_channel(self) -> bool:
        return self.axis is not None

    @property
    def s(self) -> float:
        """The per-tensor scale."""
        assert self.axis is None, "per-channel quantization has no single scale"
        return self.scale[0]

    @property
    def zp(self) -> int:
        assert self.axis is None, "per-channel quantization has no single zero point"
        return self.zero_point[0]


@dataclass
class Value:
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"  # float32 | int8 | int32
    data: np.ndarray | None = None  # set for constants
    quant: Quant | None = None
    origin: str = ""  # where it came from in the model (parameter name, module path)

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass
class Node:
    op: str
    inputs: list[str]  # value names; "" for an absent optional input
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    origin: str = ""  # module path in the source model, e.g. "blocks.0.ffn1.w1"
    name: str = ""

    def const_inputs(self, graph: Graph) -> list[str]:
        return [i for i in self.inputs if i and graph.values[i].is_const]


@dataclass
class Graph:
    values: dict[str, Value] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ queries
    def constants(self) -> Iterator[Value]:
        return (v for v in self.values.values() if v.is_const)

    def producer(self) -> dict[str, Node]:
        return {out: n for n in self.nodes for out in n.outputs}

    def users(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {name: [] for name in self.values}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    out[i].append(n)
        return out

    def copy(self) -> Graph:
        return copy.deepcopy(self)

    # ----------------------------------------------------------------- building
    def fresh_name(self, base: str) -> str:
        name, k = base, 1
        while name in self.values:
            name = f"{base}_{k}"
            k += 1
        return name

    def add_value(self, name: str, shape: tuple[int, ...], dtype: str = "float32",
                  data: np.ndarray | None = None, origin: str = "") -> str:
        name = self.fresh_name(name)
        self.values[name] = Value(name, tuple(int(s) for s in shape), dtype, data,
                                  origin=origin)
        return name

    def add_const(self, name: str, data: np.ndarray, origin: str = "") -> str:
        data = np.ascontiguousarray(data)
        return self.add_value(name, data.shape, str(data.dtype), data, origin)

    def replace_uses(self, old: str, new: str) -> None:
        for n in self.nodes:
            n.inputs = [new if i == old else i for i in n.inputs]
        self.outputs = [new if o == old else o for o in self.outputs]

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n.op] = counts.get(n.op, 0) + 1
        return dict(sorted(counts.items()))

    def summary(self) -> str:
        lines = [f"graph: {len(self.nodes)} ops, {sum(1 for _ in self.constants())} "
                 f"constants, inputs {self.inputs}, outputs {self.outputs}"]
        for n in self.nodes:
            ins = ", ".join(i or "-" for i in n.inputs)
            lines.append(f"  {', '.join(n.outputs)} = {n.op}({ins}) {n.attrs or ''}"
                         f"  # {n.origin}")
        return "\n".join(lines)
