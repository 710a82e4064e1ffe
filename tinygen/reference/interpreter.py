"""The golden reference: a numpy interpreter of the int8 IR, bit-exact by construction.

Every op calls the TFLM-exact kernel in ``kernels`` (or tinygen's integer LayerNorm) with
the integers the quantizer prepared, so there is nothing to tune here. Every C build
(host, QEMU, device) must reproduce these outputs bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinygen.compiler.ir import Graph, Node
from tinygen.reference import kernels as K
from tinygen.reference.layernorm import layer_norm_s8

Array = np.ndarray


def _const(graph: Graph, name: str) -> Array | None:
    if not name:
        return None
    data = graph.values[name].data
    assert data is not None
    return data


def run_node(graph: Graph, n: Node, env: dict[str, Array]) -> list[Array]:
    p = n.attrs.get("params")
    x = env[n.inputs[0]]
    op = n.op
    if op == "fully_connected":
        return [K.fully_connected_s8(x, _const(graph, n.inputs[1]), _const(graph, n.inputs[2]),
                                     p)]
    if op == "conv2d":
        return [K.conv2d_s8(x, _const(graph, n.inputs[1]), _const(graph, n.inputs[2]), p)]
    if op == "depthwise_conv2d":
        return [K.depthwise_conv2d_s8(x, _const(graph, n.inputs[1]),
                                      _const(graph, n.inputs[2]), p)]
    if op == "layer_norm":
        return [layer_norm_s8(x, p)]
    if op == "logistic":
        return [K.logistic_s8(x, p)]
    if op == "softmax":
        return [K.softmax_s8(x, p)]
    if op == "log_softmax":
        return [K.log_softmax_s8(x, p)]
    if op == "batch_matmul":  # operands and result seen through folded transposes
        rhs = env[n.inputs[1]]
        if "lhs_perm" in n.attrs:
            x = x.transpose(n.attrs["lhs_perm"])
        if "rhs_perm" in n.attrs:
            rhs = rhs.transpose(n.attrs["rhs_perm"])
        y = K.batch_matmul_s8(x, rhs, p)
        return [np.ascontiguousarray(y.transpose(n.attrs["out_perm"]))
                if "out_perm" in n.attrs else y]
    if op == "slice":
        return [np.ascontiguousarray(x[tuple(slice(b, b + k) for b, k in zip(
            n.attrs["begin"], n.attrs["size"], strict=True))])]
    if op == "concat":
        return [np.concatenate([env[i] for i in n.inputs], axis=n.attrs["axis"])]
    if op in ("add", "sub", "mul"):
        fn = {"add": K.add_s8, "sub": K.sub_s8, "mul": K.mul_s8}[op]
        return [fn(x, env[n.inputs[1]], p)]
    if op == "mean":
        return [K.mean_s8(x, p)]
    if op == "squared_difference":
        return [K.squared_difference_s8(x, env[n.inputs[1]], p)]
    if op == "rsqrt":
        return [K.rsqrt_s8(x, p)]
    if op == "relu":
        zp = graph.values[n.inputs[0]].quant.zp  # type: ignore[union-attr]
        return [np.maximum(x, zp).astype(np.int8)]
    if op == "transpose":
        return [np.ascontiguousarray(np.transpose(x, n.attrs["perm"]))]
    if op == "reshape":
        return [x.reshape(n.attrs["shape"])]
    if op == "split":
        bounds = np.cumsum(n.attrs["sections"])[:-1]
        return [np.ascontiguousarray(part) for part in np.split(x, bounds, axis=-1)]
    raise NotImplementedError(f"golden reference has no op {op}")


def run(graph: Graph, inputs: list[Array],
        observe: Callable[[Node, list[Array]], None] | None = None) -> list[Array]:
    """Run the int8 graph on int8 inputs; ``observe(node, outputs)`` sees every op."""
    env: dict[str, Array] = {}
    for name, arr in zip(graph.inputs, inputs, strict=True):
        a = np.asarray(arr)
        if a.dtype != np.int8:
            raise TypeError(f"input {name} must be int8, got {a.dtype}")
        env[name] = a.reshape(graph.values[name].shape)
    for v in graph.constants():
        assert v.data is not None
        env[v.name] = v.data
    for n in graph.nodes:
        outs = run_node(graph, n, env)
        for name, val in zip(n.outputs, outs, strict=True):
            assert val.dtype == np.int8, (n.op, val.dtype)
            env[name] = val
        if observe:
            observe(n, outs)
    return [env[o] for o in graph.outputs]
