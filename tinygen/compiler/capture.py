"""Frontend: capture any nn.Module with torch.export and lower it to tinygen's IR.

Nothing here knows tinygen's model class. Parameters arrive as graph placeholders; the
frontend keys them by the identity of the tensor object behind them, so a parameter
that several placeholders (tied names) or several calls (repeated blocks) reach becomes
one IR constant with many users.

Convolutions are lowered to TFLite layouts (NHWC, OHWI / 1HWC weights) with explicit
transposes around them; ``passes.optimize_layout`` removes the ones that cancel.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import fx

from tinygen.compiler.ir import Graph, Node
from tinygen.errors import TinygenError


class UnsupportedOpError(TinygenError):
    """The model uses an op the compiler cannot lower."""


class FrontendError(TinygenError):
    """The model could not be captured."""


aten = torch.ops.aten


class _Const:
    """A tensor known at compile time (a parameter, a buffer, or an op on those only)."""

    def __init__(self, tensor: torch.Tensor, name: str) -> None:
        self.tensor = tensor
        self.name = name


Lowering = Callable[["_Lowerer", fx.Node, list[Any]], Any]
_LOWERINGS: dict[Any, Lowering] = {}


def _lowers(*targets: Any) -> Callable[[Lowering], Lowering]:
    def register(fn: Lowering) -> Lowering:
        for t in targets:
            _LOWERINGS[t] = fn
        return fn

    return register


def supported_ops() -> list[str]:
    names = {str(t).replace("aten.", "").split(".")[0] for t in _LOWERINGS}
    return sorted(n for n in names if not n.startswith(("<", "_")))


def capture(module: torch.nn.Module,
            example: torch.Tensor | tuple[torch.Tensor, ...]) -> Graph:
    """torch.export ``module`` on ``example`` (eval mode) and lower it to IR.

    ``example`` is one tensor, or a tuple of tensors for a module with several inputs
    (a streaming step: features and its state); the IR's inputs follow their order."""
    was_training = module.training
    _set_mode(module, False)
    args = example if isinstance(example, tuple) else (example,)
    try:
        with torch.no_grad():
            ep = torch.export.export(module, args)
    except Exception as err:  # torch raises many types; report the first line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FrontendError(f"torch.export could not capture the model: {first[:200]}",
                            "the model must be traceable with one tensor input") from None
    finally:
        _set_mode(module, was_training)
    return _Lowerer(ep).run()


def _set_mode(module: torch.nn.Module, training: bool) -> None:
    # ExportedProgram.module() refuses train/eval: its mode was fixed at export
    with contextlib.suppress(NotImplementedError):
        module.train(training)


def parameter_counts(graph: Graph) -> dict[str, Any]:
    """unique_params, virtual_params and the sharing groups of a compiled graph, counted
    from parameter identity and uses in the captured graph (any model, not a config)."""
    groups = graph.meta.get("params", [])
    shared = [{"params": g["names"], "numel": g["numel"], "uses": g["uses"]}
              for g in groups if len(g["names"]) > 1 or g["uses"] > 1]
    return {"unique_params": sum(g["numel"] for g in groups),
            "virtual_params": sum(g["numel"] * g["uses"] for g in groups),
            "parameter_tensors": len(groups),
            "sharing_groups": shared}


def capture_program(ep: torch.export.ExportedProgram) -> Graph:
    """Lower an ExportedProgram as it is (a ``.pt2`` the user exported)."""
    return _Lowerer(ep).run()


def tensor_key(t: torch.Tensor) -> tuple[Any, ...]:
    """The identity of a tensor's data: its storage, offset, shape, strides and dtype.

    Two Parameter objects over one storage are one weight: ``torch.export.load`` gives
    each name of a tied Parameter its own tensor object, but over the same storage."""
    return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape),
            tuple(t.stride()), str(t.dtype))


def _mutates(target: Any) -> bool:
    """An in-place aten op (``aten.copy_.default``)."""
    parts = str(target).split(".")
    return len(parts) >= 2 and parts[1].endswith("_")


def _live_nodes(graph: fx.Graph) -> set[fx.Node]:
    """Nodes the output depends on, plus in-place ops on anything (they mutate a constant
    that a live node may read, e.g. ``pe[:, 0::2] = sin(...)``)."""
    live: set[fx.Node] = set()
    stack = [n for n in graph.nodes if n.op == "output" or (
        n.op == "call_function" and _mutates(n.target))]
    while stack:
        n = stack.pop()
        if n in live:
            continue
        live.add(n)
        stack.extend(n.all_input_nodes)
    return live


def _origin(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "<top level>"
    key = list(stack)[-1]
    return key.removeprefix("L__self__").removeprefix("L['self'].") or "<top level>"


def _scope(node: fx.Node) -> str:
    """The top-level submodule call this node belongs to, e.g. 'blocks.0@1'."""
    stack = node.meta.get("nn_module_stack") or {}
    for key in stack:
        name = key.removeprefix("L__self__").removeprefix("L['self'].")
        if name:
            return name
    return ""


class _Lowerer:
    def __init__(self, ep: torch.export.ExportedProgram) -> None:
        self.ep = ep
        self.g = Graph()
        self.env: dict[str, Any] = {}  # fx node name -> IR value name or python scalar
        self.const_by_id: dict[tuple[Any, ...], str] = {}
        self.keep_alive: list[torch.Tensor] = []  # ids stay valid while we hold these
        self.derived_consts: dict[str, str] = {}
        self.fold_memo: dict[Any, Any] = {}
        self.node: fx.Node | None = None

    # ------------------------------------------------------------------ helpers
    def shape(self, node: fx.Node) -> tuple[int, ...]:
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            raise FrontendError(f"op {node.target} at {_origin(node)} has no tensor shape")
        return tuple(int(s) for s in val.shape)

    def const(self, tensor: torch.Tensor, name: str) -> str:
        key = tensor_key(tensor)
        if key not in self.const_by_id:
            self.keep_alive.append(tensor)
            data = tensor.detach().cpu().to(torch.float32).numpy().copy()
            self.const_by_id[key] = self.g.add_const(name.replace(".", "_"), data, name)
        return self.const_by_id[key]

    def derived(self, src: str, tag: str, make: Callable[[], np.ndarray]) -> str:
        """A constant computed from constant ``src`` (a re-layout), made once per source.

        A shared weight used by many convolutions gets one re-laid-out copy, not one per use.
        """
        key = f"{src}#{tag}"
        if key not in self.derived_consts:
            origin = self.g.values[src].origin
            self.derived_consts[key] = self.g.add_const(f"{src}_{tag}", make(), origin)
        return self.derived_consts[key]

    def scalar_const(self, value: float) -> str:
        name = f"scalar_{value:g}".replace("-", "m").replace(".", "p").replace("+", "")
        for v in self.g.constants():
            if v.shape == () and v.data is not None and float(v.data) == float(value):
                return v.name
        return self.g.add_const(name, np.array(value, dtype=np.float32), f"scalar {value:g}")

    def emit(self, op: str, inputs: list[str],
             out_shape: tuple[int, ...] | list[tuple[int, ...]], **attrs: Any) -> Any:
        assert self.node is not None
        base = self.node.name
        shapes = out_shape if isinstance(out_shape, list) else [out_shape]
        outs = [self.g.add_value(base if len(shapes) == 1 else f"{base}_{i}", s)
                for i, s in enumerate(shapes)]
        self.g.nodes.append(Node(op, inputs, outs, dict(attrs), origin=_origin(self.node),
                                 name=base))
        self.g.nodes[-1].attrs.setdefault("scope", _scope(self.node))
        return outs if isinstance(out_shape, list) else outs[0]

    def value(self, arg: Any) -> str:
        if isinstance(arg, fx.Node):
            v = self.env[arg.name]
            if isinstance(v, str):
                return v
            if isinstance(v, _Const):
                if v.tensor.dim() == 0:
                    return self.scalar_const(float(v.tensor))
                return self.const(v.tensor, v.name)
            return self.scalar_const(float(v))
        if isinstance(arg, (int, float)):
            return self.scalar_const(float(arg))
        raise FrontendError(f"unexpected argument {arg!r} at {self.where()}")

    def where(self) -> str:
        return _origin(self.node) if self.node is not None else "?"

    # ------------------------------------------------------------ constant folding
    def foldable(self, node: fx.Node) -> bool:
        """Every tensor argument is known at compile time (or there is none: zeros)."""
        ok = True

        def check(a: Any) -> Any:
            nonlocal ok
            if isinstance(a, fx.Node) and isinstance(self.env.get(a.name), str):
                ok = False
            return a

        fx.node.map_aggregate((node.args, node.kwargs), check)
        return ok

    def fold(self, node: fx.Node) -> Any:
        """Run the op in torch on its constant arguments. The result is memoised by the
        identity of those arguments, so ``W.t()`` of one shared Parameter in several
        blocks is one constant, not one per block."""

        def real(a: Any) -> Any:
            if isinstance(a, fx.Node):
                v = self.env[a.name]
                if isinstance(v, list):
                    return [e.tensor if isinstance(e, _Const) else e for e in v]
                return v.tensor if isinstance(v, _Const) else v
            return a

        args, kwargs = fx.node.map_aggregate((node.args, node.kwargs), real)
        key = (node.target, repr(fx.node.map_aggregate(
            (args, kwargs), lambda a: tensor_key(a) if isinstance(a, torch.Tensor) else a)))
        mutates = _mutates(node.target)
        if not mutates and key in self.fold_memo:
            return self.fold_memo[key]
        with torch.no_grad():
            out = node.target(*args, **kwargs)
        self.keep_alive.append(out)
        tag = f"{_origin(node)}.{node.name}"
        if isinstance(out, (list, tuple)):
            result: Any = [_Const(o, f"{tag}.{i}") if isinstance(o, torch.Tensor) else o
                           for i, o in enumerate(out)]
        elif isinstance(out, torch.Tensor):
            result = _Const(out, tag)
        else:
            result = out
        if not mutates:
            self.fold_memo[key] = result
        return result

    # ---------------------------------------------------------------------- run
    def run(self) -> Graph:
        sig = self.ep.graph_signature
        tensors: dict[str, torch.Tensor] = {**self.ep.state_dict, **self.ep.constants}
        kinds: dict[str, str] = {}
        targets: dict[str, str] = {}
        for spec in sig.input_specs:
            arg_name = getattr(spec.arg, "name", None)
            if arg_name is not None:
                kinds[arg_name] = spec.kind.name
                targets[arg_name] = spec.target or arg_name
        live = _live_nodes(self.ep.graph)
        first_name: dict[tuple[Any, ...], str] = {}
        for node in self.ep.graph.nodes:
            self.node = node
            if node.op == "placeholder":
                kind = kinds.get(node.name, "USER_INPUT")
                if kind == "USER_INPUT":
                    name = self.g.add_value("input", self.shape(node), origin="input")
                    self.g.inputs.append(name)
                    self.env[node.name] = name
                else:  # named by the first name of its storage (tied names are one)
                    t = tensors[targets[node.name]]
                    self.env[node.name] = _Const(t, first_name.setdefault(
                        tensor_key(t), targets[node.name]))
            elif node.op == "call_function":
                if node not in live:
                    continue  # e.g. attention weights nobody reads
                if self.foldable(node):
                    self.env[node.name] = self.fold(node)
                    continue
                lower = _LOWERINGS.get(node.target)
                if lower is None:
                    raise UnsupportedOpError(
                        f"unsupported op {node.target} at {_origin(node)}",
                        "rewrite it with the ops tinygen compiles, or move it out of the "
                        f"model: {', '.join(supported_ops())}")
                args = list(node.args)
                self.env[node.name] = lower(self, node, args)
            elif node.op == "output":
                outs = node.args[0]
                outs = outs if isinstance(outs, (list, tuple)) else [outs]
                self.g.outputs = [self.value(o) for o in outs]
            else:
                raise UnsupportedOpError(f"unsupported graph node kind {node.op!r} "
                                         f"at {_origin(node)}")
        for i, name in enumerate(self.g.outputs):
            if name in self.g.inputs or self.g.values[name].is_const:
                raise FrontendError("the model output is an input or a constant")
            self.g.values[name].origin = f"output {i}"
        self.g.meta["params"] = self.parameter_groups(tensors, kinds, targets, live)
        return self.g

    def parameter_groups(self, tensors: dict[str, torch.Tensor], kinds: dict[str, str],
                         targets: dict[str, str], live: set[fx.Node]
                         ) -> list[dict[str, Any]]:
        """Every stored parameter once (keyed by its data's identity, so tied names and a
        Parameter lifted twice are one), with the names that reach it and its uses: the
        ops of the captured graph that read it, each call of a repeated block counted."""
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        for node in self.ep.graph.nodes:
            if node.op != "placeholder" or kinds.get(node.name) != "PARAMETER":
                continue
            t = tensors[targets[node.name]]
            g = groups.setdefault(tensor_key(t), {"names": [], "numel": int(t.numel()),
                                                  "uses": 0})
            g["names"].append(targets[node.name])
            g["uses"] += sum(1 for u in node.users if u in live)
        return sorted(groups.values(), key=lambda g: g["names"][0])


# --------------------------------------------------------------------- lowerings
def _perm_to_nhwc(rank: int) -> list[int]:
    return [0, *range(2, rank), 1]


def _perm_to_nchw(rank: int) -> list[int]:
    return [0, rank - 1, *range(1, rank - 1)]


def _permuted(shape: tuple[int, ...], perm: list[int]) -> tuple[int, ...]:
    return tuple(shape[p] for p in perm)


@_lowers(aten.linear.default)
def _linear(lw: _Lowerer, node: fx.Node, args: list[Any]) -> str:
    x, w = lw.value(args[0]), lw.value(args[1])
    b = lw.value(args[2]) if len(args) > 2 and args[2] is not None else ""
    return lw.emit("linear", [x, w, b], lw.shape(node))


@_lowers(aten.conv2d.default, aten.conv1d.default)
def _conv(lw: _Lowerer, node: fx.Node, args: list[Any]) -> str:
    x, w = lw.value(args[0]), lw.value(args[1])
    b = lw.value(args[2]) if len(args) > 2 and args[2] is not None else ""
    spatial = 2 if node.target == aten.conv2d.default else 1

    def ints(i: int, default: int) -> list[int]:
        v = args[i] if len(args) > i else default
        if isinstance(v, str):
            raise UnsupportedOpError(f"string padding at {lw.where()}", "use integer padding")
        vals = [int(e) for e in v] if isinstance(v, (list, tuple)) else [int(v)]
        return vals * spatial if len(vals) == 1 else vals

    stride, padding, dilation = ints(3, 1), ints(4, 0), ints(5, 1)
    groups = int(args[6]) if len(args) > 6 else 1
    if any(d != 1 for d in dilation):
        raise UnsupportedOpError(f"dilated convolution at {lw.where()}",
                                 "tinygen supports dilation 1")
    wv = lw.g.values[w]
    xshape = lw.g.values[x].shape
    out_nchw = lw.shape(node)
    c_in, c_out = xshape[1], out_nchw[1]
    # NCHW / NCW -> NHWC: conv1d runs as a 2D conv with width 1.
    if spatial == 1:
        x = lw.emit("reshape", [x], (*xshape, 1), shape=[*xshape, 1])
        stride, padding = [stride[0], 1], [padding[0], 0]
        xshape = (*xshape, 1)
    x = lw.emit("transpose", [x], _permuted(xshape, _perm_to_nhwc(4)), perm=_perm_to_nhwc(4))
    kh = wv.shape[2]
    kw = wv.shape[3] if spatial == 2 else 1
    depthwise = groups == c_in == c_out and groups > 1
    if groups != 1 and not depthwise:
        raise UnsupportedOpError(f"grouped convolution (groups={groups}) at {lw.where()}",
                                 "use groups=1 or a depthwise convolution")
    assert wv.data is not None
    wdata = wv.data.reshape(c_out, c_in // groups, kh, kw)
    if depthwise:  # (C, 1, KH, KW) -> (1, KH, KW, C)
        w_new = lw.derived(w, "1hwc", lambda: wdata.transpose(1, 2, 3, 0))
    else:  # (O, I, KH, KW) -> (O, KH, KW, I)
        w_new = lw.derived(w, "ohwi", lambda: wdata.transpose(0, 2, 3, 1))
    out_nhwc = (out_nchw[0], out_nchw[2], out_nchw[3] if spatial == 2 else 1, out_nchw[1])
    y = lw.emit("depthwise_conv2d" if depthwise else "conv2d", [x, w_new, b], out_nhwc,
                stride=[int(s) for s in stride], pad=[int(p) for p in padding])
    y = lw.emit("transpose", [y], _permuted(out_nhwc, _perm_to_nchw(4)),
                perm=_perm_to_nchw(4))
    if spatial == 1:
        y = lw.emit("reshape", [y], out_nchw, shape=list(out_nchw))
    return y


@_lowers(aten.batch_norm.default, aten._native_batch_norm_legit_no_training.default)
def _batch_norm(lw: _Lowerer, node: fx.Node, args: list[Any]) -> Any:
    if node.target == aten.batch_norm.default:
        x, gamma, beta, mean, var, training, _, eps = args[:8]
        if training:
            raise UnsupportedOpError(f"training-mode batch_norm at {lw.where()}",
                                     "export the model in eval mode")
    else:
        x, gamma, beta, mean, var, _, eps = args[:7]
    ins = [lw.value(x), lw.value(mean), lw.value(var),
           lw.value(gamma) if gamma is not None else "",
           lw.value(beta) if beta is not None else ""]
    return lw.emit("batch_norm", ins, lw.g.values[ins[0]].shape, axis=1, eps=float(eps))


@_lowers(aten.layer_norm.default)
def _layer_norm(lw: _Lowerer, node: fx.Node, args: list[Any]) -> str:
    x, normalized = lw.value(args[0]), list(args[1])
    if len(normalized) != 1:
        raise UnsupportedOpError(f"layer_norm over {len(normalized)} dims at {lw.where()}",
                                 "normalise the last dimension only")
    gamma = lw.value(args[2]) if len(args) > 2 and args[2] is not None else ""
    beta = lw.value(args[3]) if len(args) > 3 and args[3] is not None else ""
    eps = float(args[4]) if len(args) > 4 else 1e-5
    return lw.emit("layer_norm", [x, gamma, beta], lw.shape(node), eps=eps)


@_lowers(aten.dropout.default, aten.alias.default, aten.clone.default,
         aten.contiguous.default, aten.detach.default)
def _identity(lw: _Lowerer, node: fx.Node, args: list[Any]) -> str:
    if node.target == aten.dropout.default and len(args) > 2 and args[2]:
        raise UnsupportedOpError(f"training-mode dropout at {lw.where()}",
                                 "export the model in eval mode")
    return lw.value(args[0])


def _negated(lw: _Lowerer, arg: Any) -> Any:
    """-arg for a compile-time constant (a number or a folded tensor), else None."""
    if isinstance(arg, (int, float)):
        return -float(arg)
    v = lw.env.get(arg.name) if isinstance(arg, fx.Node) else None
    if isinstance(v, _Const):  # one negated copy per constant, however often it is used
        key = ("neg", tensor_key(v.tensor))
        if key not in lw.fold_memo:
            lw.fold_memo[key] = _Const(-v.tensor, f"{v.name}.neg")
        return lw.fold_memo[key]
    return None


def _binary(op: str) -> Lowering:
    def lower(lw: _Lowerer, node: fx.Node, args: list[Any]) -> str:
        a, b = args[0], args[1]
        alpha = node.kwargs.get("alpha", 1)
        if op == "sub" and alpha == 1:  # x - c is x + (-c): the C runtime adds
            neg = _negated(lw, b)
            if neg is None:
                raise UnsupportedOpError(
                    f"subtraction of two activations at {lw.where()}",
                    "write a + (-1.0 * b), or subtract a constant")
            if isinstance(neg, _Const):
                lw.keep_alive.append(neg.tensor)
                neg = lw.const(neg.tensor, neg.name)
            return lw.emit("add", [lw.value(a), lw.value(neg) if not isinstance(neg, str)
                                   else neg], lw.shape(node))
        if alpha != 1:
            b_val = lw.value(b)
            b = lw.emit("mul", [b_val, lw.scalar_const(float(alpha))],
                        lw.g.values[b_val].shape)
            return lw.emit(op, [lw.value(a), b], lw.shape(node))
        return lw.emit(op, [lw.value(a), lw.value(b)], lw.shape(node))

    return lower


_lowers(aten.add.Tensor)(_binary("add"))
_lowers(aten.sub.Tensor)(_binary("sub"))
_lowers(aten.mul.Tensor)(_binary("mul"))


@_lowers(aten.div.Tensor)
def _div(lw: _Lowerer, node: fx.Node, args: list[Any]) -> str:
    if isinstance(args[1], (int, float)):
        return lw.emit("mul", [lw.value(args[0]), lw.scalar_const(1.0 / float(args[1]))],
                       lw.shape(node))
    v = lw.env.get(args[1].name) if isinstance(args[1], fx.Node) else None
    if isinstance(v, _Const) and "rounding_mode" not in node.kwargs:  # x / buffer
        key = ("inv", tensor_key(v.tensor))
        if key not in lw.fold_memo:
            lw.fold_memo[key] = _Const(1.0 / v.tensor.to(torch.float32), f"{v.name}.inv")
        inv = lw.fold_memo[key]
        lw.keep_alive.append(inv.tensor)
        c = lw.scalar_const(float(inv.tensor)) if inv.tensor.dim() == 0 else \
            lw.const(inv.tensor, inv.name)
        return lw.emit("mul", [lw.value(args[0]), c], lw.shape(node))
    raise UnsupportedOpError(f"division by an activation at {lw.where()}",
                             "divide by a constant, or multiply by a reciprocal")


def _unary(op: str) -> Lowering:
    def lower(lw: _Lowerer, node: fx.Node, args: list[Any]) -> str:
        return lw.emit(op, [lw.value(args[0])], lw.shape(node))

    return lower


_lowers(aten.silu.default)(_unary("silu"))
_lowers(aten.relu.default)(_unary("relu"))
_lowers(aten.sigmoid.default)(_unary("logistic"))


def _over_last_axis(lw: _Lowerer, node: fx.Node, x: str, dim: int, op: str) -> str:
    """A last-axis op applied over ``dim``: transpose ``dim`` to the end and back.
    ``passes.optimize_layout`` cancels the transposes against the model's own (a GLU over
    the channels of a Conv1d output meets the conv's layout transposes)."""
    shape = lw.g.values[x].shape
    rank = len(shape)
    d = dim % rank
    if d == rank - 1:
        return lw.emit(op, [x], lw.shape(node), axis=-1)
    perm = list(range(rank))
    perm[d], perm[-1] = perm[-1], perm[d]
    xt = lw.emit("transpose", [x], _permuted(shape, perm), perm=perm)
    y = lw.emit(op, [xt], _permuted(lw.shape(node), perm), axis=-1)
    return lw.emit("transpose", [y], lw.shape(node), perm=perm)


@_lowers(aten.glu.default)
def _glu(lw: _Lowerer, node: fx.Node, args: list[Any]) -> str:
    dim = int(args[1]) if len(args) > 1 else -1
    return _over_last_axis(lw, node, lw.value(args[0]), dim, "glu")


@_lowers(aten.softmax.int, aten._softmax.default)
def _softmax(lw: _Lowerer, node: fx.Node, args: list[Any]) -> str:
    return _over_last_axis(lw, node, lw.value(args[0]), int(args[1]), "softmax")


@_lowers(aten.log_softmax.int, aten._log_softmax.default)
def _log_softmax(lw: _Lowerer, node: fx.Node, args: list[Any]) -> str:
    return _over_last_axis(lw, node, lw.value(args[0]), int(args[1]), "log_softmax")


@_lowers(aten.scaled_dot_product_attention.default)
def _sdpa(lw: _Lowerer, node: fx.Node, args: list[Any]) -> str:
    """softmax(q k^T * scale) v, as nn.MultiheadAttention's fast path calls it."""
    q, k, v = (lw.value(a) for a in args[:3])
    opts = dict(zip(("attn_mask", "dropout_p", "is_causal"), args[3:6], strict=False))
    opts.update(node.kwargs)
    if opts.get("attn_mask") is not None or opts.get("is_causal") or \
            float(opts.get("dropout_p") or 0.0) != 0.0:
        raise UnsupportedOpError(
            f"scaled_dot_product_attention with a mask, causal flag or dropout at "
            f"{lw.where()}", "call it without attn_mask / is_causal, in eval mode")
    qs, ks = lw.g.values[q].shape, lw.g.values[k].shape
    scale = opts.get("scale")
    scale = float(scale) if scale is not None else 1.0 / math.sqrt(qs[-1])
    s_shape = (*qs[:-1], ks[-2])
    scores = lw.emit("batch_matmul", [q, k], s_shape, adj_x=False, adj_y=True)
    scores = lw.emit("mul", [scores, lw.scalar_const(scale)], s_shape)
    probs = lw.emit("softmax", [scores], s_shape, axis=-1)
    return lw.emit("batch_matmul", [probs, v], lw.shape(node), adj_x=False, adj_y=False)


@_lowers(aten.select.int)
def _select(lw: _Lowerer, node: fx.Node, args: list[Any]) -> str:
    x = lw.value(args[0])
    shape = lw.g.values[x].shape
    d = int(args[1]) % len(shape)
    begin = [0] * len(shape)
    begin[d] = int(args[2]) % shape[d]
    size = list(shape)
    size[d] = 1
    y = lw.emit("slice", [x], tuple(size), begin=begin, size=size)
    return lw.emit("reshape", [y], lw.shape(node), shape=list(lw.shape(node)))


@_lowers(aten.slice.Tensor)
def _slice(lw: _Lowerer, node: fx.Node, args: list[Any]) -> str:
    x = lw.value(args[0])
    shape = lw.g.values[x].shape
    d = (int(args[1]) if len(args) > 1 else 0) % len(shape)
    start = args[2] if len(args) > 2 else None
    end = args[3] if len(args) > 3 else None
    step = int(args[4]) if len(args) > 4 else 1
    lo, _, _ = slice(start, end, step).indices(shape[d])
    if step != 1:
        raise UnsupportedOpError(f"slice with step {step} of an activation at {lw.where()}",
                                 "slice activations with step 1 (reshape, then slice)")
    out = lw.shape(node)
    if out == shape:
        return x
    begin = [0] * len(shape)
    begin[d] = lo
    return lw.emit("slice", [x], out, begin=begin, size=list(out))


@_lowers(aten.cat.default, aten.concat.default)
def _cat(lw: _Lowerer, node: fx.Node, args: list[Any]) -> str:
    ins = [lw.value(a) for a in args[0]]
    out = lw.shape(node)
    dim = (int(args[1]) if len(args) > 1 else 0) % len(out)
    ins = [i for i in ins if lw.g.values[i].shape[dim] > 0]
    if len(ins) > 4:
        raise UnsupportedOpError(f"cat of {len(ins)} tensors at {lw.where()}",
                                 "concatenate at most 4 tensors per call")
    return lw.emit("concat", ins, out, axis=dim)


@_lowers(aten.matmul.default, aten.bmm.default)
def _matmul(lw: _Lowerer, node: fx.Node, args: list[Any]) -> str:
    a, b = lw.value(args[0]), lw.value(args[1])
    sa, sb = lw.g.values[a].shape, lw.g.values[b].shape
    if len(sa) < 2 or len(sb) < 2:
        raise UnsupportedOpError(f"matmul of a vector at {lw.where()}",
                                 "use 2-D or batched operands")
    if lw.g.values[b].is_const and len(sb) == 2:  # x @ W: a linear layer with W^T
        wv = lw.g.values[b]
        assert wv.data is not None
        w = lw.derived(b, "t", lambda: wv.data.T.copy())
        return lw.emit("linear", [a, w, ""], lw.shape(node))
    if lw.g.values[a].is_const:
        raise UnsupportedOpError(f"matmul with a constant left operand at {lw.where()}",
                                 "write it as activation @ constant (transpose both sides)")
    if len(sa) != len(sb) or sa[:-2] != sb[:-2]:
        raise UnsupportedOpError(f"matmul with broadcast batch dims {sa} @ {sb} at "
                                 f"{lw.where()}", "give both operands the same batch dims")
    return lw.emit("batch_matmul", [a, b], lw.shape(node), adj_x=False, adj_y=False)


@_lowers(aten.transpose.int)
def _transpose(lw: _Lowerer, node: fx.Node, args: list[Any]) -> str:
    x = lw.value(args[0])
    rank = len(lw.g.values[x].shape)
    perm = list(range(rank))
    d0, d1 = int(args[1]) % rank, int(args[2]) % rank
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return lw.emit("transpose", [x], lw.shape(node), perm=perm)


@_lowers(aten.permute.default)
def _permute(lw: _Lowerer, node: fx.Node, args: list[Any]) -> str:
    x = lw.value(args[0])
    rank = len(lw.g.values[x].shape)
    return lw.emit("transpose", [x], lw.shape(node), perm=[int(p) % rank for p in args[1]])


@_lowers(aten.t.default)
def _t(lw: _Lowerer, node: fx.Node, args: list[Any]) -> str:
    return lw.emit("transpose", [lw.value(args[0])], lw.shape(node), perm=[1, 0])


@_lowers(aten.view.default, aten.reshape.default, aten.unsqueeze.default,
         aten.squeeze.dim, aten.squeeze.default, aten.flatten.using_ints,
         aten._unsafe_view.default, aten.unflatten.int, aten.view_as.default,
         aten.squeeze.dims)
def _reshape(lw: _Lowerer, node: fx.Node, args: list[Any]) -> str:
    shape = lw.shape(node)
    return lw.emit("reshape", [lw.value(args[0])], shape, shape=list(shape))


@_lowers(aten.split.Tensor, aten.split_with_sizes.default, aten.chunk.default)
def _split(lw: _Lowerer, node: fx.Node, args: list[Any]) -> list[str]:
    x = lw.value(args[0])
    vals = node.meta.get("val")
    shapes = [tuple(int(s) for s in v.shape) for v in vals]
    rank = len(lw.g.values[x].shape)
    dim = int(args[2]) if len(args) > 2 else 0
    if dim % rank != rank - 1:
        raise UnsupportedOpError(f"split over dim {dim} at {lw.where()}",
                                 "split the last dimension")
    return lw.emit("split", [x], shapes, axis=-1, sections=[s[-1] for s in shapes])


@_lowers(__import__("operator").getitem)
def _getitem(lw: _Lowerer, node: fx.Node, args: list[Any]) -> Any:
    src = lw.env[args[0].name]
    if isinstance(src, list):
        return src[int(args[1])]
    if int(args[1]) == 0:  # first output of a multi-output aten op (batch_norm)
        return src
    raise UnsupportedOpError(f"output {args[1]} of {args[0].target} at {lw.where()}")
