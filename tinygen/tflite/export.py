"""Write an int8 IR graph as a ``.tflite`` flatbuffer, each shared constant stored once.

The graph must use TFLite builtins only: quantize the ``decompose_layer_norm`` flavour of
the float graph (TFLite has no LAYER_NORM). Constants are keyed by IR value: a weight that
eight virtual layers use is one tensor, one buffer, referenced by eight operators.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinygen.compiler.ir import Graph, Node, Value
from tinygen.compiler.stream import CompiledStep
from tinygen.errors import TinygenError
from tinygen.tflite.writer import TFLiteBuilder

WEIGHTED = ("fully_connected", "conv2d", "depthwise_conv2d")


class ExportError(TinygenError):
    """The graph cannot be written as TFLite builtins."""


@dataclass
class BufferBytes:
    """Bytes of constant data in a .tflite file, by kind."""

    weights: int = 0  # int8 weights of fully_connected / conv2d / depthwise_conv2d
    biases: int = 0  # int32 biases (per use where the input scales differ)
    other: int = 0  # shape/axis tensors, layer-norm constants

    @property
    def total(self) -> int:
        return self.weights + self.biases + self.other


class _Exporter:
    def __init__(self, graph: Graph) -> None:
        self.g = graph
        self.b = TFLiteBuilder()
        self.index: dict[str, int] = {}
        self.bytes = BufferBytes()
        self.small: dict[tuple[str, tuple[int, ...]], int] = {}
        self.kind: dict[str, str] = {}
        for n in graph.nodes:
            if n.op in WEIGHTED:
                self.kind[n.inputs[1]] = "weights"
                if n.inputs[2]:
                    self.kind[n.inputs[2]] = "biases"

    def tensor(self, name: str) -> int:
        if name in self.index:
            return self.index[name]
        v = self.g.values[name]
        q = v.quant
        kwargs: dict[str, object] = {}
        if q is not None and self.kind.get(name) != "biases":
            # TFLite Micro never reads a bias tensor's scales; leaving them out keeps
            # per-use biases from adding D floats and D int64 zero points each to the file.
            kwargs = {"scale": list(q.scale) if q.per_channel else q.scale[0],
                      "zero_point": list(q.zero_point) if q.per_channel else q.zero_point[0],
                      "quantized_dimension": q.axis or 0}
        if v.is_const:
            assert v.data is not None
            kwargs["data"] = v.data
            kwargs["buffer_key"] = ("value", name)
            kind = self.kind.get(name, "other")
            setattr(self.bytes, kind, getattr(self.bytes, kind) + v.data.nbytes)
        self.index[name] = self.b.add_tensor(name, v.shape, v.dtype, **kwargs)  # type: ignore[arg-type]
        return self.index[name]

    def int32_const(self, tag: str, values: tuple[int, ...], scalar: bool = False) -> int:
        key = (tag, values)
        if key not in self.small:
            data = np.array(values[0] if scalar else values, dtype=np.int32)
            self.small[key] = self.b.add_tensor(f"{tag}_{'_'.join(map(str, values))}",
                                                data.shape, "int32", data=data,
                                                buffer_key=key)
            self.bytes.other += data.nbytes
        return self.small[key]

    def padded(self, n: Node) -> int:
        """A PAD op in front of an explicitly padded conv: TFLM pads int8 with the output
        zero point, which is the input's, so PAD + VALID equals the padded conv exactly."""
        x = self.g.values[n.inputs[0]]
        q = x.quant
        assert q is not None
        ph, pw = n.attrs["pad"]
        shape = (x.shape[0], x.shape[1] + 2 * ph, x.shape[2] + 2 * pw, x.shape[3])
        out = self.b.add_tensor(f"{x.name}_padded_{ph}_{pw}", shape, "int8", scale=q.s,
                                zero_point=q.zp)
        pads = np.array([[0, 0], [ph, ph], [pw, pw], [0, 0]], dtype=np.int32)
        key = ("pad", ph, pw)
        if key not in self.small:
            self.small[key] = self.b.add_tensor(f"paddings_{ph}_{pw}", pads.shape, "int32",
                                                data=pads, buffer_key=key)
            self.bytes.other += pads.nbytes
        self.b.add_op("PAD", [self.tensor(x.name), self.small[key]], [out])
        return out

    def run(self, metadata: Sequence[tuple[str, bytes]] = ()) -> bytes:
        for n in self.g.nodes:
            self.op(n)
        ins = [self.tensor(i) for i in self.g.inputs]
        outs = [self.tensor(o) for o in self.g.outputs]
        return self.b.finish(ins, outs, description="tinygen int8 export", metadata=metadata)

    def op(self, n: Node) -> None:
        t = self.tensor
        p = n.attrs.get("params")
        outs = [t(o) for o in n.outputs]
        act = "RELU" if p is not None and getattr(p, "act_min", -128) > -128 else "NONE"
        bias = t(n.inputs[2]) if n.op in WEIGHTED and n.inputs[2] else -1
        if n.op == "fully_connected":
            self.b.add_op("FULLY_CONNECTED", [t(n.inputs[0]), t(n.inputs[1]), bias], outs,
                          fused_activation_function=act, keep_num_dims=True)
        elif n.op in ("conv2d", "depthwise_conv2d"):
            padding, x = n.attrs["padding"], t(n.inputs[0])
            if padding == "EXPLICIT":  # TFLite has SAME/VALID only: PAD, then VALID
                x, padding = self.padded(n), "VALID"
            opts = {"padding": padding, "stride_h": p.stride_h,
                    "stride_w": p.stride_w, "fused_activation_function": act}
            if n.op == "depthwise_conv2d":
                opts["depth_multiplier"] = 1
            self.b.add_op("CONV_2D" if n.op == "conv2d" else "DEPTHWISE_CONV_2D",
                          [x, t(n.inputs[1]), bias], outs, **opts)
        elif n.op == "slice":
            begin = self.int32_const("begin", tuple(n.attrs["begin"]))
            size = self.int32_const("size", tuple(n.attrs["size"]))
            self.b.add_op("SLICE", [t(n.inputs[0]), begin, size], outs)
        elif n.op == "concat":
            self.b.add_op("CONCATENATION", [t(i) for i in n.inputs], outs,
                          axis=n.attrs["axis"], fused_activation_function="NONE")
        elif n.op == "log_softmax":
            self.b.add_op("LOG_SOFTMAX", [t(n.inputs[0])], outs)
        elif n.op in ("add", "sub", "mul", "squared_difference"):
            self.b.add_op(n.op.upper(), [t(i) for i in n.inputs], outs)
        elif n.op in ("logistic", "rsqrt", "relu"):
            self.b.add_op(n.op.upper(), [t(n.inputs[0])], outs)
        elif n.op == "softmax":
            self.b.add_op("SOFTMAX", [t(n.inputs[0])], outs, beta=1.0)
        elif n.op == "batch_matmul":
            self.b.add_op("BATCH_MATMUL", [t(n.inputs[0]), t(n.inputs[1])], outs,
                          adj_x=p.adj_x, adj_y=p.adj_y)
        elif n.op == "mean":
            rank = len(self.g.values[n.inputs[0]].shape)
            axis = self.int32_const("axis", (rank - 1,))
            self.b.add_op("MEAN", [t(n.inputs[0]), axis], outs, keep_dims=True)
        elif n.op == "transpose":
            perm = self.int32_const("perm", tuple(n.attrs["perm"]))
            self.b.add_op("TRANSPOSE", [t(n.inputs[0]), perm], outs)
        elif n.op == "reshape":
            shape = tuple(int(s) for s in n.attrs["shape"])
            self.b.add_op("RESHAPE", [t(n.inputs[0]), self.int32_const("shape", shape)], outs,
                          new_shape=list(shape))
        elif n.op == "split":
            sections = n.attrs["sections"]
            if len(set(sections)) != 1:
                raise ExportError(f"uneven split {sections} at {n.origin}",
                                  "split into equal parts")
            rank = len(self.g.values[n.inputs[0]].shape)
            axis = self.int32_const("axis", (rank - 1,), scalar=True)
            self.b.add_op("SPLIT", [axis, t(n.inputs[0])], outs, num_splits=len(sections))
        else:
            raise ExportError(f"op {n.op} at {n.origin} has no TFLite builtin",
                              "export the decompose_layer_norm flavour of the graph")


def to_tflite(graph: Graph, metadata: Sequence[tuple[str, bytes]] = ()
              ) -> tuple[bytes, BufferBytes]:
    """Serialise an int8 graph; returns the file bytes and its constant bytes by kind.
    ``metadata``: (name, bytes) entries for the model's metadata table."""
    exp = _Exporter(graph)
    return exp.run(metadata), exp.bytes


def unshare(graph: Graph) -> Graph:
    """The same graph with a private copy of every constant for each op that reads it:
    what a deployment without weight sharing stores. For size comparisons."""
    g = graph.copy()
    seen: set[str] = set()
    for n in g.nodes:
        for k, name in enumerate(n.inputs):
            if not name or not g.values[name].is_const:
                continue
            if name not in seen:
                seen.add(name)
                continue
            v = g.values[name]
            copy_name = g.fresh_name(f"{name}_use")
            g.values[copy_name] = Value(copy_name, v.shape, v.dtype,
                                        None if v.data is None else v.data.copy(), v.quant,
                                        v.origin)
            n.inputs[k] = copy_name
    return g


def _io_json(graph: Graph, name: str) -> dict[str, Any]:
    v = graph.values[name]
    assert v.quant is not None
    return {"shape": list(v.shape), "dtype": v.dtype, "scale": v.quant.scale[0],
            "zero_point": v.quant.zero_point[0]}


def export_file(model: torch.nn.Module | torch.export.ExportedProgram, output: str | Path,
                calib: list[np.ndarray], held_out: list[np.ndarray], verify: int = 4,
                progress: Callable[[int], None] | None = None,
                input_range: tuple[float, float] | None = None) -> dict[str, Any]:
    """Compile ``model``, write its .tflite to ``output`` (atomically, last) and return
    the summary: buffer bytes with and without sharing, SNR, and the TFLM check.
    ``input_range``: the input's fixed quantization range (compile_model)."""
    from tinygen.compiler.pipeline import compile_model
    from tinygen.fsutil import atomic_write_bytes
    from tinygen.tflite.runner import run_tflm

    frames = calib[0].shape[1] if calib else 0
    compiled = compile_model(model, frames, calib, progress, input_range=input_range)
    qg = compiled.tflite_int8
    blob, shared = to_tflite(qg)
    checked = held_out[:verify]
    exact, worst = True, 0
    for x in checked:
        xq = compiled.quantize_input(x)
        tflm = run_tflm(blob, [xq])[0].astype(np.int32)
        exact &= bool(np.array_equal(compiled.run_int8(xq, tflite_flavour=True), tflm))
        worst = max(worst, int(np.abs(compiled.run_int8(xq).astype(np.int32) - tflm).max()))
    summary: dict[str, Any] = {
        **_file_summary(qg, output, blob, shared),
        "calibration_inputs": len(calib),
        "eval_inputs": len(held_out),
        "snr_db": _round(compiled.snr_db(held_out, tflite_flavour=True)),
        "snr_db_native": _round(compiled.snr_db(held_out)),
        "tflm_vectors": len(checked),
        "tflm_bit_exact": exact,
        "native_vs_tflm_max_diff": worst,
    }
    atomic_write_bytes(output, blob)
    return summary


def _file_summary(qg: Graph, output: str | Path, blob: bytes, shared: BufferBytes
                  ) -> dict[str, Any]:
    """What every export summary says of the file: bytes, I/O, sharing, ops, params."""
    from tinygen.compiler.capture import parameter_counts

    _, unshared = to_tflite(unshare(qg))
    return {
        "output": str(output),
        "file_bytes": len(blob),
        "input": _io_json(qg, qg.inputs[0]),
        "output_tensor": _io_json(qg, qg.outputs[0]),
        "buffer_bytes": {**asdict(shared), "total": shared.total},
        "unshared_buffer_bytes": {**asdict(unshared), "total": unshared.total},
        "weight_bytes_ratio": round(shared.weights / max(1, unshared.weights), 4),
        "ops": qg.op_counts(),
        **{k: v for k, v in parameter_counts(qg).items() if k.endswith("params")},
    }


# The metadata entry of a streaming step's .tflite that holds the state a stream starts
# from: the state tensors' int8 bytes one after another, in input order.
STATE_INIT_METADATA = "tinygen_state_init"


def export_step_file(compiled: CompiledStep, output: str | Path,
                     held_out: list[list[np.ndarray]], verify: int = 4) -> dict[str, Any]:
    """Write the .tflite of a compiled streaming step to ``output`` (atomically, last) and
    return the summary. Inputs: the chunk, then the state; outputs: the chunk's output,
    then the new state (each state pair one int8 quantization). The state a stream starts
    from (the .tflite flavour's silence state) is the metadata entry
    :data:`STATE_INIT_METADATA`. The TFLM check steps ``verify`` of the ``held_out``
    streams (float chunks) on one interpreter, each from that state, against the golden
    step of the .tflite flavour."""
    from tinygen.fsutil import atomic_write_bytes
    from tinygen.tflite.runner import stream_tflm

    qg = compiled.tflite_int8
    start = compiled.start_state(tflite_flavour=True)
    init = b"".join(np.ascontiguousarray(s, np.int8).tobytes() for s in start)
    blob, shared = to_tflite(qg, metadata=[(STATE_INIT_METADATA, init)])
    streams = [[compiled.quantize_input(x) for x in chunks] for chunks in held_out]
    checked = streams[:verify]
    exact, worst = True, 0
    native = compiled.start_state()
    for chunks, got in zip(checked, stream_tflm(blob, checked, start), strict=True):
        want = compiled.stream_int8(chunks, start, tflite_flavour=True)
        exact &= all(np.array_equal(a, b) for a, b in zip(want, got, strict=True))
        for a, b in zip(compiled.stream_int8(chunks, native), got, strict=True):
            worst = max(worst, int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max()))
    summary: dict[str, Any] = {
        **_file_summary(qg, output, blob, shared),
        "calibration_inputs": compiled.ranges.samples,
        "eval_inputs": len(held_out),
        "snr_db": _round(compiled.snr_db(held_out, compiled.float_start, start,
                                         tflite_flavour=True)),
        "snr_db_native": _round(compiled.snr_db(held_out, compiled.float_start, native)),
        "tflm_vectors": len(checked),
        "tflm_bit_exact": exact,
        "native_vs_tflm_max_diff": worst,
        "streaming": {
            "steps_checked": sum(len(c) for c in checked),
            "state": [_io_json(qg, name) for name in qg.inputs[1:]],
            "state_bytes": len(init),
            "state_init_metadata": STATE_INIT_METADATA,
        },
    }
    atomic_write_bytes(output, blob)
    return summary


def _round(db: float | None) -> float | None:
    return None if db is None else round(db, 2)
