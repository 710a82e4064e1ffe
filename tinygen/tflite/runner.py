"""Run a ``.tflite`` model under the TFLM interpreter from the ``tflite_micro`` wheel.

TFLM is tinygen's oracle: its reference kernels define the integer semantics that
``tinygen.reference.kernels`` reproduces and that every generated C build must match.

TFLM never resizes tensors; every shape comes from the flatbuffer. It allocates everything
from one arena whose size the caller fixes up front, so ``run_tflm`` sizes it from the
model (generously: it is host memory) unless told otherwise.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from tinygen.errors import TinygenError
from tinygen.tflite.writer import load_schema

_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_ITEMSIZE = {0: 4, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8}  # TensorType -> bytes


class TFLMUnavailableError(TinygenError):
    """The ``tflite_micro`` wheel is not installed, so TFLM cannot run."""


class TFLMRunError(TinygenError):
    """TFLM refused the model (Prepare failed) or failed while invoking it."""


def _runtime() -> ModuleType:
    try:
        from tflite_micro import runtime
    except ImportError as err:
        raise TFLMUnavailableError(
            f"the TFLM interpreter is unavailable ({err})",
            "install it with `pip install tflite-micro` (wheels exist for CPython "
            "3.10-3.12 on x86-64 Linux)") from None
    return runtime


def _io_counts_and_activation_bytes(model: bytes) -> tuple[int, int, int]:
    """(number of inputs, number of outputs, bytes of all non-constant tensors)."""
    s = load_schema()
    m = s.Model.GetRootAs(model, 0)
    if m.SubgraphsLength() != 1:
        raise TFLMRunError(f"model has {m.SubgraphsLength()} subgraphs",
                           "tinygen writes and runs single-subgraph models")
    g = m.Subgraphs(0)
    act = 0
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        buf = m.Buffers(t.Buffer())
        if buf is not None and buf.DataLength() > 0:
            continue
        act += int(np.prod(t.ShapeAsNumpy(), dtype=np.int64)) * _ITEMSIZE.get(t.Type(), 8)
    return g.InputsLength(), g.OutputsLength(), act


def default_arena_bytes(model: bytes) -> int:
    """An arena that fits any one-subgraph tinygen model: room for each activation
    three times over (BATCH_MATMUL keeps transposed copies) plus bookkeeping."""
    _, _, act = _io_counts_and_activation_bytes(model)
    return 10 * len(model) + 4 * act + 256 * 1024


def run_tflm(model: bytes, inputs: Sequence[np.ndarray],
             arena_size: int | None = None) -> list[np.ndarray]:
    """Invoke ``model`` once on ``inputs`` (one array per model input, in order) and
    return its outputs (copies), in order."""
    _runtime()  # without the wheel: say so before reading the model with its schema
    n_in, n_out, _ = _io_counts_and_activation_bytes(model)
    if len(inputs) != n_in:
        raise TFLMRunError(f"model has {n_in} inputs, got {len(inputs)} arrays")
    interp = _open(model, arena_size)
    return _invoke(interp, inputs, n_out)


def stream_tflm(model: bytes, streams: Sequence[Sequence[np.ndarray]],
                start: Sequence[np.ndarray], arena_size: int | None = None
                ) -> list[list[np.ndarray]]:
    """Step a streaming step's ``model`` (inputs ``[x, s_0 .. s_N-1]``, outputs
    ``[y, s'_0 .. s'_N-1]``) through each of ``streams`` (its chunks ``x``), each stream
    from the state ``start``, on ONE interpreter: as a device does, with a reset between
    streams. Between steps the new state goes back in as the next step's state, which is
    all a runner keeps. Returns each stream's outputs ``y``, one per chunk."""
    _runtime()
    n_in, n_out, _ = _io_counts_and_activation_bytes(model)
    if n_in != len(start) + 1 or n_out != n_in:
        raise TFLMRunError(f"model has {n_in} inputs and {n_out} outputs, a step with "
                           f"{len(start)} state tensors needs {len(start) + 1} of each")
    interp = _open(model, arena_size)
    outs: list[list[np.ndarray]] = []
    for chunks in streams:
        state, ys = list(start), []  # reset
        for x in chunks:
            y, *state = _invoke(interp, [x, *state], n_out)
            ys.append(y)
        outs.append(ys)
    return outs


def _open(model: bytes, arena_size: int | None) -> Any:
    runtime = _runtime()
    arena = default_arena_bytes(model) if arena_size is None else int(arena_size)
    try:
        return runtime.Interpreter.from_bytes(bytes(model), arena_size=arena)
    except RuntimeError as err:
        raise TFLMRunError(f"TFLM failed: {err}",
                           "its reason is printed on stderr by the interpreter") from None


def _invoke(interp: Any, inputs: Sequence[np.ndarray], n_out: int) -> list[np.ndarray]:
    try:
        for i, x in enumerate(inputs):
            want = interp.get_input_details(i)
            arr = np.array(x, dtype=want["dtype"], order="C")  # keeps 0-d arrays 0-d
            if tuple(arr.shape) != tuple(int(d) for d in want["shape"]):
                raise TFLMRunError(f"input {i} has shape {tuple(arr.shape)}, the model "
                                   f"expects {tuple(int(d) for d in want['shape'])}")
            interp.set_input(arr, i)
        interp.invoke()
        return [np.array(interp.get_output(i), copy=True) for i in range(n_out)]
    except RuntimeError as err:
        raise TFLMRunError(f"TFLM failed: {err}",
                           "its reason is printed on stderr by the interpreter") from None


_CHILD = r"""
import sys
import numpy as np
from tflite_micro import runtime
model = sys.stdin.buffer.read()
arena, n_inputs = int(sys.argv[1]), int(sys.argv[2])
interp = runtime.Interpreter.from_bytes(model, arena_size=arena)
for i in range(n_inputs):
    d = interp.get_input_details(i)
    interp.set_input(np.zeros([int(v) for v in d["shape"]], dtype=d["dtype"]), i)
interp.invoke()
sys.stderr.flush()
interp.print_allocations()
"""


def tflm_arena_bytes(model: bytes, arena_size: int | None = None) -> int:
    """The arena TFLM actually uses for ``model`` (its RecordingMicroAllocator's total).

    ``print_allocations`` writes to stderr from C, so it runs in a child Python process
    whose stderr we capture; inputs are zeros (arena use does not depend on values).
    """
    _runtime()  # fail here, clearly, if the wheel is missing
    n_in, _, _ = _io_counts_and_activation_bytes(model)
    arena = default_arena_bytes(model) if arena_size is None else int(arena_size)
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(arena), str(n_in)],
                          input=bytes(model),
                          capture_output=True, timeout=300)
    err = proc.stderr.decode(errors="replace")
    found = _ARENA_TOTAL.search(err)
    if proc.returncode != 0 or found is None:
        tail = err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}"
        raise TFLMRunError(f"TFLM could not allocate the model: {tail}")
    return int(found.group(1))


_SEARCH = r"""
import sys
import numpy as np
from tflite_micro import runtime
model = sys.stdin.buffer.read()
lo, hi, n_inputs = (int(v) for v in sys.argv[1:4])


def fits(arena):
    try:
        interp = runtime.Interpreter.from_bytes(model, arena_size=arena)
        for i in range(n_inputs):
            d = interp.get_input_details(i)
            interp.set_input(np.zeros([int(v) for v in d["shape"]], dtype=d["dtype"]), i)
        interp.invoke()
    except RuntimeError:
        return False
    return True


if fits(lo):
    print(lo)
    sys.exit(0)
a, b = lo // 16, -(-hi // 16)  # in units of 16 bytes: a does not fit, b must
if not fits(16 * b):
    sys.exit(3)
while b - a > 1:
    m = (a + b) // 2
    if fits(16 * m):
        b = m
    else:
        a = m
print(16 * b)
"""


def tflm_min_arena_bytes(model: bytes, floor: int) -> int:
    """The smallest arena of at least ``floor`` bytes (to 16 bytes) with which TFLM
    allocates and invokes ``model``: ``floor`` itself when that fits.

    The tensors' total (:func:`tflm_arena_bytes`) is not always enough: while planning,
    TFLM's memory planner takes the rest of the arena as scratch, about 72 bytes per planned
    buffer on a 64-bit host, so a model with many small tensors (a streaming step) needs
    more for the plan than for its tensors. Bisection up to the default arena, in one child
    process.
    """
    _runtime()
    n_in, _, _ = _io_counts_and_activation_bytes(model)
    floor = -(-int(floor) // 16) * 16
    hi = max(default_arena_bytes(model), floor)
    proc = subprocess.run([sys.executable, "-c", _SEARCH, str(floor), str(hi), str(n_in)],
                          input=bytes(model), capture_output=True, timeout=600)
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0 or not out.isdigit():
        raise TFLMRunError(f"TFLM could not allocate the model in {hi:,} bytes "
                           f"(exit {proc.returncode})")
    return int(out)
