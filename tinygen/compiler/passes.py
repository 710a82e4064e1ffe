"""Graph -> Graph passes. Each takes a graph and returns a new one; none mutates its input.

Weight sharing is an invariant of every pass: a constant that had N users still is one
constant after the pass. A rewrite that would give different users different bytes
(folding a scale into a weight that only some users scale) is not done.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import numpy as np

from tinygen.compiler.ir import Graph, Node, Value

Pass = Callable[[Graph], Graph]

LAYOUT_OPS = ("transpose", "reshape")
UNARY_ELEMENTWISE = ("relu", "silu", "logistic")
WEIGHTED_OPS = ("linear", "conv2d", "depthwise_conv2d")


def _channel_axis(op: str) -> int:
    """Axis of the output channels in a weighted op's weight."""
    return 3 if op == "depthwise_conv2d" else 0


# ----------------------------------------------------------------- batch norm
def fold_batch_norm(graph: Graph) -> Graph:
    """Fold an eval-mode batch_norm into the conv or linear that feeds it.

    Layout ops (transpose, reshape) may sit in between; the norm's channel axis is mapped
    back through them to the producer's output channels. A weight that several ops share
    (a repeated block) folds only when every one of those ops is followed by the same
    norm, so the folded weight is still one constant.
    """
    g = graph.copy()
    producer = g.producer()
    users = g.users()
    found: dict[str, list[tuple[Node, Node]]] = {}  # weight -> [(weighted op, norm)]
    for bn in [n for n in g.nodes if n.op == "batch_norm"]:
        src, axis = _trace_channel(g, producer, users, bn.inputs[0], bn.attrs["axis"])
        if src is None or src.op not in WEIGHTED_OPS or src.attrs.get("act"):
            continue
        if axis != len(g.values[src.outputs[0]].shape) - 1:
            continue
        found.setdefault(src.inputs[1], []).append((src, bn))
    for w_name, pairs in found.items():
        ops = {id(src) for src, _ in pairs}
        norms = {(tuple(bn.inputs[1:]), bn.attrs["eps"]) for _, bn in pairs}
        biases = {src.inputs[2] for src, _ in pairs}
        if ops != {id(u) for u in users[w_name]} or len(norms) != 1 or len(biases) != 1:
            continue
        (bias_name,) = biases
        if bias_name and {id(u) for u in users[bias_name]} != ops:
            continue
        src0, bn0 = pairs[0]
        mean, var, gamma, beta = (g.values[i].data if i else None for i in bn0.inputs[1:])
        assert mean is not None and var is not None
        scale = 1.0 / np.sqrt(var.astype(np.float64) + bn0.attrs["eps"])
        if gamma is not None:
            scale = scale * gamma
        shift = -mean * scale + (beta if beta is not None else 0.0)
        w = g.values[w_name]
        assert w.data is not None
        cax = _channel_axis(src0.op)
        if w.data.shape[cax] != scale.shape[0]:
            continue
        bshape = [1] * w.data.ndim
        bshape[cax] = -1
        with np.errstate(over="ignore", invalid="ignore"):  # Inf is refused by quantize
            w.data = (w.data * scale.reshape(bshape)).astype(np.float32)
            old_b = g.values[bias_name].data if bias_name else 0.0
            new_b = (old_b * scale + shift).astype(np.float32)
        if bias_name:
            g.values[bias_name].data = new_b
        else:
            bias_name = g.add_const(f"{w_name}_bnbias", new_b, w.origin)
        for src, bn in pairs:  # each norm becomes the identity
            src.inputs[2] = bias_name
            g.replace_uses(bn.outputs[0], bn.inputs[0])
            g.nodes.remove(bn)
    return dce(g)


def _trace_channel(g: Graph, producer: dict[str, Node], users: dict[str, list[Node]],
                   name: str, axis: int) -> tuple[Node | None, int]:
    """Walk back through single-use layout ops; map ``axis`` to the source's output."""
    while True:
        node = producer.get(name)
        if node is None or node.op not in LAYOUT_OPS:
            return node, axis
        if len(users[name]) != 1:
            return None, axis
        src_shape = g.values[node.inputs[0]].shape
        dst_shape = g.values[name].shape
        if node.op == "transpose":
            axis = node.attrs["perm"][axis]
        else:  # reshape keeps an axis if the dims after it are unchanged
            tail = int(np.prod(dst_shape[axis:]))
            pos = [i for i in range(len(src_shape)) if int(np.prod(src_shape[i:])) == tail
                   and src_shape[i] == dst_shape[axis]]
            if not pos:
                return None, axis
            axis = pos[0]
        name = node.inputs[0]


# ------------------------------------------------------------ constant scaling
def fold_constant_scaling(graph: Graph) -> Graph:
    """Fold ``mul(y, c)`` with a scalar constant c into the weights that produce y.

    The scalar is carried back through layout ops and batch_matmul (which is linear in
    each operand) to a linear/conv. It is folded only when *every* user of that weight
    (and bias) is scaled by the same c, so the folded weight stays one shared constant:
    the macaron ½ of a shared FFN folds, while the attention scale does not fold into a
    query projection that is also the key projection.
    """
    g = graph.copy()
    producer = g.producer()
    users = g.users()
    plans: list[tuple[Node, Node, float]] = []  # (mul node, weighted node, factor)
    for mul in g.nodes:
        if mul.op != "mul":
            continue
        c_in = [i for i in mul.inputs if g.values[i].is_const and g.values[i].shape in
                ((), (1,))]
        if len(c_in) != 1:
            continue
        x = mul.inputs[0] if mul.inputs[1] == c_in[0] else mul.inputs[1]
        target = _scaled_source(g, producer, users, x)
        if target is not None:
            data = g.values[c_in[0]].data
            assert data is not None
            plans.append((mul, target, float(data.reshape(()))))
    by_weight: dict[str, list[tuple[Node, Node, float]]] = {}
    for plan in plans:
        by_weight.setdefault(plan[1].inputs[1], []).append(plan)
    for w_name, group in by_weight.items():
        factors = {f for _, _, f in group}
        targets = {id(t) for _, t, _ in group}
        weight_users = {id(u) for u in users[w_name]}
        biases = {t.inputs[2] for _, t, _ in group}
        bias_ok = all(not b or {id(u) for u in users[b]} <= targets for b in biases)
        if len(factors) != 1 or weight_users != targets or not bias_ok:
            continue
        if len(targets) != len(group):
            continue  # one weighted op reached from two muls
        (c,) = factors
        w = g.values[w_name]
        assert w.data is not None
        w.data = (w.data * c).astype(np.float32)
        for b in biases:
            if b:
                bias = g.values[b]
                assert bias.data is not None
                bias.data = (bias.data * c).astype(np.float32)
        for mul, _, _ in group:
            kept = mul.inputs[0] if g.values[mul.inputs[1]].is_const else mul.inputs[1]
            g.replace_uses(mul.outputs[0], kept)
            g.nodes.remove(mul)
    return dce(g)


def _scaled_source(g: Graph, producer: dict[str, Node], users: dict[str, list[Node]],
                   name: str) -> Node | None:
    while True:
        node = producer.get(name)
        if node is None or len(users[name]) != 1:
            return None
        if node.op in WEIGHTED_OPS and not node.attrs.get("act"):
            return node
        if node.op in LAYOUT_OPS:
            name = node.inputs[0]
        elif node.op == "batch_matmul":
            name = node.inputs[0]  # scale the left operand's producer
        else:
            return None


# ---------------------------------------------------------------------- layout
def optimize_layout(graph: Graph) -> Graph:
    """Remove layout work that the lowering or the model left in.

    - a transpose that only moves size-1 dims is a reshape;
    - reshape->reshape and transpose->transpose chains merge;
    - relu/silu/logistic move in front of layout ops, so layout chains meet;
    - a reshape that only adds/drops size-1 dims moves to the far side of a transpose;
    - transpose + reshape feeding a linear whose weight has no other user folds into the
      weight's column order;
    - a reshape to the same shape disappears;
    - a transpose of the last two dims feeding batch_matmul becomes adj_x / adj_y.
    """
    g = graph.copy()
    changed = True
    while changed:
        changed = False
        for rule in (_transpose_as_reshape, _merge_chain, _hoist_unary_over_layout,
                     _squeeze_before_transpose, _unsqueeze_after_transpose, _drop_identity,
                     _absorb_into_matmul, _fold_transpose_into_linear):
            if rule(g):
                changed = True
                g = dce(g)
    return g


def _transpose_as_reshape(g: Graph) -> bool:
    hit = False
    for n in g.nodes:
        if n.op != "transpose":
            continue
        shape = g.values[n.inputs[0]].shape
        moved = [p for p in n.attrs["perm"] if shape[p] != 1]
        if moved == sorted(moved):
            n.op = "reshape"
            n.attrs = {"shape": list(g.values[n.outputs[0]].shape),
                       "scope": n.attrs.get("scope", "")}
            hit = True
    return hit


def _merge_chain(g: Graph) -> bool:
    producer, users = g.producer(), g.users()
    for n in g.nodes:
        if n.op not in LAYOUT_OPS:
            continue
        src = producer.get(n.inputs[0])
        if src is None or src.op != n.op or len(users[src.outputs[0]]) != 1:
            continue
        if n.op == "transpose":
            n.attrs["perm"] = [src.attrs["perm"][p] for p in n.attrs["perm"]]
        n.inputs[0] = src.inputs[0]
        return True
    return False


def _hoist_unary_over_layout(g: Graph) -> bool:
    """layout -> relu/silu/logistic becomes unary -> layout (elementwise ops commute with
    data movement), so layout ops on both sides of an activation meet and merge."""
    producer, users = g.producer(), g.users()
    for u in g.nodes:
        if u.op not in UNARY_ELEMENTWISE:
            continue
        lay = producer.get(u.inputs[0])
        if lay is None or lay.op not in LAYOUT_OPS or len(users[lay.outputs[0]]) != 1:
            continue
        src = lay.inputs[0]
        mid = g.add_value(f"{u.outputs[0]}_pre", g.values[src].shape)
        u_out = u.outputs[0]
        u.inputs, u.outputs = [src], [mid]
        lay.inputs, lay.outputs = [mid], [u_out]
        i, j = g.nodes.index(lay), g.nodes.index(u)
        g.nodes[i], g.nodes[j] = u, lay
        return True
    return False


def _squeezed_dims(g: Graph, reshape: Node) -> tuple[int, ...] | None:
    """Non-1 dims of a reshape that only adds or drops size-1 dims, else None."""
    a = g.values[reshape.inputs[0]].shape
    b = g.values[reshape.outputs[0]].shape
    sa, sb = [d for d in a if d != 1], [d for d in b if d != 1]
    return tuple(sa) if sa == sb else None


def _unsqueeze_after_transpose(g: Graph) -> bool:
    """reshape (only adds/drops size-1 dims) -> transpose: transpose the squeezed tensor,
    then reshape, so the transpose can meet the transpose before the reshape."""
    producer, users = g.producer(), g.users()
    for t in g.nodes:
        if t.op != "transpose":
            continue
        r = producer.get(t.inputs[0])
        if r is None or r.op != "reshape" or len(users[r.outputs[0]]) != 1:
            continue
        squeezed = _squeezed_dims(g, r)
        b = g.values[r.outputs[0]].shape
        if squeezed is None or len(b) == len(squeezed):
            continue
        nonone = [i for i, d in enumerate(b) if d != 1]
        keep = [p for p in t.attrs["perm"] if b[p] != 1]
        small_perm = [nonone.index(p) for p in keep]
        scope = t.attrs.get("scope", "")
        mid = g.add_value(f"{t.outputs[0]}_sq", squeezed)
        tr = g.add_value(f"{t.outputs[0]}_tr", tuple(b[p] for p in keep))
        out_shape = g.values[t.outputs[0]].shape
        i = g.nodes.index(t)
        g.nodes[i:i + 1] = [
            Node("reshape", [r.inputs[0]], [mid], {"shape": list(squeezed), "scope": scope},
                 origin=t.origin),
            Node("transpose", [mid], [tr], {"perm": small_perm, "scope": scope},
                 origin=t.origin),
            Node("reshape", [tr], [t.outputs[0]], {"shape": list(out_shape), "scope": scope},
                 origin=t.origin),
        ]
        return True
    return False


def _squeeze_before_transpose(g: Graph) -> bool:
    """transpose -> reshape that only drops or adds size-1 dims: reshape first, then a
    smaller transpose, so transposes on both sides of it can meet and cancel."""
    producer, users = g.producer(), g.users()
    for n in g.nodes:
        if n.op != "reshape":
            continue
        src = producer.get(n.inputs[0])
        if src is None or src.op != "transpose" or len(users[src.outputs[0]]) != 1:
            continue
        t_in = g.values[src.inputs[0]].shape
        t_out = g.values[src.outputs[0]].shape
        r_out = g.values[n.outputs[0]].shape
        if [d for d in t_out if d != 1] != [d for d in r_out if d != 1] or 1 not in t_in:
            continue
        # Keep only the non-1 dims; the reshape can then put 1s back anywhere.
        keep = [p for p in src.attrs["perm"] if t_in[p] != 1]
        rank = sorted(keep)
        small_perm = [rank.index(p) for p in keep]
        squeezed = tuple(t_in[p] for p in rank)
        mid = g.add_value(f"{src.outputs[0]}_sq", squeezed)
        after = tuple(t_in[p] for p in keep)
        tr_out = g.add_value(f"{n.outputs[0]}_tr", after)
        i = g.nodes.index(n)
        g.nodes[i:i + 1] = [
            Node("reshape", [src.inputs[0]], [mid], {"shape": list(squeezed),
                 "scope": n.attrs.get("scope", "")}, origin=n.origin),
            Node("transpose", [mid], [tr_out], {"perm": small_perm,
                 "scope": n.attrs.get("scope", "")}, origin=n.origin),
            Node("reshape", [tr_out], [n.outputs[0]], {"shape": list(r_out),
                 "scope": n.attrs.get("scope", "")}, origin=n.origin),
        ]
        return True
    return False


def _fold_transpose_into_linear(g: Graph) -> bool:
    """transpose of trailing dims -> reshape merging them -> linear: permute the weight's
    columns instead (only for a weight with this one user)."""
    producer, users = g.producer(), g.users()
    for lin in g.nodes:
        if lin.op != "linear":
            continue
        rs = producer.get(lin.inputs[0])
        if rs is None or rs.op != "reshape" or len(users[rs.outputs[0]]) != 1:
            continue
        tr = producer.get(rs.inputs[0])
        if tr is None or tr.op != "transpose" or len(users[tr.outputs[0]]) != 1:
            continue
        w = g.values[lin.inputs[1]]
        if len(users[w.name]) != 1 or w.data is None:
            continue
        t_out = g.values[tr.outputs[0]].shape
        r_out = g.values[rs.outputs[0]].shape
        perm = tr.attrs["perm"]
        lead = len(r_out) - 1  # dims kept in front of the merged last dim
        if tuple(t_out[:lead]) != tuple(r_out[:lead]) or perm[:lead] != list(range(lead)):
            continue
        tail = [p - lead for p in perm[lead:]]
        t_in = g.values[tr.inputs[0]].shape
        out_f = w.data.shape[0]
        cols = w.data.reshape(out_f, *t_out[lead:])  # columns in transposed order
        inv = [tail.index(k) for k in range(len(tail))]
        w.data = np.ascontiguousarray(
            cols.transpose(0, *[1 + i for i in inv]).reshape(out_f, -1))
        rs.inputs[0] = tr.inputs[0]
        assert int(np.prod(t_in)) == int(np.prod(r_out))
        return True
    return False


def _drop_identity(g: Graph) -> bool:
    for n in g.nodes:
        same_shape = g.values[n.inputs[0]].shape == g.values[n.outputs[0]].shape if \
            n.op in LAYOUT_OPS else False
        identity_perm = n.op == "transpose" and n.attrs["perm"] == sorted(n.attrs["perm"])
        if (n.op == "reshape" and same_shape) or identity_perm:
            if n.outputs[0] in g.outputs:
                continue
            g.replace_uses(n.outputs[0], n.inputs[0])
            g.nodes.remove(n)
            return True
    return False


def _absorb_into_matmul(g: Graph) -> bool:
    producer, users = g.producer(), g.users()
    for n in g.nodes:
        if n.op != "batch_matmul":
            continue
        for slot, flag in ((0, "adj_x"), (1, "adj_y")):
            src = producer.get(n.inputs[slot])
            if src is None or src.op != "transpose" or len(users[src.outputs[0]]) != 1:
                continue
            perm = src.attrs["perm"]
            r = len(perm)
            if perm != [*range(r - 2), r - 1, r - 2]:
                continue
            n.inputs[slot] = src.inputs[0]
            n.attrs[flag] = not n.attrs.get(flag, False)
            return True
    return False


# --------------------------------------------------------- matmul operand layout
def matmul_strides(shape: tuple[int, ...], perm: list[int] | None = None,
                   result: bool = False) -> tuple[int, int, int] | None:
    """(batches, batch stride, row stride), in elements, of a batch_matmul operand stored
    row-major as ``shape`` and seen through ``perm``: an operand is
    ``stored.transpose(perm)``; a result (``result=True``) is stored as
    ``result.transpose(perm)``. None when that view is not a stack of matrices with
    contiguous rows (the last dim must stay last; the batch dims must collapse into one
    stride)."""
    r = len(shape)
    perm = list(range(r)) if perm is None else list(perm)
    phys = [1] * r
    for d in range(r - 2, -1, -1):
        phys[d] = phys[d + 1] * shape[d + 1]
    where = [perm.index(d) for d in range(r)] if result else perm  # logical -> stored dim
    dims = [shape[w] for w in where]
    strides = [phys[w] for w in where]
    if r < 2 or strides[-1] != 1:
        return None
    batch = [d for d in range(r - 2) if dims[d] != 1]
    for a, b in pairwise(batch):
        if strides[a] != strides[b] * dims[b]:
            return None
    batches = int(np.prod([dims[d] for d in batch], dtype=np.int64))
    bstride = strides[batch[-1]] if batch else dims[-2] * dims[-1]
    return batches, bstride, strides[-2]


def fold_matmul_layout(graph: Graph) -> Graph:
    """int8 graph: a transpose feeding a batch_matmul, or fed by one (its only user),
    becomes the matmul's view of that operand (attrs ``lhs_perm``, ``rhs_perm``,
    ``out_perm``), when the view keeps rows contiguous (:func:`matmul_strides`). The
    kernel then reads and writes in place: attention's head split (T, H, D) -> (H, T, D)
    and its merge back are no longer copies. Pure data movement is folded, so the values
    are unchanged; the golden reference applies the same views."""
    g = graph.copy()
    changed = True
    while changed:
        changed = False
        producer, users = g.producer(), g.users()
        for n in g.nodes:
            if n.op != "batch_matmul":
                continue
            for slot, key in ((0, "lhs_perm"), (1, "rhs_perm")):
                t = producer.get(n.inputs[slot])
                if t is None or t.op != "transpose" or key in n.attrs:
                    continue
                src = g.values[t.inputs[0]]
                if src.quant != g.values[t.outputs[0]].quant or \
                        matmul_strides(src.shape, t.attrs["perm"]) is None:
                    continue
                n.inputs[slot] = src.name
                n.attrs[key] = list(t.attrs["perm"])
                changed = True
            out = n.outputs[0]
            after = users[out]
            if "out_perm" in n.attrs or out in g.outputs or len(after) != 1 or \
                    after[0].op != "transpose":
                continue
            t = after[0]
            moved = g.values[t.outputs[0]]
            if moved.quant != g.values[out].quant or \
                    matmul_strides(moved.shape, t.attrs["perm"], result=True) is None:
                continue
            n.outputs[0] = moved.name
            n.attrs["out_perm"] = list(t.attrs["perm"])
            g.nodes.remove(t)
            changed = True
        g = dce(g)
    return g


# ------------------------------------------------------------------ activation
def fuse_activations(graph: Graph) -> Graph:
    """relu after a linear/conv whose output has no other user becomes a fused clamp."""
    g = graph.copy()
    producer, users = g.producer(), g.users()
    for n in list(g.nodes):
        if n.op != "relu":
            continue
        src = producer.get(n.inputs[0])
        if src is None or src.op not in WEIGHTED_OPS or src.attrs.get("act"):
            continue
        if len(users[n.inputs[0]]) != 1 or n.inputs[0] in g.outputs:
            continue
        src.attrs["act"] = "relu"
        g.replace_uses(n.outputs[0], n.inputs[0])
        g.nodes.remove(n)
    return dce(g)


# ------------------------------------------------------------------------ cse
def cse(graph: Graph) -> Graph:
    """Merge ops that compute the same thing from the same inputs (e.g. k and v from one
    shared projection)."""
    g = graph.copy()
    seen: dict[tuple[Any, ...], Node] = {}
    for n in list(g.nodes):
        attrs = {k: v for k, v in n.attrs.items() if k != "scope"}
        key = (n.op, tuple(n.inputs), repr(sorted(attrs.items())))
        if key in seen:
            for old, new in zip(n.outputs, seen[key].outputs, strict=True):
                if old in g.outputs:
                    break
                g.replace_uses(old, new)
            else:
                g.nodes.remove(n)
            continue
        seen[key] = n
    return dce(g)


# ------------------------------------------------------------------------ dce
def dce(graph: Graph) -> Graph:
    """Drop ops whose outputs nobody reads, then unreferenced values."""
    g = graph  # callers pass a private copy or accept in-place cleanup
    live = set(g.outputs)
    kept: list[Node] = []
    for n in reversed(g.nodes):
        if any(o in live for o in n.outputs):
            kept.append(n)
            live.update(i for i in n.inputs if i)
    g.nodes = kept[::-1]
    live.update(g.inputs)
    g.values = {k: v for k, v in g.values.items() if k in live}
    return g


def eliminate_dead_code(graph: Graph) -> Graph:
    return dce(graph.copy())


# -------------------------------------------------------------- shape inference
def infer_shapes(graph: Graph) -> Graph:
    """Recompute every activation shape from the input shapes; raise on a mismatch."""
    g = graph.copy()
    shapes = {name: g.values[name].shape for name in g.inputs}
    shapes.update({v.name: v.shape for v in g.constants()})
    for n in g.nodes:
        outs = _out_shapes(n, [shapes[i] if i else () for i in n.inputs])
        for name, shape in zip(n.outputs, outs, strict=True):
            shapes[name] = shape
            g.values[name].shape = shape
    return g


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(np.broadcast_shapes(a, b))


def _out_shapes(n: Node, ins: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    x = ins[0]
    if n.op == "linear":
        return [(*x[:-1], ins[1][0])]
    if n.op in ("conv2d", "depthwise_conv2d"):
        kh, kw = ins[1][1], ins[1][2]
        ph, pw = n.attrs.get("pad", [0, 0])
        sh, sw = n.attrs["stride"]
        c = ins[1][0] if n.op == "conv2d" else ins[1][3]
        return [(x[0], (x[1] + 2 * ph - kh) // sh + 1, (x[2] + 2 * pw - kw) // sw + 1, c)]
    if n.op in ("add", "sub", "mul"):
        return [_broadcast(x, ins[1])]
    if n.op == "batch_matmul":
        a, b = list(x), list(ins[1])
        if n.attrs.get("adj_x"):
            a[-1], a[-2] = a[-2], a[-1]
        if n.attrs.get("adj_y"):
            b[-1], b[-2] = b[-2], b[-1]
        return [(*_broadcast(tuple(a[:-2]), tuple(b[:-2])), a[-2], b[-1])]
    if n.op == "transpose":
        return [tuple(x[p] for p in n.attrs["perm"])]
    if n.op == "reshape":
        shape = tuple(int(s) for s in n.attrs["shape"])
        if int(np.prod(shape)) != int(np.prod(x)):
            raise ValueError(f"reshape {x} -> {shape} at {n.origin} changes the size")
        return [shape]
    if n.op == "glu":
        return [(*x[:-1], x[-1] // 2)]
    if n.op == "split":
        return [(*x[:-1], s) for s in n.attrs["sections"]]
    if n.op == "slice":
        return [tuple(int(s) for s in n.attrs["size"])]
    if n.op == "concat":
        ax = n.attrs["axis"]
        return [(*x[:ax], sum(i[ax] for i in ins), *x[ax + 1:])]
    return [x]  # elementwise and normalisations keep the shape


# ------------------------------------------------------- layer norm for TFLite
def decompose_layer_norm(graph: Graph) -> Graph:
    """Rewrite layer_norm as TFLite builtins (TFLite has no LAYER_NORM):

        m = mean(x); v = mean(squared_difference(x, m)); r = rsqrt(v + eps)
        y = (x - m) * r * gamma + beta

    Used for the .tflite export; the native int8 graph keeps tinygen's integer
    layer_norm, which is more accurate (docs/quantization.md).
    """
    g = graph.copy()
    out_nodes: list[Node] = []
    for n in g.nodes:
        if n.op != "layer_norm":
            out_nodes.append(n)
            continue
        x = n.inputs[0]
        shape = g.values[x].shape
        row = (*shape[:-1], 1)

        def new(suffix: str, shp: tuple[int, ...], n: Node = n) -> str:
            return g.add_value(f"{n.outputs[0]}_{suffix}", shp, origin=n.origin)

        def node(op: str, ins: list[str], out: str, n: Node = n, **attrs: Any) -> None:
            out_nodes.append(Node(op, ins, [out], {"scope": n.attrs.get("scope", ""), **attrs},
                                  origin=n.origin, name=n.name))

        m, sq, v = new("mean", row), new("sqdiff", shape), new("var", row)
        ve, r, d = new("var_eps", row), new("rstd", row), new("centred", shape)
        eps_key = f"layer_norm_eps_{n.attrs['eps']:g}"
        if eps_key not in g.values:  # one constant per distinct eps, not one per use
            g.values[eps_key] = Value(eps_key, (), "float32",
                                      np.array(n.attrs["eps"], np.float32), eps_key)
        eps = eps_key
        node("mean", [x], m, axis=-1)
        node("squared_difference", [x, m], sq)
        node("mean", [sq], v, axis=-1)
        node("add", [v, eps], ve)
        node("rsqrt", [ve], r)
        node("sub", [x, m], d)
        gamma, beta = n.inputs[1], n.inputs[2]
        y = n.outputs[0]
        normed = new("normed", shape) if (gamma or beta) else y
        node("mul", [d, r], normed)
        if gamma:
            scaled = new("scaled", shape) if beta else y
            node("mul", [normed, gamma], scaled)
            normed = scaled
        if beta:
            node("add", [normed, beta], y)
    g.nodes = out_nodes
    return g


# ------------------------------------------------------------------- pipeline
DEFAULT_PIPELINE: tuple[Pass, ...] = (
    eliminate_dead_code,
    fold_batch_norm,
    optimize_layout,
    fold_constant_scaling,
    fuse_activations,
    cse,
    optimize_layout,
    infer_shapes,
)


def optimize(graph: Graph, pipeline: tuple[Pass, ...] = DEFAULT_PIPELINE) -> Graph:
    for p in pipeline:
        graph = p(graph)
    return graph
