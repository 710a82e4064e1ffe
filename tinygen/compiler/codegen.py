"""Codegen: the planned int8 model as C (weight pool, schedule, public header).

Python builds the data declarations through small helpers that validate identifiers and
format arrays efficiently (int8 arrays as string literals: a 5 MB weight pool compiles in
about a second, a comma list of 5 M numbers takes ~15 s); jinja2 templates in templates/
hold the file structure. Everything emitted is deterministic: the same plan gives the same
bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from tinygen import __version__
from tinygen.cdecl import c_ident, c_int, int8_literal, int_list
from tinygen.compiler.ir import Graph
from tinygen.compiler.plan import Plan
from tinygen.resources import templates_dir

PARAM_TYPES = {
    "fully_connected": "tg_fc_params_t",
    "conv2d": "tg_conv_params_t",
    "depthwise_conv2d": "tg_conv_params_t",
    "batch_matmul": "tg_batch_matmul_params_t",
    "add": "tg_add_params_t",
    "mul": "tg_mul_params_t",
    "lut": "tg_lut_params_t",
    "softmax": "tg_softmax_params_t",
    "layer_norm": "tg_layer_norm_params_t",
    "transpose": "tg_transpose_params_t",
    "split": "tg_split_params_t",
    "add_bcast": "tg_add_bcast_params_t",
    "mul_bcast": "tg_mul_bcast_params_t",
    "log_softmax": "tg_log_softmax_params_t",
    "slice": "tg_slice_params_t",
    "concat": "tg_concat_params_t",
}


@dataclass
class PoolArray:
    symbol: str
    ctype: str  # int8_t / int32_t
    length: int
    body: str  # initializer text (string literal for int8, list for int32)
    kind: str  # weights | bias | quant | lut | const (an add/mul operand)
    comment: str
    nbytes: int
    digest: str


PACKED_SYMBOL = "tg_q_int8"  # the int8 quantization arrays, one after another


@dataclass
class Pool:
    """Const arrays keyed by identity (weights) or by content (per-use data). The small
    int8 quantization arrays (per-channel shifts, layer-norm signs) are packed into one
    array, PACKED_SYMBOL, and referenced as PACKED_SYMBOL + offset: no alignment padding
    and no terminating NUL per array."""

    arrays: list[PoolArray] = field(default_factory=list)
    by_key: dict[Any, str] = field(default_factory=dict)
    used_symbols: set[str] = field(default_factory=set)
    packed: bytearray = field(default_factory=bytearray)

    def add_packed(self, key: Any, data: np.ndarray) -> str:
        """``data`` (int8) in the packed array, once per content: a C expression."""
        if key not in self.by_key:
            self.by_key[key] = f"{PACKED_SYMBOL} + {len(self.packed)}"
            self.packed += np.ascontiguousarray(data, np.int8).tobytes()
        return self.by_key[key]

    def close_packed(self) -> None:
        """Emit the packed array (after the last add_packed)."""
        if self.packed:
            arr = np.frombuffer(bytes(self.packed), np.int8)
            self.used_symbols.add(PACKED_SYMBOL)
            self.arrays.append(PoolArray(
                PACKED_SYMBOL, "int8_t", int(arr.size), int8_literal(arr), "quant",
                "int8 per-channel shifts and signs, packed", int(arr.nbytes),
                hashlib.sha256(arr.tobytes()).hexdigest()))

    def add(self, key: Any, base: str, data: np.ndarray, kind: str, comment: str = "") -> str:
        if key in self.by_key:
            return self.by_key[key]
        arr = np.ascontiguousarray(data)
        ctype = {np.dtype(np.int8): "int8_t", np.dtype(np.int32): "int32_t"}[arr.dtype]
        symbol = c_ident(f"tg_{kind[0]}_{base}")
        k = 1
        while symbol in self.used_symbols:
            symbol = c_ident(f"tg_{kind[0]}_{base}_{k}")
            k += 1
        self.used_symbols.add(symbol)
        body = int8_literal(arr) if ctype == "int8_t" else int_list(arr)
        self.arrays.append(PoolArray(symbol, ctype, int(arr.size), body, kind, comment,
                                     int(arr.nbytes),
                                     hashlib.sha256(arr.tobytes()).hexdigest()))
        self.by_key[key] = symbol
        return symbol

    def bytes_by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.arrays:
            out[a.kind] = out.get(a.kind, 0) + a.nbytes
        return out


@dataclass
class Generated:
    files: dict[str, str]  # relative path -> text
    pool: Pool
    schedule_bytes: int  # programs + segment bindings + params records
    weights_bytes: int
    quant_bytes: int  # per-use biases, multipliers, shifts, layer-norm data, tables,
    # constant add/mul operands
    param_records: int


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir())),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True, autoescape=False)


# Bytes of each params struct on a 32-bit target (pointers are 4 bytes there).
_STRUCT_BYTES = {
    "tg_fc_params_t": 4 * 4 + 7 * 4,
    "tg_conv_params_t": 4 * 4 + 19 * 4,
    "tg_batch_matmul_params_t": 17 * 4 + 4,
    "tg_add_params_t": 13 * 4,
    "tg_mul_params_t": 8 * 4,
    "tg_lut_params_t": 4 + 4,
    "tg_softmax_params_t": 5 * 4,
    "tg_layer_norm_params_t": 4 * 4 + 8 + 4 * 4,
    "tg_transpose_params_t": 9 * 4,
    "tg_split_params_t": 7 * 4,
    "tg_add_bcast_params_t": 13 * 4 + 4 + 12 * 4,
    "tg_mul_bcast_params_t": 8 * 4 + 4 + 12 * 4,
    "tg_log_softmax_params_t": 7 * 4,
    "tg_slice_params_t": 12 * 4,
    "tg_concat_params_t": 6 * 4 + 4 * 4,
}


def generate(graph: Graph, plan: Plan, model_name: str, meta: dict[str, Any]) -> Generated:
    pool = Pool()
    luts = {name: pool.add(("lut", table.tobytes()), name, table, "lut",
                           "logistic table") for name, table in plan.luts.items()}

    def value_array(name: str, kind: str) -> str:
        v = graph.values[name]
        assert v.data is not None
        key = ("value", name) if kind == "weights" else (kind, v.data.dtype.str,
                                                          v.data.tobytes())
        return pool.add(key, name, v.data, kind, f"{v.origin} {list(v.shape)}")

    def quant_array(tag: str, ctype: str, values: tuple[int, ...]) -> str:
        if ctype == "i8":
            arr = np.array(values, dtype=np.int64)
            if arr.min() < -128 or arr.max() > 127:
                raise ValueError(f"{tag} does not fit int8: {arr.min()}..{arr.max()}")
            return pool.add_packed(("quant", ctype, arr.tobytes()), arr.astype(np.int8))
        arr = np.array(values, dtype=np.int32)
        return pool.add(("quant", ctype, arr.tobytes()), f"{tag}_{len(pool.arrays)}", arr,
                        "quant")

    records: list[tuple[str, str, str]] = []  # (symbol, type, initializer)
    record_by_text: dict[tuple[str, str], str] = {}

    def initializer(params: dict[str, Any]) -> str:
        fields = []
        for key, val in params.items():
            if isinstance(val, dict):  # a nested struct
                text = "{ " + initializer(val) + " }"
            elif key in ("input2_const", "rhs_const"):
                text = value_array(val, "const") if val else "NULL"
            elif key == "consts":
                text = "{" + ", ".join(value_array(v, "const") if v else "NULL"
                                       for v in val) + "}"
            elif isinstance(val, tuple) and len(val) == 2 and isinstance(val[0], str):
                text = quant_array(key, val[0], val[1])  # per-use array, by content
            elif key == "weights":
                text = value_array(val, "weights")
            elif key == "bias":
                text = value_array(val, "bias") if val else "NULL"
            elif key == "table":
                text = luts[val]
            elif isinstance(val, list):
                text = "{" + ", ".join(c_int(v) for v in val) + "}"
            elif key == "eps_q":
                text = c_int(val, 64)
            else:
                text = c_int(val)
            fields.append(f".{key} = {text}")
        return ", ".join(fields)

    def record(kind: str, params: dict[str, Any]) -> str:
        ctype = PARAM_TYPES[kind]
        init = initializer(params)
        if (ctype, init) not in record_by_text:
            symbol = f"tg_p{len(records)}"
            record_by_text[(ctype, init)] = symbol
            records.append((symbol, ctype, init))
        return record_by_text[(ctype, init)]

    programs = []
    for k, prog in enumerate(plan.programs):
        steps = [{"kind": "TG_OP_" + kind.upper(), "io": list(ids)} for kind, ids in prog]
        programs.append({"symbol": f"tg_program_{k}", "steps": steps,
                         "n_slots": 1 + max(i for _, ids in prog for i in ids)})
    segments = []
    offsets_by_text: dict[str, str] = {}
    offset_arrays: list[tuple[str, str, int]] = []
    for s, seg in enumerate(plan.segments):
        offs = ", ".join(str(plan.offset(t)) for t in seg.slots)
        if offs not in offsets_by_text:
            offsets_by_text[offs] = f"tg_offsets_{len(offset_arrays)}"
            offset_arrays.append((offsets_by_text[offs], offs, len(seg.slots)))
        params = [record(st.kind, st.params) for st in seg.steps]
        segments.append({"symbol": f"tg_segment_{s}_params", "scope": seg.scope,
                         "program": f"tg_program_{seg.program}",
                         "offsets": offsets_by_text[offs], "params": params})

    initial_state = None
    if plan.state:  # the silence state, laid out like the state region, stored in flash
        blob = np.zeros(plan.state_bytes, np.int8)
        init = graph.meta.get("state_init")
        if init is None or len(init) != len(plan.state):
            raise ValueError("a streaming plan needs graph.meta['state_init'], one int8 "
                             "array per state tensor")
        for t, arr in zip(plan.state, init, strict=True):
            off = plan.offset(t)
            data = np.ascontiguousarray(arr, np.int8).reshape(-1)
            blob[off:off + data.size] = data
        initial_state = pool.add(("state_init",), "initial_state", blob, "const",
                                 f"the silence state, {plan.state_bytes} B")
    pool.close_packed()
    sizes = pool.bytes_by_kind()
    schedule_bytes = (sum(8 * len(p["steps"]) + 8 for p in programs)
                      + sum(4 * n for _, _, n in offset_arrays)
                      + sum(12 + 4 * len(s["params"]) for s in segments)
                      + sum(_STRUCT_BYTES[t] for _, t, _ in records) + 8)
    env = _env()
    in_v = graph.values[graph.inputs[0]]
    out_v = graph.values[graph.outputs[0]]
    assert in_v.quant is not None and out_v.quant is not None
    ctx = {
        "version": __version__,
        "model_name": model_name,
        "pool": pool.arrays,
        "records": records,
        "programs": programs,
        "segments": segments,
        "offset_arrays": offset_arrays,
        "arena_bytes": plan.scratch_bytes,
        "streaming": bool(plan.state),
        "state_bytes": plan.state_bytes,
        "initial_state": initial_state,
        "chunk_ms": meta.get("chunk_ms", 0),
        "input_offset": plan.offset(plan.input),
        "output_offset": plan.offset(plan.output),
        "input_size": int(np.prod(in_v.shape)),
        "output_size": int(np.prod(out_v.shape)),
        "input_shape": list(in_v.shape),
        "output_shape": list(out_v.shape),
        "input_scale": repr(float(np.float32(in_v.quant.s))),
        "input_zero_point": in_v.quant.zp,
        "output_scale": repr(float(np.float32(out_v.quant.s))),
        "output_zero_point": out_v.quant.zp,
        "meta": meta,
    }
    files = {
        "model/tinygen_model.h": env.get_template("model/tinygen_model.h.j2").render(ctx),
        "model/tinygen_model.c": env.get_template("model/tinygen_model.c.j2").render(ctx),
        "model/tinygen_weights.h": env.get_template("model/tinygen_weights.h.j2").render(ctx),
        "model/tinygen_weights.c": env.get_template("model/tinygen_weights.c.j2").render(ctx),
    }
    return Generated(files, pool, schedule_bytes, sizes.get("weights", 0),
                     sizes.get("bias", 0) + sizes.get("quant", 0) + sizes.get("lut", 0)
                     + sizes.get("const", 0),
                     len(records))


def render(template: str, **ctx: Any) -> str:
    """Render one template from templates/ (for target files)."""
    return _env().get_template(template).render(**ctx)


def write_files(root: Path, files: dict[str, str]) -> None:
    for rel, text in sorted(files.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
