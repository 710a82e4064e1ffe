"""A float32 numpy interpreter of the IR.

It checks that lowering and every pass keep the model's maths (against torch, by
allclose), and it records the activation ranges that calibration needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinygen.compiler.ir import Graph, Node

Array = np.ndarray


def _sigmoid(x: Array) -> Array:
    # beyond +-500 the float32 result is exactly 0 or 1; the clip keeps exp finite
    return (1.0 / (1.0 + np.exp(-np.clip(x.astype(np.float64), -500.0, 500.0)))
            ).astype(np.float32)


def pad_amounts(attrs: dict[str, Any]) -> tuple[int, int]:
    ph, pw = attrs.get("pad", [0, 0])
    return int(ph), int(pw)


def conv2d_nhwc(x: Array, w: Array, b: Array | None, stride: list[int], pad: tuple[int, int],
                depthwise: bool) -> Array:
    """x (N, H, W, Cin); w (O, KH, KW, I) or (1, KH, KW, C) when depthwise."""
    ph, pw = pad
    x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    n, h, wd, c = x.shape
    kh, kw = w.shape[1], w.shape[2]
    sh, sw = stride
    oh, ow = (h - kh) // sh + 1, (wd - kw) // sw + 1
    # (N, OH, OW, KH, KW, C) windows without copying
    win = np.lib.stride_tricks.as_strided(
        x, (n, oh, ow, kh, kw, c),
        (x.strides[0], x.strides[1] * sh, x.strides[2] * sw, x.strides[1], x.strides[2],
         x.strides[3]))
    if depthwise:
        out = np.einsum("nhwijc,ijc->nhwc", win, w[0], optimize=True)
    else:
        out = np.einsum("nhwijc,oijc->nhwo", win, w, optimize=True)
    if b is not None:
        out = out + b
    return out.astype(np.float32)


def _run_node(n: Node, a: list[Array | None]) -> list[Array]:
    op = n.op
    at = n.attrs
    x = a[0]
    assert x is not None
    if op == "linear":
        y = x @ a[1].T  # type: ignore[union-attr]
        if a[2] is not None:
            y = y + a[2]
        out = y
    elif op in ("conv2d", "depthwise_conv2d"):
        out = conv2d_nhwc(x, a[1], a[2], at["stride"], pad_amounts(at),  # type: ignore[arg-type]
                          op == "depthwise_conv2d")
    elif op == "batch_norm":
        mean, var, gamma, beta = a[1], a[2], a[3], a[4]
        shape = [1] * x.ndim
        shape[at["axis"]] = -1
        y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + at["eps"])  # type: ignore[union-attr]
        if gamma is not None:
            y = y * gamma.reshape(shape)
        if beta is not None:
            y = y + beta.reshape(shape)
        out = y
    elif op == "layer_norm":
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        y = (x - mean) / np.sqrt(var + at["eps"])
        if a[1] is not None:
            y = y * a[1]
        if a[2] is not None:
            y = y + a[2]
        out = y
    elif op == "silu":
        out = x * _sigmoid(x)
    elif op == "relu":
        out = np.maximum(x, 0)
    elif op == "logistic":
        out = _sigmoid(x)
    elif op == "glu":
        h = x.shape[-1] // 2
        out = x[..., :h] * _sigmoid(x[..., h:])
    elif op == "softmax":
        e = np.exp(x - x.max(-1, keepdims=True))
        out = e / e.sum(-1, keepdims=True)
    elif op == "log_softmax":
        z = x - x.max(-1, keepdims=True)
        out = z - np.log(np.exp(z).sum(-1, keepdims=True))
    elif op == "slice":
        out = x[tuple(slice(b, b + n) for b, n in zip(at["begin"], at["size"], strict=True))]
    elif op == "concat":
        out = np.concatenate([t for t in a if t is not None], axis=at["axis"])
    elif op == "batch_matmul":
        lhs = np.swapaxes(x, -1, -2) if at.get("adj_x") else x
        rhs = np.swapaxes(a[1], -1, -2) if at.get("adj_y") else a[1]  # type: ignore[arg-type]
        out = lhs @ rhs
    elif op == "add":
        out = x + a[1]
    elif op == "sub":
        out = x - a[1]
    elif op == "mul":
        out = x * a[1]
    elif op == "mean":
        out = x.mean(-1, keepdims=True)
    elif op == "squared_difference":
        out = (x - a[1]) ** 2
    elif op == "rsqrt":
        out = 1.0 / np.sqrt(x)
    elif op == "transpose":
        out = np.transpose(x, at["perm"])
    elif op == "reshape":
        out = x.reshape(at["shape"])
    elif op == "split":
        bounds = np.cumsum(at["sections"])[:-1]
        return [np.ascontiguousarray(p) for p in np.split(x, bounds, axis=-1)]
    else:
        raise NotImplementedError(f"float interpreter has no op {op}")
    if at.get("act") == "relu":
        out = np.maximum(out, 0)
    return [np.asarray(out, dtype=np.float32)]


def run(graph: Graph, inputs: list[Array],
        observe: Callable[[str, Array], None] | None = None) -> list[Array]:
    """Run ``graph`` on float inputs; ``observe(name, value)`` sees every activation."""
    env: dict[str, Array] = {}
    for name, arr in zip(graph.inputs, inputs, strict=True):
        env[name] = np.asarray(arr, dtype=np.float32).reshape(graph.values[name].shape)
        if observe:
            observe(name, env[name])
    for v in graph.constants():
        assert v.data is not None
        env[v.name] = v.data.astype(np.float32)
    for n in graph.nodes:
        args = [env[i] if i else None for i in n.inputs]
        # Degenerate weights (x1e30) can overflow float32: the value becomes Inf, which
        # calibration reports as one error line; numpy's RuntimeWarning must not print.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            outs = _run_node(n, args)
        for name, val in zip(n.outputs, outs, strict=True):
            env[name] = val
            if observe:
                observe(name, val)
    return [env[o] for o in graph.outputs]
