"""A minimal ``.tflite`` writer over the flatbuffer object API shipped with ``tflite_micro``.

Only what tinygen exports is covered: one subgraph, builtin operators, int8/int32/float
tensors with (per-tensor or per-axis) affine quantization, and constant buffers. Constants
are keyed: two tensors added with the same ``buffer_key`` point at ONE buffer, so a weight
shared by several layers is stored once in the file (TFLite's converter dedupes by content,
which fails as soon as two uses are quantized differently; tinygen keys by identity).

The output is deterministic: the same sequence of calls gives byte-identical models.
Buffer 0 is the empty sentinel TFLite requires, and every constant's bytes are aligned to
16 in the file (the converter's ``force_align``) so kernels may read int32 bias in place.

Example::

    b = TFLiteBuilder()
    x = b.add_tensor("x", (4, 8), scale=0.05, zero_point=-3)
    w = b.add_tensor("w", (16, 8), scale=[0.01] * 16, data=w_q, buffer_key=id(weight))
    y = b.add_tensor("y", (4, 16), scale=0.1, zero_point=2)
    b.add_op("FULLY_CONNECTED", [x, w, -1], [y], fused_activation_function="RELU")
    model = b.finish([x], [y])
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

SCHEMA_MODULE = "tflite_micro.tensorflow.lite.micro.python.schema_py_generated"
SCHEMA_VERSION = 3  # TFLITE_SCHEMA_VERSION; TFLM refuses any other
FILE_IDENTIFIER = b"TFL3"
BUFFER_ALIGNMENT = 16

# numpy dtype name -> schema TensorType member name.
_TENSOR_TYPES = {
    "float32": "FLOAT32",
    "int32": "INT32",
    "uint8": "UINT8",
    "int64": "INT64",
    "bool": "BOOL",
    "int16": "INT16",
    "int8": "INT8",
}

# Operators whose options table is not simply CamelCase(op) + "Options".
_OPTIONS_NAME = {
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions",
    "MAX_POOL_2D": "Pool2DOptions",
    "BATCH_MATMUL": "BatchMatMulOptions",
    "MEAN": "ReducerOptions",
    "SUM": "ReducerOptions",
    "REDUCE_MAX": "ReducerOptions",
    "REDUCE_MIN": "ReducerOptions",
    "REDUCE_PROD": "ReducerOptions",
    "LOGISTIC": None,
    "RSQRT": None,
    "RELU": None,
}

# Defaults that differ from the schema's (whose stride 0 and softmax beta 0.0 are never
# what a caller means).
_OPTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "CONV_2D": {"stride_w": 1, "stride_h": 1},
    "DEPTHWISE_CONV_2D": {"stride_w": 1, "stride_h": 1, "depth_multiplier": 1},
    "SOFTMAX": {"beta": 1.0},
}

# Option field (camelCase) -> schema enum class name, for options given as strings.
_ENUM_FIELDS = {
    "fusedActivationFunction": "ActivationFunctionType",
    "padding": "Padding",
    "weightsFormat": "FullyConnectedOptionsWeightsFormat",
    "quantizedBiasType": "TensorType",
}


class SchemaUnavailableError(ImportError):
    """The ``tflite_micro`` wheel (which ships the TFLite schema) is not installed."""


def load_schema() -> ModuleType:
    """Import the generated TFLite schema module from the ``tflite_micro`` wheel."""
    try:
        return importlib.import_module(SCHEMA_MODULE)
    except ImportError as err:
        raise SchemaUnavailableError(
            f"cannot import the TFLite schema ({SCHEMA_MODULE}): {err}; "
            "install it with `pip install tflite-micro` (Python 3.10-3.12)") from None


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str
    buffer: int
    scale: tuple[float, ...] | None
    zero_point: tuple[int, ...]
    quantized_dimension: int


@dataclass
class _Op:
    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


class TFLiteBuilder:
    """Accumulates tensors, constant buffers and operators; ``finish`` serialises them."""

    def __init__(self) -> None:
        self._schema = load_schema()
        self._tensors: list[_Tensor] = []
        self._buffers: list[bytes] = [b""]  # buffer 0: the empty sentinel
        self._buffer_by_key: dict[object, int] = {}
        self._ops: list[_Op] = []

    # -- tensors -------------------------------------------------------------------------

    def add_tensor(self, name: str, shape: Sequence[int], dtype: str = "int8", *,
                   scale: float | Sequence[float] | None = None,
                   zero_point: int | Sequence[int] = 0,
                   quantized_dimension: int = 0,
                   data: np.ndarray | None = None,
                   buffer_key: object | None = None) -> int:
        """Add a tensor and return its index.

        ``scale`` None means unquantized; a sequence means per-axis quantization along
        ``quantized_dimension`` (a scalar ``zero_point`` is repeated for every scale).
        ``data`` makes the tensor constant. With ``buffer_key``, the first call stores the
        bytes and later calls with the same key reuse that one buffer (their data, if
        given, must be byte-identical).
        """
        if dtype not in _TENSOR_TYPES:
            raise ValueError(f"tensor {name!r}: dtype {dtype!r} is not one of "
                             f"{sorted(_TENSOR_TYPES)}")
        shape_t = tuple(int(d) for d in shape)
        scales: tuple[float, ...] | None
        if scale is None:
            scales = None
        elif isinstance(scale, (int, float, np.floating)):
            scales = (float(scale),)
        else:
            scales = tuple(float(s) for s in scale)
            if not scales:
                raise ValueError(f"tensor {name!r}: empty scale list")
        if isinstance(zero_point, (int, np.integer)):
            zps = (int(zero_point),) * (len(scales) if scales else 1)
        else:
            zps = tuple(int(z) for z in zero_point)
        if scales is not None and len(zps) != len(scales):
            raise ValueError(f"tensor {name!r}: {len(scales)} scales but {len(zps)} "
                             "zero points")
        if scales is not None and len(scales) > 1:
            if not 0 <= quantized_dimension < len(shape_t):
                raise ValueError(f"tensor {name!r}: quantized_dimension "
                                 f"{quantized_dimension} out of range for shape {shape_t}")
            if shape_t[quantized_dimension] != len(scales):
                raise ValueError(f"tensor {name!r}: {len(scales)} scales for dimension "
                                 f"{quantized_dimension} of size "
                                 f"{shape_t[quantized_dimension]}")

        buffer = 0
        payload: bytes | None = None
        if data is not None:
            arr = np.asarray(data)
            if arr.size != int(np.prod(shape_t, dtype=np.int64)):
                raise ValueError(f"tensor {name!r}: data has {arr.size} elements, shape "
                                 f"{shape_t} needs {int(np.prod(shape_t))}")
            target = np.dtype(dtype)
            if arr.dtype.kind in "iub" and target.kind in "iu" and arr.size:
                info = np.iinfo(target)
                if int(arr.min()) < info.min or int(arr.max()) > info.max:
                    raise ValueError(f"tensor {name!r}: data outside the {dtype} range")
            payload = np.ascontiguousarray(arr, dtype=target.newbyteorder("<")).tobytes()
        if buffer_key is not None and buffer_key in self._buffer_by_key:
            buffer = self._buffer_by_key[buffer_key]
            if payload is not None and payload != self._buffers[buffer]:
                raise ValueError(f"tensor {name!r}: buffer_key {buffer_key!r} is already "
                                 "bound to different bytes")
        elif payload is not None:
            buffer = len(self._buffers)
            self._buffers.append(payload)
            if buffer_key is not None:
                self._buffer_by_key[buffer_key] = buffer
        elif buffer_key is not None:
            raise ValueError(f"tensor {name!r}: buffer_key {buffer_key!r} has no data yet")

        self._tensors.append(_Tensor(name, shape_t, dtype, buffer, scales, zps,
                                     int(quantized_dimension)))
        return len(self._tensors) - 1

    # -- operators -----------------------------------------------------------------------

    def add_op(self, op: str, inputs: Sequence[int], outputs: Sequence[int],
               **options: Any) -> None:
        """Append a builtin operator; ``options`` fill its BuiltinOptions table.

        Option names are the schema's snake_case field names (``fused_activation_function``,
        ``keep_num_dims``, ``stride_w``, ``padding``, ``adj_x``, ``keep_dims``, ``beta``...);
        enum-valued fields take their member name as a string ("RELU", "SAME"). Use -1 in
        ``inputs`` for an absent optional input (e.g. no bias).
        """
        if not hasattr(self._schema.BuiltinOperator, op):
            raise ValueError(f"unknown builtin operator {op!r}")
        n = len(self._tensors)
        for idx in (*inputs, *outputs):
            if not (idx == -1 or 0 <= idx < n):
                raise ValueError(f"{op}: tensor index {idx} does not exist ({n} tensors)")
        merged = {**_OPTION_DEFAULTS.get(op, {}), **options}
        self._options_table(op, merged)  # validate now, not at finish()
        self._ops.append(_Op(op, tuple(int(i) for i in inputs),
                             tuple(int(o) for o in outputs), merged))

    def _options_class_name(self, op: str) -> str | None:
        if op in _OPTIONS_NAME:
            return _OPTIONS_NAME[op]
        guess = "".join(part.capitalize() for part in op.split("_")) + "Options"
        return guess if hasattr(self._schema.BuiltinOptions, guess) else None

    def _options_table(self, op: str, options: dict[str, Any]) -> tuple[int, Any]:
        """(BuiltinOptions union type, options object) for ``op``."""
        s = self._schema
        cls_name = self._options_class_name(op)
        if cls_name is None:
            if options:
                raise ValueError(f"{op} takes no options, got {sorted(options)}")
            return 0, None
        table = getattr(s, cls_name + "T")()
        for key, value in options.items():
            attr = _camel(key)
            if attr not in vars(table):
                valid = sorted(k for k in vars(table))
                raise ValueError(f"{op}: unknown option {key!r} (fields of {cls_name}: "
                                 f"{valid})")
            if isinstance(value, str):
                enum_name = _ENUM_FIELDS.get(attr)
                enum_cls = getattr(s, enum_name) if enum_name else None
                if enum_cls is None or not hasattr(enum_cls, value):
                    raise ValueError(f"{op}: option {key}={value!r} is not a valid value")
                value = getattr(enum_cls, value)
            setattr(table, attr, value)
        return getattr(s.BuiltinOptions, cls_name), table

    # -- serialisation -------------------------------------------------------------------

    def finish(self, inputs: Sequence[int], outputs: Sequence[int],
               description: str = "tinygen",
               metadata: Sequence[tuple[str, bytes]] = ()) -> bytes:
        """Serialise to a ``.tflite`` flatbuffer (identifier TFL3); deterministic.
        ``metadata``: (name, bytes) entries of the model's metadata table, each in a buffer
        of its own (TFLM skips names it does not know)."""
        import flatbuffers  # installed with tflite_micro

        s = self._schema
        for idx in (*inputs, *outputs):
            if not 0 <= idx < len(self._tensors):
                raise ValueError(f"graph input/output tensor {idx} does not exist")
        opcode_index: dict[str, int] = {}
        codes = []
        operators = []
        for op in self._ops:
            if op.op not in opcode_index:
                code = s.OperatorCodeT()
                builtin = getattr(s.BuiltinOperator, op.op)
                code.builtinCode = builtin
                code.deprecatedBuiltinCode = min(
                    builtin, s.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
                code.version = 1
                opcode_index[op.op] = len(codes)
                codes.append(code)
            o = s.OperatorT()
            o.opcodeIndex = opcode_index[op.op]
            o.inputs = list(op.inputs)
            o.outputs = list(op.outputs)
            o.builtinOptionsType, o.builtinOptions = self._options_table(op.op, op.options)
            operators.append(o)

        tensors = []
        for t in self._tensors:
            tt = s.TensorT()
            tt.name = t.name
            tt.shape = list(t.shape)
            tt.type = getattr(s.TensorType, _TENSOR_TYPES[t.dtype])
            tt.buffer = t.buffer
            if t.scale is not None:
                q = s.QuantizationParametersT()
                q.scale = [float(np.float32(v)) for v in t.scale]
                q.zeroPoint = list(t.zero_point)
                q.quantizedDimension = t.quantized_dimension
                tt.quantization = q
            tensors.append(tt)

        graph = s.SubGraphT()
        graph.tensors = tensors
        graph.inputs = [int(i) for i in inputs]
        graph.outputs = [int(o) for o in outputs]
        graph.operators = operators
        graph.name = "main"

        model = s.ModelT()
        model.version = SCHEMA_VERSION
        model.description = description
        model.operatorCodes = codes
        model.subgraphs = [graph]
        buffers = list(self._buffers)
        if metadata:  # none: no table at all, so files without metadata keep their bytes
            model.metadata = []
            for name, data in metadata:
                entry = s.MetadataT()
                entry.name, entry.buffer = name, len(buffers)
                buffers.append(bytes(data))
                model.metadata.append(entry)
        model.buffers = [_AlignedBuffer(s, data) for data in buffers]

        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
        return bytes(builder.Output())


class _AlignedBuffer:
    """Stands in for ``BufferT``: packs ``data`` aligned to BUFFER_ALIGNMENT in the file."""

    def __init__(self, schema: ModuleType, data: bytes) -> None:
        self._schema = schema
        self._data = data

    def Pack(self, builder: Any) -> int:  # the object API calls it by this name
        s, data = self._schema, self._data
        vec = None
        if data:
            builder.StartVector(1, len(data), BUFFER_ALIGNMENT)
            builder.head = builder.head - len(data)
            builder.Bytes[builder.head:builder.head + len(data)] = data
            vec = builder.EndVector()
        s.BufferStart(builder)
        if vec is not None:
            s.BufferAddData(builder, vec)
        return int(s.BufferEnd(builder))
