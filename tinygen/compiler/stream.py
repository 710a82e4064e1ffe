"""Compile a streaming step: a module that maps (input, *state) to (output, *state).

What goes in: any ``nn.Module`` whose forward takes the new input chunk and N state
tensors and returns the chunk's output and the N updated state tensors, in the same order
(tinygen's ``speech.streaming.StreamStep`` is one), plus calibration *streams*: for each
step of some example streams, the float inputs the step received.

What comes out (:class:`CompiledStep`):

- the int8 step graph. Inputs ``[x, s_0 .. s_N-1]``, outputs ``[y, s'_0 .. s'_N-1]``;
- each state tensor pair ``(s_i, s'_i)`` has one quantization, so the bytes one step writes
  are the bytes the next step reads, with no requantization. That holds by construction
  when each state output is a slice of a concatenation that takes the state input (a
  cache), and it is checked: a step whose state pairs would need different quantizations
  is refused;
- the golden int8 step (:meth:`CompiledStep.run_int8`), which every C build must equal bit
  for bit, step after step;
- the int8 state a stream starts from (:meth:`CompiledStep.fixed_state`): the golden step
  iterated on a constant input (silence) until the state no longer changes. A bounded
  receptive field guarantees that this point exists and does not depend on where the
  iteration started;
- the ``.tflite`` flavour of the same step (:attr:`CompiledStep.tflite_int8`, LayerNorm as
  TFLite builtins, as for a window in ``pipeline.Compiled``): the state stays explicit
  inputs and outputs with the same quantization, and it has its own start state
  (:meth:`CompiledStep.start_state`), since its LayerNorm rounds differently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from tinygen.compiler import passes
from tinygen.compiler.capture import capture
from tinygen.compiler.ir import Graph, Quant
from tinygen.compiler.pipeline import fix_input_range
from tinygen.compiler.quantize import (
    QuantizationError,
    Ranges,
    check_constants,
    dequantize_array,
    quantize,
    quantize_array,
)
from tinygen.errors import TinygenError
from tinygen.reference import floatref, interpreter

Step = list[np.ndarray]  # the float inputs of one step: [x, s_0, ..., s_N-1]


class StreamCompileError(TinygenError):
    """A streaming step that cannot be compiled as a stateful step."""


@dataclass
class CompiledStep:
    float_graph: Graph
    ranges: Ranges
    int8: Graph
    n_state: int
    calib_steps: list[Step] = field(default_factory=list, repr=False)
    float_start: list[np.ndarray] = field(default_factory=list, repr=False)  # float state
    _tflite_int8: Graph | None = field(default=None, repr=False)

    @property
    def tflite_int8(self) -> Graph:
        """The step with LayerNorm decomposed into TFLite builtins: what the .tflite export
        holds. Its new intermediates are calibrated on the same recorded steps; every
        value it shares with :attr:`int8` (the input, the state, the output) keeps that
        quantization, so the state pairs still match."""
        if self._tflite_int8 is None:
            decomposed = passes.decompose_layer_norm(self.float_graph)
            extra = Ranges()
            for inputs in self.calib_steps:
                floatref.run(decomposed, inputs, observe=extra.observe)
            merged = Ranges({**extra.lo, **self.ranges.lo}, {**extra.hi, **self.ranges.hi},
                            self.ranges.samples)
            graph = quantize(decomposed, merged)
            _check_state_quant(graph, self.float_graph)
            graph.meta["state"] = dict(self.int8.meta["state"])
            self._tflite_int8 = graph
        return self._tflite_int8

    def graph(self, tflite_flavour: bool = False) -> Graph:
        return self.tflite_int8 if tflite_flavour else self.int8

    # ------------------------------------------------------------ quantization
    def quant(self, name: str) -> Quant:
        q = self.int8.values[name].quant
        assert q is not None
        return q

    @property
    def input_quant(self) -> Quant:
        return self.quant(self.int8.inputs[0])

    @property
    def output_quant(self) -> Quant:
        return self.quant(self.int8.outputs[0])

    def state_quants(self) -> list[Quant]:
        return [self.quant(n) for n in self.int8.inputs[1:]]

    def state_shapes(self) -> list[tuple[int, ...]]:
        return [self.int8.values[n].shape for n in self.int8.inputs[1:]]

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        return quantize_array(x, self.input_quant)

    def quantize_state(self, state: list[np.ndarray]) -> list[np.ndarray]:
        return [quantize_array(s, q) for s, q in zip(state, self.state_quants(), strict=True)]

    # ------------------------------------------------------------------ running
    def run_int8(self, xq: np.ndarray, state: list[np.ndarray], tflite_flavour: bool = False
                 ) -> tuple[np.ndarray, list[np.ndarray]]:
        """One golden int8 step: (output, new state)."""
        out = interpreter.run(self.graph(tflite_flavour), [xq, *state])
        return out[0], out[1:]

    def run_float(self, x: np.ndarray, state: list[np.ndarray]
                  ) -> tuple[np.ndarray, list[np.ndarray]]:
        out = floatref.run(self.float_graph, [x, *state])
        return out[0], out[1:]

    def fixed_state(self, xq: np.ndarray, max_steps: int = 1000, tflite_flavour: bool = False
                    ) -> tuple[list[np.ndarray], int]:
        """The int8 state that stepping on the constant input ``xq`` settles into, and
        the number of steps it took from the all-zero-point state."""
        state = [np.full(shape, q.zero_point[0], np.int8)
                 for shape, q in zip(self.state_shapes(), self.state_quants(), strict=True)]
        for k in range(1, max_steps + 1):
            _, new = self.run_int8(xq, state, tflite_flavour)
            if all(np.array_equal(a, b) for a, b in zip(new, state, strict=True)):
                return state, k - 1
            state = new
        raise StreamCompileError(
            f"the step's state did not settle after {max_steps} steps on a constant input",
            "the state must depend on a bounded window of past input")

    def start_state(self, tflite_flavour: bool = False) -> list[np.ndarray]:
        """The int8 state a stream of this flavour starts from (``meta["state_init"]``):
        the fixed point of the flavour's step on ``meta["rest_input"]``, the quantized
        constant input (silence) the native one was computed on."""
        graph = self.graph(tflite_flavour)
        if "state_init" not in graph.meta:
            if "rest_input" not in self.int8.meta:
                raise StreamCompileError("the step has no start state",
                                         "compile it with speech.streaming.compile_streaming")
            graph.meta["state_init"], _ = self.fixed_state(
                self.int8.meta["rest_input"], tflite_flavour=tflite_flavour)
        return list(graph.meta["state_init"])

    def stream_int8(self, chunks_q: list[np.ndarray], start: list[np.ndarray],
                    tflite_flavour: bool = False) -> list[np.ndarray]:
        """The golden outputs of stepping through ``chunks_q`` from ``start``."""
        state, outs = list(start), []
        for xq in chunks_q:
            y, state = self.run_int8(xq, state, tflite_flavour)
            outs.append(y)
        return outs

    def snr_db(self, streams: list[list[np.ndarray]], start_float: list[np.ndarray],
               start_q: list[np.ndarray], tflite_flavour: bool = False) -> float:
        """Float step vs golden int8 step (dequantized) over whole streams, pooled."""
        signal = noise = 0.0
        for chunks in streams:
            fs, qs = list(start_float), list(start_q)
            for x in chunks:
                ref, fs = self.run_float(x, fs)
                got_q, qs = self.run_int8(self.quantize_input(x), qs, tflite_flavour)
                got = dequantize_array(got_q, self.output_quant)
                signal += float((ref.astype(np.float64) ** 2).sum())
                noise += float(((ref - got) ** 2).sum())
        return float(10 * np.log10(signal / max(noise, 1e-30)))


def _tie_state_ranges(graph: Graph, ranges: Ranges, n_state: int) -> Ranges:
    """A state input and the state output that replaces it hold the same tensor one step
    apart: give both the union of their calibrated ranges."""
    lo, hi = dict(ranges.lo), dict(ranges.hi)
    for s_in, s_out in zip(graph.inputs[1:], graph.outputs[1:], strict=True):
        a, b = min(lo[s_in], lo[s_out]), max(hi[s_in], hi[s_out])
        lo[s_in] = lo[s_out] = a
        hi[s_in] = hi[s_out] = b
    return Ranges(lo, hi, ranges.samples)


def _check_state_quant(int8: Graph, float_graph: Graph) -> None:
    """Refuse a step whose state would change quantization from one step to the next."""
    for i, (s_in, s_out) in enumerate(zip(int8.inputs[1:], int8.outputs[1:], strict=True)):
        if int8.values[s_in].quant != int8.values[s_out].quant:
            raise StreamCompileError(
                f"state {i} ({float_graph.values[float_graph.inputs[1 + i]].origin}) would "
                "come out with another int8 quantization than it went in",
                "make each new state a slice of a concatenation with the old one (a cache)")


def compile_step(module: torch.nn.Module, example: tuple[torch.Tensor, ...],
                 calib_steps: list[Step],
                 progress: Callable[[int], None] | None = None,
                 input_range: tuple[float, float] | None = None) -> CompiledStep:
    """Capture ``module`` on ``example`` (input chunk, then the state tensors), calibrate it
    on ``calib_steps`` and quantize it, keeping one quantization per state pair;
    ``input_range`` fixes the chunk's quantization range (pipeline.fix_input_range)."""
    if not calib_steps:
        raise QuantizationError("the calibration set is empty",
                                "give at least one calibration stream")
    n_state = len(example) - 1
    graph = passes.optimize(capture(module, example))
    if len(graph.inputs) != n_state + 1 or len(graph.outputs) != n_state + 1:
        raise StreamCompileError(
            f"the step takes {len(graph.inputs)} inputs and returns {len(graph.outputs)} "
            f"outputs; a step with {n_state} state tensors must return {n_state + 1}",
            "return (output, *new_state) with the state in the order it came in")
    for i, (s_in, s_out) in enumerate(zip(graph.inputs[1:], graph.outputs[1:], strict=True)):
        a, b = graph.values[s_in].shape, graph.values[s_out].shape
        if a != b:
            raise StreamCompileError(f"state {i} goes in as {a} and comes out as {b}",
                                     "a step must return each state tensor in its shape")
    check_constants(graph)
    ranges = Ranges()
    for k, inputs in enumerate(calib_steps, start=1):
        floatref.run(graph, inputs, observe=ranges.observe)
        ranges.samples += 1
        if progress:
            progress(k)
    ranges = _tie_state_ranges(graph, fix_input_range(graph, ranges, input_range), n_state)
    int8 = passes.fold_matmul_layout(quantize(graph, ranges))
    _check_state_quant(int8, graph)
    int8.meta["state"] = {"inputs": list(int8.inputs[1:]), "outputs": list(int8.outputs[1:])}
    return CompiledStep(graph, ranges, int8, n_state, calib_steps=list(calib_steps))
