"""The compile pipeline: capture -> passes -> calibrate -> int8, in both flavours.

- ``int8``: the native graph with tinygen's integer LayerNorm and the transposes around
  batch matmuls folded into the matmuls' operand views (passes.fold_matmul_layout); the
  C runtime runs it and the golden reference defines its outputs.
- ``tflite_int8``: LayerNorm decomposed into TFLite builtins; it is what the .tflite
  export holds (TRANSPOSE ops kept), and the golden reference runs it bit-exactly like
  TFLite Micro.

Both share the float graph's calibration ranges, so every activation they have in
common has the same quantization.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from tinygen.compiler import passes
from tinygen.compiler.capture import capture, capture_program
from tinygen.compiler.ir import Graph, Quant
from tinygen.compiler.quantize import (
    QuantizationError,
    Ranges,
    calibrate,
    check_constants,
    dequantize_array,
    quantize,
    quantize_array,
)
from tinygen.reference import floatref, interpreter


@dataclass
class Compiled:
    float_graph: Graph  # optimized float IR
    ranges: Ranges
    int8: Graph  # native flavour
    frames: int
    calib_inputs: list[np.ndarray] = field(default_factory=list, repr=False)
    tie_scales: bool = True  # quantize(tie_scales=): the shared weights' ranges tied
    _tflite_int8: Graph | None = field(default=None, repr=False)

    @property
    def tflite_int8(self) -> Graph:
        if self._tflite_int8 is None:
            decomposed = passes.decompose_layer_norm(self.float_graph)
            extra = Ranges()  # only the new intermediates need ranges
            for x in self.calib_inputs:
                floatref.run(decomposed, [x], observe=extra.observe)
            merged = Ranges({**extra.lo, **self.ranges.lo}, {**extra.hi, **self.ranges.hi},
                            self.ranges.samples)
            self._tflite_int8 = quantize(decomposed, merged, self.tie_scales)
        return self._tflite_int8

    @property
    def input_quant(self) -> Quant:
        q = self.int8.values[self.int8.inputs[0]].quant
        assert q is not None
        return q

    @property
    def output_quant(self) -> Quant:
        q = self.int8.values[self.int8.outputs[0]].quant
        assert q is not None
        return q

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        return quantize_array(x, self.input_quant)

    def run_int8(self, xq: np.ndarray, tflite_flavour: bool = False) -> np.ndarray:
        graph = self.tflite_int8 if tflite_flavour else self.int8
        return interpreter.run(graph, [xq])[0]

    def run_float(self, x: np.ndarray) -> np.ndarray:
        return floatref.run(self.float_graph, [x])[0]

    def snr_db(self, inputs: list[np.ndarray], tflite_flavour: bool = False
               ) -> float | None:
        """Float model vs int8 golden output (dequantized), over ``inputs`` pooled; None
        when the float output is all zero (no signal: the ratio is undefined)."""
        graph = self.tflite_int8 if tflite_flavour else self.int8
        qout = graph.values[graph.outputs[0]].quant
        assert qout is not None
        signal = noise = 0.0
        for x in inputs:
            ref = self.run_float(x).astype(np.float64)
            got = dequantize_array(interpreter.run(graph, [self.quantize_input(x)])[0], qout)
            signal += float((ref ** 2).sum())
            noise += float(((ref - got) ** 2).sum())
        if not signal > 0:
            return None
        return float(10 * np.log10(signal / max(noise, 1e-30)))


def fix_input_range(graph: Graph, ranges: Ranges,
                    input_range: tuple[float, float] | None) -> Ranges:
    """Give the first input the range ``input_range`` instead of its calibrated one: an
    input that a front end quantizes (tinygen.audio: scale 1/40, zero point -28) is
    quantized as the front end does it, whatever the calibration inputs spanned."""
    if input_range is not None:
        name = graph.inputs[0]
        ranges.lo[name], ranges.hi[name] = float(input_range[0]), float(input_range[1])
    return ranges


def compile_model(model: torch.nn.Module | torch.export.ExportedProgram, frames: int,
                  calib_inputs: list[np.ndarray],
                  progress: Callable[[int], None] | None = None,
                  input_range: tuple[float, float] | None = None,
                  tie_scales: bool = True) -> Compiled:
    """Capture ``model`` (a module, or a program already exported for a (1, frames,
    n_mels) input) on a (1, frames, n_mels) window and quantize it; ``input_range`` fixes
    the input's quantization range (see :func:`fix_input_range`); ``tie_scales``: see
    :func:`tinygen.compiler.quantize.quantize`."""
    if not calib_inputs:
        raise QuantizationError("the calibration set is empty",
                                "give at least one calibration input (--calib N, N >= 1)")
    if isinstance(model, torch.export.ExportedProgram):
        graph = passes.optimize(capture_program(model))
    else:
        example = torch.zeros(1, frames, calib_inputs[0].shape[-1])
        graph = passes.optimize(capture(model, example))
    check_constants(graph)
    ranges = fix_input_range(graph, calibrate(graph, calib_inputs, progress), input_range)
    int8 = passes.fold_matmul_layout(quantize(graph, ranges, tie_scales))
    return Compiled(graph, ranges, int8, frames,
                    calib_inputs=list(calib_inputs), tie_scales=tie_scales)
