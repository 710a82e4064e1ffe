"""The portable C kernels (firmware/tinygen/portable) against the numpy reference, byte for
byte.

The numpy kernels (tinygen/reference/kernels.py, layernorm.py) are the contract; they are
themselves pinned to TFLite Micro by test_kernels_tflm.py. Here every C kernel runs on
random cases drawn from fixed seeds: realistic shapes, zero points, scales over several
decades through the ``prepare_*`` functions, fused clamps, strides, both paddings. One C
driver (tests/c/tg_kernel_driver.c) reads a batch of cases on stdin and writes the outputs
on stdout. It is built twice per session: with AddressSanitizer and UBSan (any
out-of-bounds access, signed overflow or bad shift aborts the run), and plainly at -O3
(the vectoriser's view of the same loops). Both builds use the firmware's strict flags.

A second group of tests compiles every portable source for Cortex-M4, M7 and M55 and
checks what the objects may link against (memcpy/memset and integer-division helpers: no
libc, no floating point).
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import struct
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from tinygen.reference import kernels as K
from tinygen.reference.layernorm import layer_norm_s8, prepare_layer_norm

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware" / "tinygen"
PORTABLE = FIRMWARE / "portable"
DRIVER = REPO / "tests" / "c" / "tg_kernel_driver.c"

KERNELS = ("fully_connected", "conv2d", "depthwise_conv2d", "batch_matmul", "add", "mul",
           "lut", "softmax", "layer_norm", "transpose", "split", "add_bcast", "mul_bcast",
           "log_softmax", "slice", "concat")

STRICT = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"]
BUILDS = {
    "sanitized": [*STRICT, "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                  "-fno-omit-frame-pointer"],
    "optimized": [*STRICT, "-O3"],
    # the scalar dot loops that cores without SSE2 run (tg_dot.h), on this host too
    "scalar": [*STRICT, "-DTG_DOT_SSE2=0"],
}
ARM_CPUS = {
    "cortex-m4": ["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16"],
    "cortex-m7": ["-mcpu=cortex-m7", "-mfpu=fpv5-d16"],
    "cortex-m55": ["-mcpu=cortex-m55", "-mfpu=auto"],
}
# What a portable kernel object may leave undefined: two libc memory functions and the
# compiler's 64-bit integer division helper (libgcc; the layer norm divides by sqrt(Q)).
ARM_ALLOWED_UNDEFINED = {"memcpy", "memset", "__aeabi_uldivmod", "__aeabi_ldivmod"}

# Op codes of tests/c/tg_kernel_driver.c.
OP = {"fully_connected": 1, "conv2d": 2, "depthwise_conv2d": 3, "batch_matmul": 4, "add": 5,
      "mul": 6, "lut": 7, "softmax": 8, "layer_norm": 9, "transpose": 10, "split": 11,
      "add_bcast": 12, "mul_bcast": 13, "log_softmax": 14,
      "slice": 15, "concat": 16,
      "srdhm": 20, "rounding_divide_by_pot": 21, "mbqm": 22, "exp_on_negative_values": 23,
      "one_over_one_plus_x": 24, "isqrt": 25, "requant": 26}

INT32_MIN, INT32_MAX = K.INT32_MIN, K.INT32_MAX


# ---- the driver ------------------------------------------------------------------------


@dataclass
class Case:
    """One kernel call: the driver's scalars and input tensors, and the expected outputs."""

    op: str
    label: str
    scalars: Sequence[int]
    blobs: Sequence[np.ndarray]  # int8 / int32 / uint64; an empty int32 blob means NULL
    expected: Sequence[np.ndarray]

    def encode(self) -> bytes:
        parts = [struct.pack("<ii", OP[self.op], len(self.scalars)),
                 struct.pack(f"<{len(self.scalars)}q", *(int(s) for s in self.scalars)),
                 struct.pack("<i", len(self.blobs))]
        for blob in self.blobs:
            a = np.ascontiguousarray(blob)
            assert a.dtype in (np.int8, np.int32, np.uint64), a.dtype
            little = a.astype(a.dtype.newbyteorder("<"))
            parts += [struct.pack("<iq", a.itemsize, a.size), little.tobytes()]
        parts.append(struct.pack("<i", len(self.expected)))
        parts.append(struct.pack(f"<{len(self.expected)}q", *(e.nbytes for e in self.expected)))
        return b"".join(parts)


def run_driver(exe: Path, cases: Sequence[Case]) -> None:
    """Run every case in one process; assert each output equals the expected bytes."""
    # The kernels never allocate; the driver's own blocks need no leak check.
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=0"}
    proc = subprocess.run([str(exe)], input=b"".join(c.encode() for c in cases),
                          capture_output=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-4000:]
    assert proc.stderr == b"", proc.stderr.decode(errors="replace")[-4000:]
    out = proc.stdout
    assert len(out) == sum(e.nbytes for c in cases for e in c.expected)
    pos, bad = 0, []
    for case in cases:
        for k, want in enumerate(case.expected):
            got = np.frombuffer(out[pos:pos + want.nbytes], dtype=want.dtype.newbyteorder("<"))
            pos += want.nbytes
            if not np.array_equal(got, want.ravel()):
                diff = got.astype(np.int64) != want.ravel().astype(np.int64)
                bad.append(f"{case.label} output {k}: {int(diff.sum())} of {want.size} differ")
    assert not bad, f"{len(bad)} of {len(cases)} cases differ:\n" + "\n".join(bad[:20])


def compile_driver(out_dir: Path, flags: Sequence[str]) -> Path:
    exe = out_dir / "tg_kernel_driver"
    sources = [str(p) for p in sorted(PORTABLE.glob("*.c"))] + [str(DRIVER)]
    proc = subprocess.run(["gcc", *flags, "-I", str(FIRMWARE), *sources, "-o", str(exe)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr  # warning-free
    return exe


@pytest.fixture(scope="session", params=sorted(BUILDS))
def driver(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_driver(tmp_path_factory.mktemp(f"driver-{request.param}"),
                          BUILDS[request.param])


# ---- random cases ------------------------------------------------------------------------


def log_scale(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A scale drawn log-uniformly from [10^lo, 10^hi], already a float32 value."""
    return float(np.float32(10.0 ** rng.uniform(lo, hi)))


def zp(rng: np.random.Generator) -> int:
    return int(rng.integers(-128, 128))


def q8(rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    return rng.integers(-128, 128, size=tuple(shape)).astype(np.int8)


def weights(rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    return rng.integers(-127, 128, size=tuple(shape)).astype(np.int8)


def activation(rng: np.random.Generator) -> str:
    return K.ACTIVATIONS[int(rng.integers(len(K.ACTIVATIONS)))]


def output_quant(rng: np.random.Generator, real_lo: float, real_hi: float, case: int
                 ) -> tuple[float, int]:
    """Output (scale, zero point) as calibration over [real_lo, real_hi] would pick them,
    jittered; every fifth case is deliberately off (clamping, coarse or fine scales)."""
    lo, hi = min(real_lo, 0.0), max(real_hi, 0.0)
    scale = max(hi - lo, 1e-6) / 255 * 10 ** rng.uniform(-0.2, 0.3)
    z = int(np.clip(round(-128 - lo / scale), -128, 127))
    if case % 5 == 0:
        scale, z = scale * 10 ** rng.uniform(-1, 1), zp(rng)
    return float(np.float32(scale)), z


def acc_quant(rng: np.random.Generator, x: np.ndarray, zp_in: int, w: np.ndarray, taps: int,
              scale: float, case: int) -> tuple[float, int]:
    """Output quantization for an accumulator of ``taps`` products (x − zp)·w, from their
    root-mean-square sizes (about ±3 standard deviations of the real output)."""
    rms_x = math.sqrt(float(np.mean((x.astype(np.float64) - zp_in) ** 2)) + 1.0)
    rms_w = math.sqrt(float(np.mean(w.astype(np.float64) ** 2)) + 1.0)
    spread = 3.0 * rms_x * rms_w * math.sqrt(taps) * scale
    return output_quant(rng, -spread, spread, case)


def i32(values: Sequence[int] | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).astype(np.int32)


def shifts8(values: Sequence[int] | np.ndarray) -> np.ndarray:
    """Per-channel shifts as the generated C stores them: int8 (TFLM's lie in [-31, 31])."""
    arr = np.asarray(values, dtype=np.int64)
    assert arr.min() >= -31 and arr.max() <= 31
    return arr.astype(np.int8)


def no_blob() -> np.ndarray:
    return np.zeros(0, dtype=np.int32)


def fully_connected_cases() -> list[Case]:
    rng = np.random.default_rng(1001)
    cases = []
    for case in range(200):
        rows, d_in, d_out = (int(rng.integers(1, 31)), int(rng.integers(1, 301)),
                             int(rng.integers(1, 301)))
        if case % 20 == 9:  # past the packed loop's 512 features: the byte-pair loop
            d_in = 512 + case
        per_channel = case % 3 != 0
        s_in, zp_in = log_scale(rng, -3, 0.5), zp(rng)
        s_w = [log_scale(rng, -3, -0.5) for _ in range(d_out if per_channel else 1)]
        x, w = q8(rng, (rows, d_in)), weights(rng, (d_out, d_in))
        if case % 5 == 1:
            bias = None
        elif case % 10 == 7:  # biases at the int32 limits: the sum wraps as TFLM's does
            near = rng.integers(0, 1 << 17, size=d_out)
            bias = np.where(rng.random(d_out) < 0.5, INT32_MAX - near, INT32_MIN + near)
        else:
            bias = rng.integers(-40000, 40000, size=d_out)
        bias = None if bias is None else i32(bias)
        s_out, zp_out = acc_quant(rng, x, zp_in, w, d_in, s_in * float(np.median(s_w)), case)
        if case % 10 == 3:  # an output step finer than the accumulator's: multiplier > 1
            s_out = float(np.float32(s_in * min(s_w) * 10 ** rng.uniform(-1.5, -0.2)))
        act = activation(rng)
        p = K.prepare_fully_connected(s_in, zp_in, s_w if per_channel else s_w[0], s_out,
                                      zp_out, act)
        want = K.fully_connected_s8(x, w, bias, p)
        mult = np.broadcast_to(np.asarray(p.output_multiplier), (d_out,))
        shift = np.broadcast_to(np.asarray(p.output_shift), (d_out,))
        cases.append(Case(
            "fully_connected", f"fc#{case} ({rows},{d_in})x({d_out},{d_in}) {act}",
            [rows, d_in, d_out, zp_in, zp_out, p.act_min, p.act_max],
            [x, w, no_blob() if bias is None else bias, i32(mult), shifts8(shift)], [want]))
    return cases


def _conv_case(rng: np.random.Generator, case: int, depthwise: bool) -> Case:
    padding = K.PADDINGS[case % 2]
    n = 1 + (case % 7 == 3)
    if depthwise:
        c = int(rng.integers(1, 301)) if case % 4 else int(rng.integers(1, 17))
        if case % 3 == 0:  # a depthwise conv1d over time, as the Conformer conv module has
            h, w = 1, int(rng.integers(1, 101))
        else:
            h, w = int(rng.integers(1, 25)), int(rng.integers(1, 25))
        c_out = c
    else:
        c, c_out = int(rng.integers(1, 17)), int(rng.integers(1, 49))
        h, w = int(rng.integers(1, 33)), int(rng.integers(1, 33))
        if case % 5 == 2:  # a conv1d laid out as (N, 1, T, C)
            h = 1
    limit_h, limit_w = (min(15, h), min(15, w)) if padding == "VALID" else (15, 15)
    kh, kw = int(rng.integers(1, limit_h + 1)), int(rng.integers(1, limit_w + 1))
    if case % 6 == 0:  # small kernels, as 2-D subsampling convs use
        kh, kw = min(kh, 3), min(kw, 3)
    stride_h, stride_w = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    s_in, zp_in = log_scale(rng, -3, 0.5), zp(rng)
    per_channel = case % 4 != 1
    s_w = [log_scale(rng, -3, -0.5) for _ in range(c_out if per_channel else 1)]
    x = q8(rng, (n, h, w, c))
    wshape = (1, kh, kw, c) if depthwise else (c_out, kh, kw, c)
    wt = weights(rng, wshape)
    bias = None if case % 5 == 4 else i32(rng.integers(-40000, 40000, size=c_out))
    taps = kh * kw * (1 if depthwise else c)
    s_out, zp_out = acc_quant(rng, x, zp_in, wt, taps, s_in * float(np.median(s_w)), case)
    act = activation(rng)
    prepare = K.prepare_depthwise_conv2d if depthwise else K.prepare_conv2d
    p = prepare(s_in, zp_in, s_w if per_channel else s_w[0], s_out, zp_out,
                input_shape=x.shape, filter_shape=wshape, stride_h=stride_h,
                stride_w=stride_w, padding=padding, activation=act)
    if case % 10 == 9:  # padding wider than the kernel: whole windows outside the input
        _, out_h, out_w, oc = p.output_shape
        p = replace(p, pad_h=p.pad_h + kh + 1, pad_w=p.pad_w + kw,
                    output_shape=(n, out_h + 2 * (kh + 1), out_w + 2 * kw, oc))
    want = (K.depthwise_conv2d_s8 if depthwise else K.conv2d_s8)(x, wt, bias, p)
    _, out_h, out_w, oc = p.output_shape
    scalars = [n, h, w, c, out_h, out_w, oc, kh, kw, stride_h, stride_w, p.pad_h, p.pad_w,
               zp_in, zp_out, p.act_min, p.act_max]
    op = "depthwise_conv2d" if depthwise else "conv2d"
    label = (f"{op}#{case} in {x.shape} k {kh}x{kw} s {stride_h},{stride_w} {padding} "
             f"pad {p.pad_h},{p.pad_w} out {p.output_shape} {act}")
    return Case(op, label, scalars,
                [x, wt, no_blob() if bias is None else bias, i32(p.output_multiplier),
                 shifts8(p.output_shift)], [want])


def conv2d_cases() -> list[Case]:
    rng = np.random.default_rng(1002)
    return [_conv_case(rng, case, depthwise=False) for case in range(150)]


def depthwise_conv2d_cases() -> list[Case]:
    rng = np.random.default_rng(1003)
    return [_conv_case(rng, case, depthwise=True) for case in range(150)]


def batch_matmul_cases() -> list[Case]:
    rng = np.random.default_rng(1004)
    cases = []
    for case in range(200):
        batch_dims = (int(rng.integers(1, 9)),) if case % 3 else (2, int(rng.integers(1, 5)))
        m, k, n = int(rng.integers(1, 31)), int(rng.integers(1, 301)), int(rng.integers(1, 31))
        if case % 4 == 0:  # attention scores @ V: the depth is the sequence length
            n = int(rng.integers(1, 65))
        adj_x, adj_y = bool(case % 2), bool((case // 2) % 2)
        s_l, zp_l, s_r, zp_r = log_scale(rng, -3, 0.5), zp(rng), log_scale(rng, -3, 0.5), zp(rng)
        lhs = q8(rng, (*batch_dims, *((k, m) if adj_x else (m, k))))
        rhs = q8(rng, (*batch_dims, *((n, k) if adj_y else (k, n))))
        rms_r = math.sqrt(float(np.mean((rhs.astype(np.float64) - zp_r) ** 2)) + 1.0)
        s_out, zp_out = acc_quant(rng, lhs, zp_l, np.full(1, rms_r), k, s_l * s_r, case)
        p = K.prepare_batch_matmul(s_l, zp_l, s_r, zp_r, s_out, zp_out, adj_x=adj_x,
                                   adj_y=adj_y)
        want = K.batch_matmul_s8(lhs, rhs, p)
        batches = int(np.prod(batch_dims))
        head = [batches, m, k, n, int(adj_x), int(adj_y), zp_l, zp_r, zp_out,
                p.output_multiplier, p.output_shift]
        packed = [lhs.shape[-2] * lhs.shape[-1], lhs.shape[-1],
                  rhs.shape[-2] * rhs.shape[-1], rhs.shape[-1], m * n, n]
        label = f"bmm#{case} {batch_dims} m{m} k{k} n{n} adj {adj_x},{adj_y}"
        cases.append(Case("batch_matmul", label, head + packed, [lhs, rhs], [want]))
        if len(batch_dims) == 1:
            # The same product with every operand stored rows-first, (rows, batches, row)
            # as attention's (T, H, D) tensors are: the kernel reads and writes through
            # strides (a transpose the compiler folded in); numpy's transposes are the
            # oracle's.
            b = batches
            lhs_t, rhs_t = (np.ascontiguousarray(x.transpose(1, 0, 2)) for x in (lhs, rhs))
            want_t = np.ascontiguousarray(want.transpose(1, 0, 2))
            strided = [lhs.shape[-1], b * lhs.shape[-1], rhs.shape[-1], b * rhs.shape[-1],
                       n, b * n]
            cases.append(Case("batch_matmul", label + " rows-first", head + strided,
                              [lhs_t, rhs_t], [want_t]))
    return cases


def _elementwise_shape(rng: np.random.Generator) -> tuple[int, int]:
    return int(rng.integers(1, 31)), int(rng.integers(1, 301))


def add_cases() -> list[Case]:
    rng = np.random.default_rng(1005)
    cases = []
    for case in range(200):
        shape = _elementwise_shape(rng)
        s1, s2 = log_scale(rng, -3, 1), log_scale(rng, -3, 1)
        if case % 4 == 0:  # residual adds: similar scales
            s2 = float(np.float32(s1 * 10 ** rng.uniform(-0.3, 0.3)))
        z1, z2 = zp(rng), zp(rng)
        a, b = q8(rng, shape), q8(rng, shape)
        real = (a.astype(np.float64) - z1) * s1 + (b.astype(np.float64) - z2) * s2
        s_out, zp_out = output_quant(rng, float(real.min()), float(real.max()), case)
        if case % 25 == 11:  # output multiplier in [1/4, 1): shifts 0 and -1
            s_out = float(np.float32(max(s1, s2) * 2.0 ** -19 * 10 ** rng.uniform(0.05, 0.55)))
        act = activation(rng)
        p = K.prepare_add(s1, z1, s2, z2, s_out, zp_out, act)
        in_place = case % 3 == 2
        cases.append(Case(
            "add", f"add#{case} {shape} {act}{' in place' if in_place else ''}",
            [a.size, z1, z2, zp_out, p.left_shift, p.input1_multiplier, p.input1_shift,
             p.input2_multiplier, p.input2_shift, p.output_multiplier, p.output_shift,
             p.act_min, p.act_max, int(in_place)], [a, b], [K.add_s8(a, b, p)]))
    return cases


def mul_cases() -> list[Case]:
    rng = np.random.default_rng(1006)
    cases = []
    for case in range(200):
        shape = _elementwise_shape(rng)
        s1, s2 = log_scale(rng, -3, 1), log_scale(rng, -3, 1)
        z1, z2 = zp(rng), zp(rng)
        if case % 4 == 0:  # x · logistic(x): the second input is a probability
            s2, z2 = K.PROB_SCALE, K.PROB_ZERO_POINT
        a, b = q8(rng, shape), q8(rng, shape)
        real = ((a.astype(np.float64) - z1) * s1) * ((b.astype(np.float64) - z2) * s2)
        s_out, zp_out = output_quant(rng, float(real.min()), float(real.max()), case)
        if case % 25 == 11:  # an output step near the product's: shifts above -2
            s_out = float(np.float32(s1 * s2 * 10 ** rng.uniform(-0.7, 0.5)))
        act = activation(rng)
        p = K.prepare_mul(s1, z1, s2, z2, s_out, zp_out, act)
        in_place = case % 3 == 1
        cases.append(Case(
            "mul", f"mul#{case} {shape} {act}{' in place' if in_place else ''}",
            [a.size, z1, z2, zp_out, p.output_multiplier, p.output_shift, p.act_min,
             p.act_max, int(in_place)], [a, b], [K.mul_s8(a, b, p)]))
    return cases


def _broadcast_operands(rng: np.random.Generator, case: int
                        ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Two int8 tensors that broadcast (rank <= 4): a scalar, a per-channel vector on the
    last or a middle axis, or both sides broadcasting; and the C geometry scalars."""
    rank = int(rng.integers(1, 5))
    out = [int(rng.integers(1, 9)) for _ in range(rank)]
    out[-1] = int(rng.integers(1, 65))
    kind = case % 4
    if kind == 0:  # activation x scalar constant
        sa, sb = list(out), [1] * int(rng.integers(0, rank + 1))
    elif kind == 1:  # per-channel vector on the last axis
        sa, sb = list(out), [out[-1]]
    elif kind == 2:  # per-channel on another axis, e.g. (C, 1) against (B, C, T)
        axis = int(rng.integers(0, rank))
        sa, sb = list(out), [out[d] if d == axis else 1 for d in range(axis, rank)]
    else:  # both sides broadcast
        sa = [d if rng.random() < 0.5 else 1 for d in out]
        sb = [d if s == 1 else 1 for d, s in zip(out, sa, strict=True)]
    if case % 5 == 4:
        sa, sb = sb, sa  # the broadcast operand first
    a, b = q8(rng, sa), q8(rng, sb)
    out4 = [1] * (4 - rank) + list(np.broadcast_shapes(a.shape, b.shape))

    def strides(x: np.ndarray) -> list[int]:  # numpy's own view of the broadcast (int8)
        view = np.broadcast_to(x.reshape([1] * (4 - x.ndim) + list(x.shape)), out4)
        return [int(st) if n > 1 else 0 for st, n in zip(view.strides, out4, strict=True)]

    return a, b, [*out4, *strides(a), *strides(b)]


def _bcast_cases(op: str, seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = []
    for case in range(200):
        a, b, geometry = _broadcast_operands(rng, case)
        s1, s2 = log_scale(rng, -3, 1), log_scale(rng, -3, 1)
        z1, z2 = zp(rng), zp(rng)
        ra, rb = (a.astype(np.float64) - z1) * s1, (b.astype(np.float64) - z2) * s2
        real = ra + rb if op == "add" else ra * rb
        s_out, zp_out = output_quant(rng, float(real.min()), float(real.max()), case)
        act = activation(rng)
        if op == "add":
            p = K.prepare_add(s1, z1, s2, z2, s_out, zp_out, act)
            scalars = [z1, z2, zp_out, p.left_shift, p.input1_multiplier, p.input1_shift,
                       p.input2_multiplier, p.input2_shift, p.output_multiplier,
                       p.output_shift, p.act_min, p.act_max]
            want = K.add_s8(a, b, p)
        else:
            q = K.prepare_mul(s1, z1, s2, z2, s_out, zp_out, act)
            scalars = [z1, z2, zp_out, q.output_multiplier, q.output_shift, q.act_min,
                       q.act_max]
            want = K.mul_s8(a, b, q)
        cases.append(Case(f"{op}_bcast", f"{op}_bcast#{case} {a.shape} {b.shape} {act}",
                          [*scalars, *geometry], [a, b], [want]))
    return cases


def add_bcast_cases() -> list[Case]:
    return _bcast_cases("add", 1012)


def mul_bcast_cases() -> list[Case]:
    return _bcast_cases("mul", 1013)


def logistic_table(p: K.LogisticParams) -> np.ndarray:
    """The 256-entry table the compiler emits: entry x + 128 is LOGISTIC(x)."""
    return K.logistic_s8(np.arange(-128, 128), p).astype(np.int8)


def lut_cases() -> list[Case]:
    rng = np.random.default_rng(1007)
    cases = []
    for case in range(120):
        shape = _elementwise_shape(rng)
        s_in, zp_in = log_scale(rng, -3, 0.7), zp(rng)
        p = K.prepare_logistic(s_in, zp_in)
        x = q8(rng, shape)
        in_place = case % 2 == 1
        cases.append(Case(
            "lut", f"logistic#{case} {shape} scale {s_in:.3g}{' in place' if in_place else ''}",
            [x.size, int(in_place)], [x, logistic_table(p)], [K.logistic_s8(x, p)]))
    return cases


def softmax_cases() -> list[Case]:
    rng = np.random.default_rng(1008)
    cases = []
    for case in range(200):
        rows, depth = int(rng.integers(1, 31)), int(rng.integers(1, 301))
        s_in = log_scale(rng, -3, 0.7)
        beta = 1.0 if case % 3 else float(rng.uniform(0.1, 2.0))
        spread = int(rng.integers(0, 256))  # rows from flat to the full int8 range
        centre = int(rng.integers(-128, 128))
        x = np.clip(centre + rng.integers(-spread, spread + 1, size=(rows, depth)), -128,
                    127).astype(np.int8)
        p = K.prepare_softmax(s_in, beta=beta)
        cases.append(Case(
            "softmax", f"softmax#{case} ({rows},{depth}) scale {s_in:.3g} beta {beta:.3g}",
            [rows, depth, p.input_multiplier, p.input_left_shift, p.diff_min], [x],
            [K.softmax_s8(x, p)]))
    return cases


def log_softmax_cases() -> list[Case]:
    rng = np.random.default_rng(1014)
    cases = []
    for case in range(150):
        rows, depth = int(rng.integers(1, 9)), int(rng.integers(1, 257))
        if case == 0:
            depth = 2048  # the contract's longest row
        s_in = log_scale(rng, -3, 0.3) if case % 5 == 0 else log_scale(rng, -2.5, -0.8)
        x = q8(rng, (rows, depth))
        if case % 7 == 0:
            x[:, 0] = 127  # a dominant class: the -128 cut-off
        p = K.prepare_log_softmax(s_in)
        cases.append(Case(
            "log_softmax", f"log_softmax#{case} {x.shape} scale {s_in:.3g}",
            [rows, depth, p.input_multiplier, p.input_left_shift, p.reverse_scaling_divisor,
             p.reverse_scaling_right_shift, p.diff_min], [x], [K.log_softmax_s8(x, p)]))
    return cases


def slice_cases() -> list[Case]:
    rng = np.random.default_rng(1015)
    cases = []
    for case in range(120):
        shape = [int(rng.integers(1, 9)) for _ in range(4)]
        begin = [int(rng.integers(0, d)) for d in shape]
        size = [int(rng.integers(1, d - b + 1)) for d, b in zip(shape, begin, strict=True)]
        x = q8(rng, shape)
        want = x[tuple(slice(b, b + n) for b, n in zip(begin, size, strict=True))]
        cases.append(Case("slice", f"slice#{case} {shape} from {begin} size {size}",
                          [*shape, *begin, *size], [x], [np.ascontiguousarray(want)]))
    return cases


def concat_cases() -> list[Case]:
    rng = np.random.default_rng(1016)
    cases = []
    for case in range(120):
        rank = int(rng.integers(1, 5))
        shape = [int(rng.integers(1, 7)) for _ in range(rank)]
        axis = int(rng.integers(0, rank))
        parts = []
        for _ in range(int(rng.integers(1, 5))):
            part_shape = list(shape)
            part_shape[axis] = int(rng.integers(1, 7))
            parts.append(q8(rng, part_shape))
        want = np.concatenate(parts, axis=axis)
        outer = int(np.prod(shape[:axis], dtype=np.int64))
        sizes = [int(np.prod(p.shape[axis:], dtype=np.int64)) for p in parts]
        cases.append(Case("concat", f"concat#{case} axis {axis} of {[p.shape for p in parts]}",
                          [outer, len(parts), *sizes], parts, [want]))
    return cases


def layer_norm_cases() -> list[Case]:
    rng = np.random.default_rng(1009)
    depths = (1, 2, 3, 64, 144, 176, 256, 512, 1024)
    cases = []
    for case in range(150):
        rows = int(rng.integers(1, 31))
        d = depths[case % len(depths)] if case % 2 else int(rng.integers(1, 1025))
        s_x, zp_x = log_scale(rng, -3, 0.5), zp(rng)
        spread = float(10 ** rng.uniform(-0.5, 2.2)) if case % 8 else 0.0  # 0: constant rows
        x = np.clip(np.round(zp_x + rng.uniform(-40, 40) + spread * rng.standard_normal(
            (rows, d))), -128, 127).astype(np.int8)
        gamma = None if case % 7 == 3 else \
            rng.normal(1.0, 0.6, d) * 10 ** rng.uniform(-1, 0.5)
        beta = None if case % 5 == 2 else rng.normal(0.0, 0.5, d)
        eps = (1e-5, 1e-6, 1e-12, 1e-3)[case % 4]
        if case % 25 == 6:  # eps_q near 2^50 (eps dominating): sqrt(Q) >= 2^24
            eps = float(2.0 ** 50 * s_x ** 2 / d ** 3 * rng.uniform(1, 4))
        g_max = 1.0 if gamma is None else float(np.abs(gamma).max())
        b_max = 0.0 if beta is None else float(np.abs(beta).max())
        s_y, zp_y = output_quant(rng, -3.5 * g_max - b_max, 3.5 * g_max + b_max, case)
        p = prepare_layer_norm(s_x, zp_x, s_y, zp_y, gamma, beta, eps, d)
        in_place = case % 3 == 1
        cases.append(Case(
            "layer_norm", f"layer_norm#{case} ({rows},{d}) eps {eps} spread {spread:.3g}",
            [rows, d, zp_x, p.eps_q, int(in_place)],
            [x, i32(p.multiplier), i32(p.shift), np.asarray(p.sign, dtype=np.int8),
             i32(p.bias)], [layer_norm_s8(x, p)]))
    return cases


def transpose_cases() -> list[Case]:
    rng = np.random.default_rng(1010)
    cases = []
    for case in range(200):
        rank = case % 4 + 1
        shape = [int(rng.integers(1, 31)) for _ in range(rank)]
        while int(np.prod(shape)) > 6000:
            shape[int(np.argmax(shape))] //= 2
        perm = [int(v) for v in rng.permutation(rank)]
        x = q8(rng, shape)
        cases.append(Case(
            "transpose", f"transpose#{case} {tuple(shape)} perm {perm}",
            [rank, *shape, *[0] * (4 - rank), *perm, *[0] * (4 - rank)], [x],
            [np.ascontiguousarray(np.transpose(x, perm))]))
    return cases


def split_cases() -> list[Case]:
    rng = np.random.default_rng(1011)
    cases = []
    for case in range(150):
        rows, parts = int(rng.integers(1, 31)), int(rng.integers(2, 5))
        if case % 3 == 0:  # GLU: two equal halves
            parts, half = 2, int(rng.integers(1, 151))
            sections = [half, half]
        else:
            sections = [int(v) for v in rng.integers(1, 101, size=parts)]
        x = q8(rng, (rows, sum(sections)))
        want = np.split(x, np.cumsum(sections)[:-1], axis=-1)
        cases.append(Case(
            "split", f"split#{case} ({rows},{sum(sections)}) into {sections}",
            [rows, sum(sections), parts, *sections],
            [x], [np.ascontiguousarray(w) for w in want]))
    return cases


GENERATORS: dict[str, Callable[[], list[Case]]] = {
    "fully_connected": fully_connected_cases, "conv2d": conv2d_cases,
    "depthwise_conv2d": depthwise_conv2d_cases, "batch_matmul": batch_matmul_cases,
    "add": add_cases, "mul": mul_cases, "lut": lut_cases, "softmax": softmax_cases,
    "layer_norm": layer_norm_cases, "transpose": transpose_cases, "split": split_cases,
    "add_bcast": add_bcast_cases, "mul_bcast": mul_bcast_cases,
    "log_softmax": log_softmax_cases, "slice": slice_cases, "concat": concat_cases,
}


@functools.cache
def cases_for(kernel: str) -> tuple[Case, ...]:
    return tuple(GENERATORS[kernel]())


# ---- tests: kernels ----------------------------------------------------------------------


def test_every_kernel_has_a_source_and_cases() -> None:
    assert sorted(GENERATORS) == sorted(KERNELS)
    assert sorted(p.stem for p in PORTABLE.glob("*.c")) == sorted(f"tg_{k}_s8" for k in KERNELS)


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_bit_exact(kernel: str, driver: Path) -> None:
    cases = cases_for(kernel)
    assert len(cases) >= 100
    # The cases must exercise the arithmetic, not just the clamps.
    values = np.concatenate([e.ravel() for c in cases for e in c.expected]).astype(np.int64)
    if kernel not in ("transpose", "split", "slice", "concat"):
        inside = float(np.mean((values > -128) & (values < 127)))
        assert inside > 0.5, f"{kernel}: only {inside:.0%} of outputs are unclamped"
        assert len(np.unique(values)) > 200, kernel
    run_driver(driver, cases)


def test_case_coverage() -> None:
    """The random cases reach the geometry and quantization corners they claim to."""
    conv = [c for k in ("conv2d", "depthwise_conv2d") for c in cases_for(k)]
    assert any("SAME" in c.label and c.scalars[11] > 0 for c in conv)  # top padding
    assert any("SAME" in c.label and c.scalars[12] > 0 for c in conv)  # left padding
    assert any("VALID" in c.label for c in conv)
    assert {(c.scalars[9], c.scalars[10]) for c in conv} == {(1, 1), (1, 2), (2, 1), (2, 2)}
    assert max(c.scalars[7] for c in conv) == 15 and max(c.scalars[8] for c in conv) == 15
    clamp_index = {"fully_connected": 5, "conv2d": 15, "depthwise_conv2d": 15, "add": 11,
                   "mul": 6}  # where act_min sits among the scalars (act_max follows)
    for kernel, i in clamp_index.items():
        clamps = {(c.scalars[i], c.scalars[i + 1]) for c in cases_for(kernel)}
        assert len(clamps) > 20, kernel  # fused activations give many distinct clamps
    shifts = np.concatenate([c.blobs[4] for c in cases_for("fully_connected")])
    assert shifts.min() <= -10 and shifts.max() >= 1  # multipliers over many decades
    ln = cases_for("layer_norm")
    assert max(c.scalars[1] for c in ln) == 1024 and min(c.scalars[1] for c in ln) == 1
    big_root = 0  # layer norm rows whose sqrt(Q) takes the 64-bit quotient (>= 2^24)
    for c in ln:
        rows, d, zp_x, eps_q = c.scalars[:4]
        xi = c.blobs[0].reshape(rows, d).astype(np.int64) - zp_x
        q = d * d * (xi * xi).sum(axis=1) - d * xi.sum(axis=1) ** 2
        big_root += sum(math.isqrt(int(v) + eps_q) >= 1 << 24 for v in q)
    assert big_root > 10, big_root
    bmm = cases_for("batch_matmul")
    assert {(c.scalars[4], c.scalars[5]) for c in bmm} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    for kernel, i in (("add", 10), ("mul", 5)):  # both rescale paths (tg_requant_t)
        shifts = {c.scalars[i] for c in cases_for(kernel) if c.scalars[0] >= 512}
        assert min(shifts) <= -2 < max(shifts), (kernel, sorted(shifts))
    sm = cases_for("softmax")
    assert any(np.any(e == -128) for c in sm for e in c.expected)  # diff_min cut-offs


# ---- tests: tg_math.h helpers --------------------------------------------------------------


EDGE_I32 = np.array([INT32_MIN, INT32_MIN + 1, -(1 << 30) - 1, -(1 << 30), -12345, -2, -1,
                     0, 1, 2, 7, 12345, (1 << 30), (1 << 30) + 1, INT32_MAX - 1, INT32_MAX],
                    dtype=np.int64)


def math_cases() -> list[Case]:
    rng = np.random.default_rng(1012)
    cases = []
    a, b = (v.ravel() for v in np.meshgrid(EDGE_I32, EDGE_I32))
    a = np.concatenate([a, rng.integers(INT32_MIN, INT32_MAX, 20000, endpoint=True)])
    b = np.concatenate([b, rng.integers(INT32_MIN, INT32_MAX, 20000, endpoint=True)])
    cases.append(Case("srdhm", "SaturatingRoundingDoublingHighMul", [], [i32(a), i32(b)],
                      [i32(K.saturating_rounding_doubling_high_mul(a, b))]))
    e = rng.integers(0, 32, a.size)
    e[:32] = np.arange(32)
    cases.append(Case("rounding_divide_by_pot", "RoundingDivideByPOT", [], [i32(a), i32(e)],
                      [i32(K.rounding_divide_by_pot(a, e))]))
    m = np.concatenate([[0, 1, 1 << 30, INT32_MAX], rng.integers(1 << 30, 1 << 31, a.size - 4)])
    s = rng.integers(-31, 31, a.size)
    s[:62] = np.arange(-31, 31)
    x = np.where(np.arange(a.size) % 2 == 0, a, rng.integers(-(1 << 20), 1 << 20, a.size))
    cases.append(Case("mbqm", "MultiplyByQuantizedMultiplier", [],
                      [i32(x), i32(m), i32(s)],
                      [i32(K.multiply_by_quantized_multiplier(x, m, s))]))
    # tg_requant_prepare / tg_requant_scale: the same values, both of its paths
    cases.append(Case("requant", "tg_requant_scale", [], [i32(x), i32(m), i32(s)],
                      [i32(K.multiply_by_quantized_multiplier(x, m, s))]))
    neg = np.concatenate([[0, -1, INT32_MIN, INT32_MIN + 1, -(1 << 29), -(1 << 26)],
                          -rng.integers(0, 1 << 31, 20000),
                          -rng.integers(0, 1 << 28, 20000)])
    for integer_bits in (1, 2, 4, 5, 6, 8):
        cases.append(Case("exp_on_negative_values", f"exp_on_negative_values Q{integer_bits}",
                          [integer_bits], [i32(neg)],
                          [i32(K._exp_on_negative_values(neg, integer_bits))]))
    pos = np.concatenate([[0, 1, (1 << 30), INT32_MAX - 1, INT32_MAX],
                          rng.integers(0, 1 << 31, 20000)])
    cases.append(Case("one_over_one_plus_x", "one_over_one_plus_x_for_x_in_0_1", [],
                      [i32(pos)], [i32(K._one_over_one_plus_x_for_x_in_0_1(pos))]))
    squares = [k * k for k in (1, 2, 3, 1 << 20, (1 << 24) + 1, (1 << 31) - 1, (1 << 32) - 1)]
    v = [0, 1, 2, 3, 4, (1 << 64) - 1, (1 << 63), (1 << 62)] + squares + \
        [q - 1 for q in squares] + [q + 1 for q in squares] + \
        [int(t) for t in rng.integers(0, 1 << 63, 5000, dtype=np.uint64)] + \
        [int(t) for t in rng.integers(0, 1 << 48, 5000, dtype=np.uint64)]
    cases.append(Case("isqrt", "isqrt64", [], [np.array(v, dtype=np.uint64)],
                      [np.array([math.isqrt(t) for t in v], dtype=np.uint64)]))
    return cases


def test_math_helpers_bit_exact(driver: Path) -> None:
    run_driver(driver, math_cases())


# ---- tests: firmware rules ---------------------------------------------------------------


def firmware_sources() -> list[Path]:
    return [*sorted(PORTABLE.glob("*.c")), *sorted(PORTABLE.glob("*.h")),
            FIRMWARE / "tg_math.h", FIRMWARE / "tg_kernels.h"]


def strip_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/|//[^\n]*", " ", text, flags=re.S)


@pytest.mark.parametrize("path", firmware_sources(), ids=lambda p: p.name)
def test_firmware_source_rules(path: Path) -> None:
    """No floating point, no allocation, no libc beyond memcpy/memset, C99 headers only."""
    code = strip_comments(path.read_text())
    for word in ("float", "double", "malloc", "calloc", "realloc", "free", "printf",
                 "abort", "assert"):
        assert not re.search(rf"\b{word}\b", code), f"{path.name} uses {word}"
    headers = set(re.findall(r'#include\s+[<"]([^>"]+)[>"]', code))
    assert headers <= {"stdint.h", "stddef.h", "string.h", "../tg_kernels.h",
                       "../tg_math.h", "tg_elementwise.h", "tg_dot.h", "tg_fc_dsp.h",
                       "arm_acle.h", "emmintrin.h"}, headers  # the DSP and SSE2 intrinsics
    if path.suffix == ".c":  # one kernel per file, named after it
        assert re.search(rf"^void {path.stem}\(", code, flags=re.M), path.name


@pytest.mark.parametrize("path", sorted(PORTABLE.glob("*.c")), ids=lambda p: p.name)
def test_portable_source_compiles_alone_on_host(path: Path, tmp_path: Path) -> None:
    """Each kernel compiles by itself, with no include path, under the strict flags."""
    proc = subprocess.run(["gcc", *STRICT, "-c", str(path), "-o", str(tmp_path / "k.o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


@pytest.mark.parametrize("cpu", sorted(ARM_CPUS))
def test_portable_sources_compile_for_cortex_m(cpu: str, tmp_path: Path) -> None:
    gcc, nm = shutil.which("arm-none-eabi-gcc"), shutil.which("arm-none-eabi-nm")
    assert gcc and nm, "arm-none-eabi-gcc is required (apt-get install gcc-arm-none-eabi)"
    objects = []
    for src in sorted(PORTABLE.glob("*.c")):
        obj = tmp_path / f"{src.stem}.o"
        proc = subprocess.run(
            [gcc, *STRICT, *ARM_CPUS[cpu], "-mthumb", "-mfloat-abi=hard", "-c", str(src),
             "-o", str(obj)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and proc.stderr == "", f"{src.name}: {proc.stderr}"
        objects.append(str(obj))
    proc = subprocess.run([nm, "-u", *objects], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    undefined = {line.split()[-1] for line in proc.stdout.splitlines()
                 if line.strip() and not line.endswith(":")}
    assert undefined <= ARM_ALLOWED_UNDEFINED, sorted(undefined - ARM_ALLOWED_UNDEFINED)
    defined = subprocess.run([nm, "--defined-only", "-g", *objects], capture_output=True,
                             text=True, timeout=60).stdout
    for kernel in KERNELS:
        assert re.search(rf"\bT tg_{kernel}_s8\b", defined), kernel
