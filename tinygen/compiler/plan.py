"""Plan: turn the native int8 graph into what the C executor walks.

- **Steps.** Each op becomes a kernel call (``tg_<kind>_s8``) with a params record; a
  reshape costs nothing (its output aliases its input), a logistic becomes a 256-entry
  table lookup filled by the golden reference.
- **Arena.** Every activation gets an offset in one static arena. Lifetimes come from the
  schedule; elementwise ops write in place over an input that dies there; buffers are
  placed greedily, largest first, at the lowest offset free for their whole lifetime
  (16-byte aligned). The plan is exact at build time: the arena size is a constant.
- **Segments.** Steps are grouped by the top-level module call they come from (the
  frontend's ``scope``: ``subsample``, ``blocks.0``, ``blocks.0@1``, ...). Segments with
  the same op sequence share one *program*; each segment keeps only its *binding*: the
  arena offset of each of its tensor slots and a params record per step. Repeating a
  block therefore adds a binding, never a copy of the program.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinygen.compiler.ir import Graph, Node
from tinygen.compiler.passes import matmul_strides
from tinygen.errors import TinygenError
from tinygen.reference import kernels as K

ALIGN = 16
KINDS = ("fully_connected", "conv2d", "depthwise_conv2d", "batch_matmul", "add", "mul",
         "lut", "softmax", "layer_norm", "transpose", "split", "add_bcast", "mul_bcast",
         "log_softmax", "slice", "concat")
IN_PLACE = ("lut", "add", "mul")  # output[i] depends only on inputs[i]


class PlanError(TinygenError):
    """The graph uses something the C runtime does not implement."""


@dataclass
class Step:
    kind: str  # one of KINDS
    inputs: list[str]
    outputs: list[str]
    params: dict[str, Any]  # field -> int or constant-array name (see codegen)
    origin: str
    scope: str
    node: Node


@dataclass
class Segment:
    scope: str
    steps: list[Step]
    slots: list[str]  # tensor names in slot order
    program: int = -1  # index into Plan.programs


@dataclass
class Plan:
    steps: list[Step]
    buffer_of: dict[str, int]  # tensor -> buffer id
    offsets: dict[int, int]  # buffer id -> arena offset
    sizes: dict[int, int]  # buffer id -> bytes
    arena_bytes: int
    segments: list[Segment]
    programs: list[list[tuple[str, tuple[int, ...]]]]  # (kind, slots) per step
    luts: dict[str, np.ndarray] = field(default_factory=dict)  # table name -> 256 int8
    input: str = ""
    output: str = ""
    # A streaming step's state: buffers that persist from step to step, placed first at
    # offsets [0, state_bytes); the scratch arena follows. A state output shares its input's
    # buffer (the step overwrites the cache after its last read).
    state: list[str] = field(default_factory=list)  # state tensors, in input order
    state_bytes: int = 0

    @property
    def scratch_bytes(self) -> int:
        """The arena proper: memory reused within a step (everything but the state)."""
        return self.arena_bytes - self.state_bytes

    def offset(self, tensor: str) -> int:
        return self.offsets[self.buffer_of[tensor]]

    def occupancy(self) -> list[int]:
        """Arena bytes live at each step (for the report's chart)."""
        live = []
        spans = _spans(self)
        for i in range(len(self.steps)):
            live.append(sum(self.sizes[b] for b, (a, z) in spans.items() if a <= i <= z))
        return live


def _nbytes(graph: Graph, name: str) -> int:
    return int(np.prod(graph.values[name].shape, dtype=np.int64))


# ------------------------------------------------------------------- lowering
def _steps(graph: Graph) -> tuple[list[Step], dict[str, str], dict[str, np.ndarray]]:
    """Kernel calls, reshape aliases (output -> input) and logistic tables."""
    steps: list[Step] = []
    alias: dict[str, str] = {}
    luts: dict[str, np.ndarray] = {}
    lut_by_bytes: dict[bytes, str] = {}
    for n in graph.nodes:
        p = n.attrs.get("params")
        scope = str(n.attrs.get("scope", ""))
        shape = graph.values[n.inputs[0]].shape
        rows = int(np.prod(shape[:-1], dtype=np.int64)) if shape else 1
        if n.op == "reshape":
            alias[n.outputs[0]] = n.inputs[0]
            continue
        if n.op == "fully_connected":
            w = graph.values[n.inputs[1]]
            prm = {"weights": n.inputs[1], "bias": n.inputs[2] or None,
                   "multiplier": ("i32", p.output_multiplier),
                   "shift": ("i8", p.output_shift), "rows": rows,
                   "in_features": w.shape[1], "out_features": w.shape[0],
                   "input_zero_point": p.input_zero_point,
                   "output_zero_point": p.output_zero_point,
                   "act_min": p.act_min, "act_max": p.act_max}
            if not p.per_channel:  # one multiplier: repeat it per channel
                prm["multiplier"] = ("i32", p.output_multiplier * w.shape[0])
                prm["shift"] = ("i8", p.output_shift * w.shape[0])
            kind = "fully_connected"
        elif n.op in ("conv2d", "depthwise_conv2d"):
            w = graph.values[n.inputs[1]]
            out = graph.values[n.outputs[0]].shape
            prm = {"weights": n.inputs[1], "bias": n.inputs[2] or None,
                   "multiplier": ("i32", p.output_multiplier),
                   "shift": ("i8", p.output_shift), "batches": shape[0],
                   "in_h": shape[1], "in_w": shape[2], "in_c": shape[3],
                   "out_h": out[1], "out_w": out[2], "out_c": out[3],
                   "kernel_h": w.shape[1], "kernel_w": w.shape[2],
                   "stride_h": p.stride_h, "stride_w": p.stride_w,
                   "pad_h": p.pad_h, "pad_w": p.pad_w,
                   "input_zero_point": p.input_zero_point,
                   "output_zero_point": p.output_zero_point,
                   "act_min": p.act_min, "act_max": p.act_max}
            if p.dilation_h != 1 or p.dilation_w != 1:
                raise PlanError(f"dilated convolution at {n.origin}")
            kind = n.op
        elif n.op == "batch_matmul":
            prm = _batch_matmul_params(graph, n, p)
            kind = "batch_matmul"
        elif n.op in ("add", "mul"):
            prm, kind = _binary_params(graph, n, p)
        elif n.op == "logistic":
            table = K.logistic_s8(np.arange(-128, 128), p).astype(np.int8)
            key = table.tobytes()
            if key not in lut_by_bytes:  # one table per distinct input quantization
                lut_by_bytes[key] = f"lut_{len(luts)}"
                luts[lut_by_bytes[key]] = table
            prm = {"size": _nbytes(graph, n.inputs[0]), "table": lut_by_bytes[key]}
            kind = "lut"
        elif n.op == "softmax":
            prm = {"rows": rows, "depth": shape[-1], "input_multiplier": p.input_multiplier,
                   "input_left_shift": p.input_left_shift, "diff_min": p.diff_min}
            kind = "softmax"
        elif n.op == "log_softmax":
            prm = {"rows": rows, "depth": shape[-1], "input_multiplier": p.input_multiplier,
                   "input_left_shift": p.input_left_shift,
                   "reverse_scaling_divisor": p.reverse_scaling_divisor,
                   "reverse_scaling_right_shift": p.reverse_scaling_right_shift,
                   "diff_min": p.diff_min}
            kind = "log_softmax"
        elif n.op == "layer_norm":
            prm = {"rows": rows, "depth": shape[-1], "input_zero_point": p.input_zero_point,
                   "eps_q": p.eps_q, "multiplier": ("i32", p.multiplier),
                   "shift": ("i32", p.shift), "sign": ("i8", p.sign),
                   "bias": ("i32", p.bias)}
            kind = "layer_norm"
        elif n.op == "transpose":
            perm = list(n.attrs["perm"])
            if len(shape) > 4:
                raise PlanError(f"rank-{len(shape)} transpose at {n.origin}")
            prm = {"rank": len(shape), "in_shape": [*shape, *[1] * (4 - len(shape))],
                   "perm": [*perm, *range(len(perm), 4)]}
            kind = "transpose"
        elif n.op == "slice":
            if len(shape) > 4:
                raise PlanError(f"rank-{len(shape)} slice at {n.origin}",
                                "slice tensors of rank 4 or less")
            lead = [1] * (4 - len(shape))
            prm = {"in_shape": [*lead, *shape], "begin": [0] * len(lead) + n.attrs["begin"],
                   "out_shape": [*lead, *n.attrs["size"]]}
            kind = "slice"
        elif n.op == "concat":
            axis = n.attrs["axis"]
            out = graph.values[n.outputs[0]].shape
            prm = {"outer": int(np.prod(out[:axis], dtype=np.int64)), "parts": len(n.inputs),
                   "sizes": [int(np.prod(graph.values[i].shape[axis:], dtype=np.int64))
                             for i in n.inputs] + [0] * (4 - len(n.inputs)),
                   "consts": [i if graph.values[i].is_const else None for i in n.inputs]
                   + [None] * (4 - len(n.inputs))}
            kind = "concat"
        elif n.op == "split":
            sections = list(n.attrs["sections"])
            if len(sections) > 4:
                raise PlanError(f"split into {len(sections)} parts at {n.origin}")
            prm = {"rows": rows, "depth": shape[-1], "parts": len(sections),
                   "sections": [*sections, *[0] * (4 - len(sections))]}
            kind = "split"
        else:
            raise PlanError(f"op {n.op} at {n.origin} has no C kernel",
                            f"the C runtime implements {', '.join(KINDS)}")
        ins = n.inputs[:2] if n.op in ("add", "mul", "batch_matmul") else n.inputs[:1]
        if n.op == "concat":
            ins = list(n.inputs)
        ins = [i for i in ins if not graph.values[i].is_const]  # constants live in flash
        steps.append(Step(kind, ins, list(n.outputs), prm, n.origin, scope, n))
    return steps, alias, luts


def _batch_matmul_params(graph: Graph, n: Node, p: Any) -> dict[str, Any]:
    """BATCH_MATMUL: shapes, quantization and each operand's (batch, row) strides, which
    also describe the views of transposes folded into it (passes.fold_matmul_layout)."""
    views = [(graph.values[n.inputs[0]].shape, n.attrs.get("lhs_perm"), False),
             (graph.values[n.inputs[1]].shape, n.attrs.get("rhs_perm"), False),
             (graph.values[n.outputs[0]].shape, n.attrs.get("out_perm"), True)]
    strides = [matmul_strides(shape, perm, result) for shape, perm, result in views]
    a, b = (tuple(shape[i] for i in (perm or range(len(shape)))) for shape, perm, _ in
            views[:2])
    if a[:-2] != b[:-2] or None in strides:
        raise PlanError(f"batch_matmul {a} x {b} at {n.origin}: broadcast batch dims or "
                        "rows that are not contiguous")
    (batches, lb, lr), (_, rb, rr), (_, ob, orow) = strides  # type: ignore[misc]
    m, k = (a[-1], a[-2]) if p.adj_x else (a[-2], a[-1])
    return {"batches": batches, "m": m, "k": k, "n": b[-2] if p.adj_y else b[-1],
            "adj_x": int(p.adj_x), "adj_y": int(p.adj_y),
            "lhs_zero_point": p.lhs_zero_point, "rhs_zero_point": p.rhs_zero_point,
            "output_zero_point": p.output_zero_point,
            "multiplier": p.output_multiplier, "shift": p.output_shift,
            "rhs_const": n.inputs[1] if graph.values[n.inputs[1]].is_const else None,
            "lhs_batch_stride": lb, "lhs_row_stride": lr, "rhs_batch_stride": rb,
            "rhs_row_stride": rr, "out_batch_stride": ob, "out_row_stride": orow}


def _binary_params(graph: Graph, n: Node, p: Any) -> tuple[dict[str, Any], str]:
    """ADD / MUL: the same-shape kernel, or the broadcasting one (a constant operand, or
    shapes that broadcast; rank <= 4)."""
    a, b = graph.values[n.inputs[0]], graph.values[n.inputs[1]]
    out = graph.values[n.outputs[0]].shape
    if n.op == "add":
        op = {"size": int(np.prod(out, dtype=np.int64)),
              "input1_zero_point": p.input1_zero_point,
              "input2_zero_point": p.input2_zero_point,
              "output_zero_point": p.output_zero_point, "left_shift": p.left_shift,
              "input1_multiplier": p.input1_multiplier, "input1_shift": p.input1_shift,
              "input2_multiplier": p.input2_multiplier, "input2_shift": p.input2_shift,
              "output_multiplier": p.output_multiplier, "output_shift": p.output_shift,
              "act_min": p.act_min, "act_max": p.act_max}
    else:
        op = {"size": int(np.prod(out, dtype=np.int64)),
              "input1_zero_point": p.input1_zero_point,
              "input2_zero_point": p.input2_zero_point,
              "output_zero_point": p.output_zero_point,
              "output_multiplier": p.output_multiplier, "output_shift": p.output_shift,
              "act_min": p.act_min, "act_max": p.act_max}
    if a.shape == b.shape == out and not a.is_const and not b.is_const:
        return op, n.op
    if a.is_const:
        raise PlanError(f"{n.op} with a constant first operand at {n.origin}",
                        "the quantizer puts constants second; re-run the compiler")
    if len(out) > 4:
        raise PlanError(f"rank-{len(out)} broadcasting {n.op} at {n.origin}",
                        "keep elementwise ops at rank 4 or less")
    out4 = [1] * (4 - len(out)) + list(out)
    prm: dict[str, Any] = {"op": op, "input2_const": b.name if b.is_const else None,
                           "out_shape": out4,
                           "stride1": _broadcast_strides(a.shape, out4),
                           "stride2": _broadcast_strides(b.shape, out4)}
    return prm, f"{n.op}_bcast"


def _broadcast_strides(shape: tuple[int, ...], out4: list[int]) -> list[int]:
    """Row-major element strides of ``shape`` read as ``out4`` (numpy broadcasting)."""
    dims = [1] * (4 - len(shape)) + list(shape)
    strides, step = [0] * 4, 1
    for d in range(3, -1, -1):
        strides[d] = 0 if dims[d] == 1 and out4[d] != 1 else step
        step *= dims[d]
    return strides


# ------------------------------------------------------------------------ arena
def _spans(plan: Plan) -> dict[int, tuple[int, int]]:
    spans: dict[int, tuple[int, int]] = {}
    for i, st in enumerate(plan.steps):
        for t in (*st.inputs, *st.outputs):
            b = plan.buffer_of[t]
            a, z = spans.get(b, (i, i))
            spans[b] = (min(a, i), max(z, i))
    for t in (plan.input, plan.output):  # the I/O buffers live for the whole inference
        b = plan.buffer_of[t]
        a, z = spans.get(b, (0, 0))
        spans[b] = (0 if t == plan.input else a, len(plan.steps) if t == plan.output else z)
    for t in plan.state:  # the state persists across steps
        spans[plan.buffer_of[t]] = (0, len(plan.steps))
    return spans


def _root(alias: dict[str, str], name: str) -> str:
    while name in alias:
        name = alias[name]
    return name


def make_plan(graph: Graph) -> Plan:
    steps, alias, luts = _steps(graph)
    if not steps:
        raise PlanError("the model has no ops to run")
    tensors: list[str] = []
    for st in steps:
        for t in (*st.inputs, *st.outputs):
            if t not in tensors:
                tensors.append(t)
    inp = graph.inputs[0]
    out = graph.outputs[0]
    for t in (inp, out):
        if _root(alias, t) not in tensors:
            tensors.append(_root(alias, t))
    buffer_of: dict[str, int] = {}
    sizes: dict[int, int] = {}
    for t in tensors:
        r = _root(alias, t)
        if r not in buffer_of:
            buffer_of[r] = len(sizes)
            sizes[buffer_of[r]] = _nbytes(graph, r)
        buffer_of[t] = buffer_of[r]
    for t in (inp, out, *alias):
        buffer_of[t] = buffer_of[_root(alias, t)]
    # Steps refer to tensors by their alias root.
    for st in steps:
        st.inputs = [_root(alias, t) for t in st.inputs]
        st.outputs = [_root(alias, t) for t in st.outputs]
    plan = Plan(steps, buffer_of, {}, sizes, 0, [], [], luts, _root(alias, inp),
                _root(alias, out))
    _share_state(plan, graph, alias)
    _in_place(plan)
    _place(plan)
    _segment(plan)
    return plan


def _share_state(plan: Plan, graph: Graph, alias: dict[str, str]) -> None:
    """Give each state output its state input's buffer, after checking that every read of
    the old state comes before the step that writes the new one."""
    state = graph.meta.get("state")
    if not state:
        return
    for s_in, s_out in zip(state["inputs"], state["outputs"], strict=True):
        r_in, r_out = _root(alias, s_in), _root(alias, s_out)
        for t in (r_in, r_out):
            if t not in plan.buffer_of:  # a state nothing reads or writes
                raise PlanError(f"state tensor {t} is not used by the step",
                                "return a state the step reads and updates")
        b_in, b_out = plan.buffer_of[r_in], plan.buffer_of[r_out]
        if plan.sizes[b_in] != plan.sizes.get(b_out, plan.sizes[b_in]):
            raise PlanError(f"state {s_in} and its update {s_out} differ in size")
        reads = [i for i, st in enumerate(plan.steps) if b_in in
                 {plan.buffer_of[t] for t in st.inputs}]
        writes = [i for i, st in enumerate(plan.steps) if b_out in
                  {plan.buffer_of[t] for t in st.outputs}]
        if b_out != b_in:
            if not writes or (reads and max(reads) >= min(writes)):
                raise PlanError(f"state {s_in} is read after its update {s_out} is written",
                                "compute the new state from the old one last")
            for name, owner in list(plan.buffer_of.items()):
                if owner == b_out:
                    plan.buffer_of[name] = b_in
            del plan.sizes[b_out]
        plan.state.append(r_in)


def _in_place(plan: Plan) -> None:
    """Let elementwise ops write over an input that nobody reads afterwards."""
    pinned = {plan.buffer_of[plan.input], plan.buffer_of[plan.output],
              *(plan.buffer_of[t] for t in plan.state)}
    for i, st in enumerate(plan.steps):
        if st.kind not in IN_PLACE:
            continue
        spans = _spans(plan)
        out_b = plan.buffer_of[st.outputs[0]]
        if out_b in pinned:
            continue
        for t in st.inputs:
            b = plan.buffer_of[t]
            if b in pinned or b == out_b or spans[b][1] != i or plan.sizes[b] != plan.sizes[out_b]:
                continue
            for name, owner in list(plan.buffer_of.items()):
                if owner == out_b:
                    plan.buffer_of[name] = b
            del plan.sizes[out_b]
            break


def _place(plan: Plan) -> None:
    spans = _spans(plan)
    placed: list[tuple[int, int, int, int]] = []  # (offset, end, first, last)
    state = list(dict.fromkeys(plan.buffer_of[t] for t in plan.state))
    offset = 0
    for b in state:  # the persistent region first, in state order
        plan.offsets[b] = offset
        offset += -(-plan.sizes[b] // ALIGN) * ALIGN
        placed.append((plan.offsets[b], offset, *spans[b]))
    plan.state_bytes = offset
    order = sorted((b for b in plan.sizes if b not in state),
                   key=lambda b: (-plan.sizes[b], spans[b][0], b))
    for b in order:
        size = -(-plan.sizes[b] // ALIGN) * ALIGN
        first, last = spans[b]
        clashes = sorted((o, e) for o, e, f, z in placed if not (z < first or last < f))
        offset = 0
        for o, e in clashes:
            if offset + size <= o:
                break
            offset = max(offset, -(-e // ALIGN) * ALIGN)
        plan.offsets[b] = offset
        placed.append((offset, offset + size, first, last))
    plan.arena_bytes = max((e for _, e, _, _ in placed), default=0)
    plan.arena_bytes = -(-plan.arena_bytes // ALIGN) * ALIGN


def _segment(plan: Plan) -> None:
    groups: list[Segment] = []
    for st in plan.steps:
        if not groups or groups[-1].scope != st.scope:
            groups.append(Segment(st.scope, [], []))
        groups[-1].steps.append(st)
    signatures: dict[tuple[Any, ...], int] = {}
    for seg in groups:
        slots: list[str] = []
        program = []
        for st in seg.steps:
            ids = []
            for t in (*st.inputs, *st.outputs):
                if t not in slots:
                    slots.append(t)
                ids.append(slots.index(t))
            program.append((st.kind, tuple(ids)))
        seg.slots = slots
        key = tuple(program)
        if key not in signatures:
            signatures[key] = len(plan.programs)
            plan.programs.append(program)
        seg.program = signatures[key]
    plan.segments = groups
