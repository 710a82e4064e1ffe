"""int8 kernels bit-exact with TensorFlow Lite Micro's reference kernels, in numpy.

Every op comes in three parts, mirroring TFLM's lifecycle:

* ``<Op>Params``: a frozen dataclass holding exactly the integers TFLM's Prepare computes
  (multipliers, shifts, zero points, clamps, paddings). They become C constants later.
* ``prepare_<op>(...)``: takes float scales and integer zero points (plus shapes/options)
  and reproduces TFLM's Prepare arithmetic exactly. TFLM reads scales from the flatbuffer
  as float32, so every prepare function first rounds its scales to ``np.float32``; the
  arithmetic after that is what the ``tflite_micro`` wheel's compiled Prepare does: double
  for every multiplier (scale products included; the Aug-2026 TFLM source still had SUB,
  RSQRT and the per-tensor FULLY_CONNECTED / BATCH_MATMUL scale product in float, the
  wheel does not, and tests pin the wheel's behaviour), float32 only where the activation
  clamps are quantized.
* ``<op>_s8(...)``: TFLM's reference Eval, vectorised over numpy int64 arrays that hold
  int32 values (wrapped to 32 bits wherever the C code could wrap).

Rounding is the TFLM default build's (``TFLITE_SINGLE_ROUNDING`` undefined, which is what
the ``tflite_micro`` wheel ships): ``MultiplyByQuantizedMultiplier`` is gemmlowp's
``SaturatingRoundingDoublingHighMul`` followed by ``RoundingDivideByPOT``, i.e. two
roundings. Transcendentals (LOGISTIC, SOFTMAX, RSQRT) use gemmlowp's fixed-point
polynomials, emulated here operation by operation.

Conventions: activations are asymmetric int8 (any zero point), weights symmetric int8
(zero point 0) with per-output-channel scales, bias int32 with scale
``input_scale * weight_scale[c]``. Shifts follow TFLM: positive = left shift, so
``real ≈ multiplier · 2^(shift − 31)``. ``activation`` is one of "NONE", "RELU", "RELU6",
"RELU_N1_TO_1" (a fused clamp; RELU is not a separate kernel).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import ArrayLike, NDArray

I64 = NDArray[np.int64]
I8 = NDArray[np.int8]

INT8_MIN, INT8_MAX = -128, 127
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1

ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
PADDINGS = ("SAME", "VALID")

# LOGISTIC and SOFTMAX always produce probabilities in Q0.8 offset by -128.
PROB_SCALE = float(np.float32(1.0 / 256.0))
PROB_ZERO_POINT = -128
# LOG_SOFTMAX produces log-probabilities in [-255/16, 0]: scale 16/256, zero point 127.
LOG_PROB_SCALE = float(np.float32(16.0 / 256.0))
LOG_PROB_ZERO_POINT = 127


# ==== 32-bit integer arithmetic (TFLM common.h / gemmlowp fixedpoint.h) =================

def _i64(x: ArrayLike) -> I64:
    return np.asarray(x, dtype=np.int64)


def wrap_int32(x: ArrayLike) -> I64:
    """Reduce int64 values modulo 2^32 into int32's range (two's-complement wrap-around)."""
    v = _i64(x)
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def saturating_rounding_doubling_high_mul(a: ArrayLike, b: ArrayLike) -> I64:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values: round(a·b / 2^31), ties
    away from zero, with INT32_MIN·INT32_MIN saturating to INT32_MAX (ARM VQRDMULH)."""
    a64, b64 = _i64(a), _i64(b)
    ab = a64 * b64
    t = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(t >= 0, t >> 31, -((-t) >> 31))  # C division truncates toward zero
    return np.where((a64 == b64) & (a64 == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x: ArrayLike, exponent: ArrayLike) -> I64:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from
    zero (an arithmetic right shift with rounding). ``exponent`` in [0, 31]."""
    v, e = _i64(x), _i64(exponent)
    mask = (np.int64(1) << e) - 1
    remainder = v & mask
    threshold = (mask >> 1) + (v < 0)
    return (v >> e) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: ArrayLike, multiplier: ArrayLike,
                                     shift: ArrayLike) -> I64:
    """TFLM MultiplyByQuantizedMultiplier(int32 x, int32 multiplier, int shift), default
    (double-rounding) build: x·multiplier·2^(shift−31), rounded twice.

    Vectorised: ``multiplier`` and ``shift`` may be per-channel arrays that broadcast
    against ``x`` on its last axis. Returns int64 holding int32 values.
    """
    s = _i64(shift)
    left = np.maximum(s, 0)
    right = np.maximum(-s, 0)
    shifted = wrap_int32(wrap_int32(x) << left)  # int32 x * (1 << left_shift), in int32
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier),
                                  right)


def _round_half_away(v: float) -> int:
    """std::round on a double (ties away from zero), exactly."""
    a = abs(v)
    f = math.floor(a)
    r = f + 1 if a - f >= 0.5 else f
    return int(r) if v >= 0 else -int(r)


def _roundf(v: np.float32) -> np.float32:
    """std::round on a float (ties away from zero), staying in float32."""
    a = np.abs(np.float32(v))
    f = np.floor(a)
    r = f + np.float32(1.0) if a - f >= np.float32(0.5) else f
    return np.float32(r if v >= 0 else -r)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLM QuantizeMultiplier (default build): ``(q, shift)`` with q an int32 in
    [2^30, 2^31) (or 0) such that real ≈ q·2^(shift−31).

    Multipliers below about 2^-32 flush to (0, 0), as TFLM does.
    """
    r = float(real)
    if r == 0.0:
        return 0, 0
    if not math.isfinite(r):
        raise ValueError(f"cannot quantize a non-finite multiplier {real!r}")
    mantissa, shift = math.frexp(r)
    q = _round_half_away(mantissa * (1 << 31))
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q, shift


def _quantize_multiplier_smaller_than_one(real: float, what: str) -> tuple[int, int]:
    """TFLM QuantizeMultiplierSmallerThanOneExp; TFLM aborts outside (0, 1), we raise."""
    if not 0.0 < real < 1.0:
        raise ValueError(f"{what} multiplier {real!r} is outside (0, 1), which TFLM "
                         "rejects; the output scale is too small for these input scales")
    return quantize_multiplier(real)


def _f32(x: float, allow_zero: bool = False) -> np.float32:
    """The value TFLM sees: a scale stored in the flatbuffer as float32."""
    v = np.float32(x)
    if not (np.isfinite(v) and (v > 0 or (allow_zero and v == 0))):
        raise ValueError(f"scale {x!r} must be a positive finite float32")
    return v


def _f32_list(scales: float | Sequence[float] | ArrayLike) -> list[np.float32]:
    """Weight scales; 0 is allowed (an all-zero channel: multiplier 0, output = zero
    point)."""
    arr = np.atleast_1d(np.asarray(scales, dtype=np.float64))
    return [_f32(float(v), allow_zero=True) for v in arr]


def _check_zero_point(zp: int, what: str) -> int:
    z = int(zp)
    if not INT8_MIN <= z <= INT8_MAX:
        raise ValueError(f"{what} zero point {zp} is outside int8 range")
    return z


def activation_range(activation: str, output_scale: float,
                     output_zero_point: int) -> tuple[int, int]:
    """TFLM CalculateActivationRangeQuantized for an int8 output (float32 arithmetic)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation {activation!r} is not one of {ACTIVATIONS}")
    scale = _f32(output_scale)
    zp = int(output_zero_point)

    def quantize(f: float) -> int:
        return zp + int(_roundf(np.float32(f) / scale))

    if activation == "RELU":
        return max(INT8_MIN, quantize(0.0)), INT8_MAX
    if activation == "RELU6":
        return max(INT8_MIN, quantize(0.0)), min(INT8_MAX, quantize(6.0))
    if activation == "RELU_N1_TO_1":
        return max(INT8_MIN, quantize(-1.0)), min(INT8_MAX, quantize(1.0))
    return INT8_MIN, INT8_MAX


def _requantize(acc: ArrayLike, multiplier: ArrayLike, shift: ArrayLike, zero_point: int,
                act_min: int, act_max: int) -> I8:
    """int32 accumulator -> int8: rescale, add the output zero point, clamp."""
    out = multiply_by_quantized_multiplier(wrap_int32(acc), multiplier, shift) + zero_point
    return np.clip(out, act_min, act_max).astype(np.int8)


def _exact_matmul(a: I64, b: I64) -> I64:
    """Integer matmul through float64 BLAS. Exact: every product and partial sum is an
    integer far below 2^53 (|(q−zp)·w| ≤ 255·128, and K < 2^30 terms)."""
    return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.int64)


# ==== gemmlowp fixed-point transcendentals (FixedPoint<int32_t, IntegerBits>) ===========

def _sat_mul_pot(x: I64, exponent: int) -> I64:
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent> on int32 raw values."""
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX,
                    np.where(x < -threshold, INT32_MIN, x << exponent))


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: I64) -> I64:
    """exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor series around -1/8."""
    constant_term = 1895147668  # exp(-1/8)
    constant_1_over_3 = 715827883
    x = wrap_int32(a + (1 << 28))  # a + 1/8
    x2 = saturating_rounding_doubling_high_mul(x, x)
    x3 = saturating_rounding_doubling_high_mul(x2, x)
    x4 = saturating_rounding_doubling_high_mul(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(
        wrap_int32(saturating_rounding_doubling_high_mul(wrap_int32(x4_over_4 + x3),
                                                         constant_1_over_3) + x2), 1)
    return wrap_int32(constant_term + saturating_rounding_doubling_high_mul(
        constant_term, wrap_int32(x + poly)))


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))  # exp(-2^k) in Q0.31


def _exp_on_negative_values(a: I64, integer_bits: int) -> I64:
    """gemmlowp exp_on_negative_values: Q(integer_bits) input <= 0, Q0.31 output."""
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    a_mod_quarter_minus_quarter = wrap_int32((a & (one_quarter - 1)) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        _sat_mul_pot(a_mod_quarter_minus_quarter, integer_bits))  # Rescale<0>
    remainder = wrap_int32(a_mod_quarter_minus_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = np.int64(1) << (frac_bits + exponent)
            result = np.where((remainder & bit) != 0,
                              saturating_rounding_doubling_high_mul(result, multiplier),
                              result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _one_over_one_plus_x_for_x_in_0_1(a: I64) -> I64:
    """gemmlowp 1/(1+a) for a in [0, 1), Q0.31 in and out (Newton-Raphson, 3 steps)."""
    s = a + INT32_MAX  # RoundingHalfSum(a, One): (a + b ± 1) / 2, truncated
    half_denominator = np.where(s >= 0, (s + 1) // 2, -((1 - s) // 2))
    x = wrap_int32(1515870810 + saturating_rounding_doubling_high_mul(
        half_denominator, -1010580540))  # Q2.29: 48/17 - 32/17 · d
    for _ in range(3):
        half_denominator_times_x = saturating_rounding_doubling_high_mul(half_denominator, x)
        one_minus = wrap_int32((1 << 29) - half_denominator_times_x)
        x = wrap_int32(x + _sat_mul_pot(saturating_rounding_doubling_high_mul(x, one_minus),
                                        2))
    return _sat_mul_pot(x, 1)  # Rescale<0>(ExactMulByPot<-1>(x))


def _logistic_fixed(a: I64, integer_bits: int) -> I64:
    """gemmlowp logistic: Q(integer_bits) input, Q0.31 output."""
    positive = a > 0
    abs_input = np.where(positive, a, wrap_int32(-a))
    if_positive = _one_over_one_plus_x_for_x_in_0_1(
        _exp_on_negative_values(wrap_int32(-abs_input), integer_bits))
    if_negative = wrap_int32(INT32_MAX - if_positive)
    return np.where(a == 0, 1 << 30, np.where(positive, if_positive, if_negative))


def _count_leading_zeros32(x: I64) -> I64:
    """CLZ of non-negative int32 values (32 for 0)."""
    _, exponent = np.frexp(x.astype(np.float64))  # exact below 2^53; bit_length
    return 32 - exponent.astype(np.int64)


def _inv_sqrt_quantized_multiplier_exp(value: ArrayLike, reverse_shift: int
                                       ) -> tuple[I64, I64]:
    """TFLM GetInvSqrtQuantizedMultiplierExp, vectorised: 1/sqrt(value) as
    (multiplier, shift) for non-negative int32 values (0 and 1 give INT32_MAX, 0)."""
    v = _i64(value)
    trivial = v <= 1
    v = np.where(trivial, 2, v)
    shift = np.full(v.shape, 11, dtype=np.int64)
    while np.any(big := v >= 1 << 29):
        v = np.where(big, v // 4, v)
        shift = shift + big
    left_shift_bit_pairs = (_count_leading_zeros32(v) - 1) // 2 - 1
    shift = shift - left_shift_bit_pairs
    v = v << (2 * left_shift_bit_pairs)
    mul = saturating_rounding_doubling_high_mul
    fixed_input = v >> 1  # Q3.28
    half_input = rounding_divide_by_pot(fixed_input, 1)
    half_three = (1 << 28) + (1 << 27)  # 1.5 in Q3.28
    x = np.full(v.shape, 1 << 28, dtype=np.int64)  # 1.0
    for _ in range(5):  # Newton-Raphson
        x3 = _sat_mul_pot(mul(mul(x, x), x), 6)  # Rescale<3> from Q9
        x = _sat_mul_pot(wrap_int32(mul(half_three, x) - mul(half_input, x3)), 3)
    inv = mul(x, 1518500250)  # · sqrt(2)/2
    negative = shift < 0
    inv = np.where(negative, wrap_int32(inv << np.maximum(-shift, 0)), inv)
    shift = np.where(negative, 0, shift)
    return (np.where(trivial, INT32_MAX, inv),
            np.where(trivial, 0, shift * reverse_shift))


# ==== FULLY_CONNECTED ==================================================================

@dataclass(frozen=True)
class FullyConnectedParams:
    """TFLM OpDataFullyConnected for int8. ``output_multiplier``/``output_shift`` have one
    entry per output channel when the weights are per-channel, else a single entry."""

    input_zero_point: int
    output_zero_point: int
    output_multiplier: tuple[int, ...]
    output_shift: tuple[int, ...]
    act_min: int
    act_max: int
    per_channel: bool


def prepare_fully_connected(input_scale: float, input_zero_point: int,
                            weight_scales: float | Sequence[float], output_scale: float,
                            output_zero_point: int, activation: str = "NONE"
                            ) -> FullyConnectedParams:
    """TFLM CalculateOpDataFullyConnected: double(s_in)·double(s_w[c])/double(s_out).

    More than one weight scale selects TFLM's per-channel kernel; a single scale (also a
    one-element list) the per-tensor one, with a single multiplier.
    """
    s_in, s_out = _f32(input_scale), _f32(output_scale)
    s_w = _f32_list(weight_scales)
    zp_in = _check_zero_point(input_zero_point, "input")
    zp_out = _check_zero_point(output_zero_point, "output")
    pairs = [quantize_multiplier(float(s_in) * float(w) / float(s_out)) for w in s_w]
    act_min, act_max = activation_range(activation, s_out, zp_out)
    return FullyConnectedParams(zp_in, zp_out, tuple(p[0] for p in pairs),
                                tuple(p[1] for p in pairs), act_min, act_max, len(s_w) > 1)


def fully_connected_s8(x: ArrayLike, weights: ArrayLike, bias: ArrayLike | None,
                       params: FullyConnectedParams) -> I8:
    """TFLM reference_integer_ops::FullyConnected[PerChannel].

    x: (..., in) int8; weights: (out, in) int8, zero point 0; bias: (out,) int32 or None.
    Returns (..., out) int8.
    """
    xa, w = _i64(x), _i64(weights)
    if w.ndim != 2 or xa.shape[-1] != w.shape[1]:
        raise ValueError(f"fully_connected: input {xa.shape} and weights {w.shape} do not "
                         "match (weights must be (out, in))")
    if params.per_channel and len(params.output_multiplier) != w.shape[0]:
        raise ValueError(f"fully_connected: {len(params.output_multiplier)} channel "
                         f"multipliers for {w.shape[0]} output channels")
    acc = _exact_matmul(xa - params.input_zero_point, w.T)  # (..., out)
    if bias is not None:
        acc = acc + _i64(bias)
    return _requantize(acc, np.array(params.output_multiplier),
                       np.array(params.output_shift), params.output_zero_point,
                       params.act_min, params.act_max)


# ==== CONV_2D and DEPTHWISE_CONV_2D (NHWC) =============================================

def _out_size_and_padding(padding: str, in_size: int, filter_size: int, stride: int,
                          dilation: int) -> tuple[int, int]:
    """TFLM ComputeOutSize and ComputePaddingWithOffset: (output size, leading pad)."""
    if padding not in PADDINGS:
        raise ValueError(f"padding {padding!r} is not one of {PADDINGS}")
    if stride <= 0 or dilation <= 0 or filter_size <= 0:
        raise ValueError("stride, dilation and filter size must be positive")
    effective = (filter_size - 1) * dilation + 1
    if padding == "SAME":
        out = (in_size + stride - 1) // stride
    else:
        out = (in_size + stride - effective) // stride
    if out <= 0:
        raise ValueError(f"a {filter_size}-tap filter (dilation {dilation}) does not fit "
                         f"an input of size {in_size} with VALID padding")
    total = max((out - 1) * stride + effective - in_size, 0)
    return out, total // 2


@dataclass(frozen=True)
class Conv2DParams:
    """TFLM OpDataConv for int8 CONV_2D (always per-channel: one multiplier per output
    channel, a per-tensor weight scale is broadcast) plus the geometry Prepare derives."""

    input_zero_point: int
    output_zero_point: int
    output_multiplier: tuple[int, ...]
    output_shift: tuple[int, ...]
    act_min: int
    act_max: int
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    pad_h: int
    pad_w: int
    output_shape: tuple[int, int, int, int]  # (N, out_h, out_w, out_c)


@dataclass(frozen=True)
class DepthwiseConv2DParams:
    """TFLM OpDataConv for int8 DEPTHWISE_CONV_2D, plus its geometry."""

    input_zero_point: int
    output_zero_point: int
    output_multiplier: tuple[int, ...]
    output_shift: tuple[int, ...]
    act_min: int
    act_max: int
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    pad_h: int
    pad_w: int
    depth_multiplier: int
    output_shape: tuple[int, int, int, int]


def _per_channel_multipliers(input_scale: float, weight_scales: float | Sequence[float],
                             output_scale: float, channels: int
                             ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """TFLM PopulateConvolutionQuantizationParams: double(s_in)·double(s_w)/double(s_out)
    per channel, broadcasting a single weight scale."""
    s_in, s_out = _f32(input_scale), _f32(output_scale)
    s_w = _f32_list(weight_scales)
    if len(s_w) == 1:
        s_w = s_w * channels
    if len(s_w) != channels:
        raise ValueError(f"{len(s_w)} weight scales for {channels} output channels")
    pairs = [quantize_multiplier(float(s_in) * float(w) / float(s_out)) for w in s_w]
    return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


def prepare_conv2d(input_scale: float, input_zero_point: int,
                   weight_scales: float | Sequence[float], output_scale: float,
                   output_zero_point: int, *, input_shape: Sequence[int],
                   filter_shape: Sequence[int], stride_h: int = 1, stride_w: int = 1,
                   padding: str = "VALID", dilation_h: int = 1, dilation_w: int = 1,
                   activation: str = "NONE") -> Conv2DParams:
    """TFLM ConvPrepare for int8. input_shape (N, H, W, C), filter_shape (O, KH, KW, C)."""
    n, h, w, c = (int(d) for d in input_shape)
    o, kh, kw, ci = (int(d) for d in filter_shape)
    if ci != c:
        raise ValueError(f"conv2d: filter expects {ci} input channels, input has {c} "
                         "(grouped convolution is not supported)")
    out_h, pad_h = _out_size_and_padding(padding, h, kh, stride_h, dilation_h)
    out_w, pad_w = _out_size_and_padding(padding, w, kw, stride_w, dilation_w)
    mult, shift = _per_channel_multipliers(input_scale, weight_scales, output_scale, o)
    zp_out = _check_zero_point(output_zero_point, "output")
    act_min, act_max = activation_range(activation, output_scale, zp_out)
    return Conv2DParams(_check_zero_point(input_zero_point, "input"), zp_out, mult, shift,
                        act_min, act_max, int(stride_h), int(stride_w), int(dilation_h),
                        int(dilation_w), pad_h, pad_w, (n, out_h, out_w, o))


def prepare_depthwise_conv2d(input_scale: float, input_zero_point: int,
                             weight_scales: float | Sequence[float], output_scale: float,
                             output_zero_point: int, *, input_shape: Sequence[int],
                             filter_shape: Sequence[int], stride_h: int = 1,
                             stride_w: int = 1, padding: str = "VALID",
                             dilation_h: int = 1, dilation_w: int = 1,
                             depth_multiplier: int = 1, activation: str = "NONE"
                             ) -> DepthwiseConv2DParams:
    """TFLM DepthwiseConvPrepare for int8. input_shape (N, H, W, C), filter_shape
    (1, KH, KW, C·depth_multiplier); output channel c·M + m reads input channel c."""
    n, h, w, c = (int(d) for d in input_shape)
    one, kh, kw, oc = (int(d) for d in filter_shape)
    if one != 1 or oc != c * depth_multiplier:
        raise ValueError(f"depthwise_conv2d: filter {tuple(filter_shape)} does not match "
                         f"{c} input channels with depth multiplier {depth_multiplier}")
    out_h, pad_h = _out_size_and_padding(padding, h, kh, stride_h, dilation_h)
    out_w, pad_w = _out_size_and_padding(padding, w, kw, stride_w, dilation_w)
    mult, shift = _per_channel_multipliers(input_scale, weight_scales, output_scale, oc)
    zp_out = _check_zero_point(output_zero_point, "output")
    act_min, act_max = activation_range(activation, output_scale, zp_out)
    return DepthwiseConv2DParams(_check_zero_point(input_zero_point, "input"), zp_out, mult,
                                 shift, act_min, act_max, int(stride_h), int(stride_w),
                                 int(dilation_h), int(dilation_w), pad_h, pad_w,
                                 int(depth_multiplier), (n, out_h, out_w, oc))


def _padded_taps(x: I64, zero_point: int, params: Conv2DParams | DepthwiseConv2DParams,
                 kh: int, kw: int) -> list[tuple[int, int, I64]]:
    """For every filter tap (ky, kx): the (N, out_h, out_w, C) input slice it multiplies,
    with x − zero_point and zeros outside the image (TFLM skips those points)."""
    _, out_h, out_w, _ = params.output_shape
    n, h, w, c = x.shape
    need_h = (out_h - 1) * params.stride_h + (kh - 1) * params.dilation_h + 1
    need_w = (out_w - 1) * params.stride_w + (kw - 1) * params.dilation_w + 1
    xp = np.zeros((n, max(need_h, params.pad_h + h), max(need_w, params.pad_w + w), c),
                  dtype=np.int64)
    xp[:, params.pad_h:params.pad_h + h, params.pad_w:params.pad_w + w, :] = x - zero_point
    taps = []
    for ky in range(kh):
        y0 = ky * params.dilation_h
        for kx in range(kw):
            x0 = kx * params.dilation_w
            taps.append((ky, kx, xp[:, y0:y0 + (out_h - 1) * params.stride_h + 1:
                                    params.stride_h,
                                    x0:x0 + (out_w - 1) * params.stride_w + 1:
                                    params.stride_w, :]))
    return taps


def conv2d_s8(x: ArrayLike, weights: ArrayLike, bias: ArrayLike | None,
              params: Conv2DParams) -> I8:
    """TFLM reference_integer_ops::ConvPerChannel. x (N, H, W, C) int8, weights
    (O, KH, KW, C) int8, bias (O,) int32 or None. Returns (N, out_h, out_w, O) int8."""
    xa, w = _i64(x), _i64(weights)
    n, out_h, out_w, o = params.output_shape
    if xa.ndim != 4 or w.ndim != 4 or xa.shape[0] != n or w.shape[0] != o \
            or w.shape[3] != xa.shape[3]:
        raise ValueError(f"conv2d: input {xa.shape} / weights {w.shape} do not match the "
                         f"prepared output {params.output_shape}")
    acc = np.zeros((n, out_h, out_w, o), dtype=np.int64)
    for ky, kx, window in _padded_taps(xa, params.input_zero_point, params, w.shape[1],
                                       w.shape[2]):
        acc += _exact_matmul(window, w[:, ky, kx, :].T)
    if bias is not None:
        acc = acc + _i64(bias)
    return _requantize(acc, np.array(params.output_multiplier), np.array(params.output_shift),
                       params.output_zero_point, params.act_min, params.act_max)


def depthwise_conv2d_s8(x: ArrayLike, weights: ArrayLike, bias: ArrayLike | None,
                        params: DepthwiseConv2DParams) -> I8:
    """TFLM reference_integer_ops::DepthwiseConvPerChannel. x (N, H, W, C) int8, weights
    (1, KH, KW, C·M) int8, bias (C·M,) int32 or None. Returns (N, out_h, out_w, C·M)."""
    xa, w = _i64(x), _i64(weights)
    n, out_h, out_w, oc = params.output_shape
    if xa.ndim != 4 or w.shape != (1, w.shape[1], w.shape[2], oc) or xa.shape[0] != n \
            or xa.shape[3] * params.depth_multiplier != oc:
        raise ValueError(f"depthwise_conv2d: input {xa.shape} / weights {w.shape} do not "
                         f"match the prepared output {params.output_shape}")
    acc = np.zeros((n, out_h, out_w, oc), dtype=np.int64)
    for ky, kx, window in _padded_taps(xa, params.input_zero_point, params, w.shape[1],
                                       w.shape[2]):
        acc += np.repeat(window, params.depth_multiplier, axis=-1) * w[0, ky, kx, :]
    if bias is not None:
        acc = acc + _i64(bias)
    return _requantize(acc, np.array(params.output_multiplier), np.array(params.output_shift),
                       params.output_zero_point, params.act_min, params.act_max)


# ==== BATCH_MATMUL =====================================================================

@dataclass(frozen=True)
class BatchMatMulParams:
    """TFLM OpDataBatchMatmul quantization for int8 (no fused activation), plus the
    adj_x / adj_y options the kernel needs."""

    lhs_zero_point: int
    rhs_zero_point: int
    output_zero_point: int
    output_multiplier: int
    output_shift: int
    adj_x: bool
    adj_y: bool


def prepare_batch_matmul(lhs_scale: float, lhs_zero_point: int, rhs_scale: float,
                         rhs_zero_point: int, output_scale: float, output_zero_point: int,
                         *, adj_x: bool = False, adj_y: bool = False) -> BatchMatMulParams:
    """TFLM BatchMatMulPrepare: GetQuantizedConvolutionMultipler, i.e.
    double(s_lhs)·double(s_rhs)/double(s_out).

    Memory note for the planner: TFLM keeps a persistent transposed copy of the rhs when
    adj_y is False, and of the lhs when adj_x is True (Q·Kᵀ is cheapest as adj_y=True).
    """
    mult, shift = quantize_multiplier(float(_f32(lhs_scale)) * float(_f32(rhs_scale))
                                      / float(_f32(output_scale)))
    return BatchMatMulParams(_check_zero_point(lhs_zero_point, "lhs"),
                             _check_zero_point(rhs_zero_point, "rhs"),
                             _check_zero_point(output_zero_point, "output"), mult, shift,
                             bool(adj_x), bool(adj_y))


def batch_matmul_s8(lhs: ArrayLike, rhs: ArrayLike, params: BatchMatMulParams) -> I8:
    """TFLM BATCH_MATMUL int8: lhs (..., M, K) [or (..., K, M) with adj_x] times rhs
    (..., K, N) [or (..., N, K) with adj_y]; ranks 2..5, batch dims broadcast where one
    side is 1. Returns (..., M, N) int8 of rank max(rank(lhs), rank(rhs))."""
    a, b = _i64(lhs), _i64(rhs)
    if not (2 <= a.ndim <= 5 and 2 <= b.ndim <= 5):
        raise ValueError(f"batch_matmul: ranks must be 2..5, got {a.ndim} and {b.ndim}")
    a = a - params.lhs_zero_point
    b = b - params.rhs_zero_point
    if params.adj_x:
        a = np.swapaxes(a, -1, -2)
    if params.adj_y:
        b = np.swapaxes(b, -1, -2)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"batch_matmul: inner dimensions differ ({a.shape} @ {b.shape})")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"batch_matmul: batch dimensions of {a.shape} and {b.shape} do "
                         "not broadcast") from None
    acc = _exact_matmul(a, b)
    return _requantize(acc, params.output_multiplier, params.output_shift,
                       params.output_zero_point, INT8_MIN, INT8_MAX)


# ==== ADD, SUB, MUL, SQUARED_DIFFERENCE (broadcasting binary ops) ======================

@dataclass(frozen=True)
class AddParams:
    """TFLM OpDataAdd for int8: both inputs are rescaled to a common scale with 20 bits of
    headroom (left_shift), summed, then rescaled to the output."""

    input1_zero_point: int
    input2_zero_point: int
    output_zero_point: int
    left_shift: int
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_multiplier: int
    output_shift: int
    act_min: int
    act_max: int


@dataclass(frozen=True)
class SubParams(AddParams):
    """TFLM OpDataSub for int8: the same integers as ADD (computes input1 − input2)."""


def prepare_add(input1_scale: float, input1_zero_point: int, input2_scale: float,
                input2_zero_point: int, output_scale: float, output_zero_point: int,
                activation: str = "NONE") -> AddParams:
    """TFLM CalculateOpDataAdd (double arithmetic)."""
    s1, s2, so = _f32(input1_scale), _f32(input2_scale), _f32(output_scale)
    left_shift = 20
    twice_max = 2.0 * float(max(s1, s2))
    m1 = _quantize_multiplier_smaller_than_one(float(s1) / twice_max, "ADD input1")
    m2 = _quantize_multiplier_smaller_than_one(float(s2) / twice_max, "ADD input2")
    mo = _quantize_multiplier_smaller_than_one(twice_max / ((1 << left_shift) * float(so)),
                                               "ADD output")
    zp_out = _check_zero_point(output_zero_point, "output")
    act_min, act_max = activation_range(activation, so, zp_out)
    return AddParams(_check_zero_point(input1_zero_point, "input1"),
                     _check_zero_point(input2_zero_point, "input2"), zp_out, left_shift,
                     *m1, *m2, *mo, act_min, act_max)


def prepare_sub(input1_scale: float, input1_zero_point: int, input2_scale: float,
                input2_zero_point: int, output_scale: float, output_zero_point: int,
                activation: str = "NONE") -> SubParams:
    """TFLM CalculateOpDataSub: the same double arithmetic as ADD in the wheel."""
    p = prepare_add(input1_scale, input1_zero_point, input2_scale, input2_zero_point,
                    output_scale, output_zero_point, activation)
    return SubParams(**{f.name: getattr(p, f.name) for f in fields(AddParams)})


def _broadcast_pair(a: ArrayLike, b: ArrayLike, op: str) -> tuple[I64, I64]:
    x, y = _i64(a), _i64(b)
    try:
        shape = np.broadcast_shapes(x.shape, y.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {x.shape} and {y.shape} do not broadcast") from None
    if len(shape) > 6:
        raise ValueError(f"{op}: TFLM broadcasts at most 6 dimensions, got {len(shape)}")
    return x, y


def _rescaled_inputs(a: ArrayLike, b: ArrayLike, p: AddParams, op: str
                     ) -> tuple[I64, I64]:
    x, y = _broadcast_pair(a, b, op)
    x = (x - p.input1_zero_point) << p.left_shift
    y = (y - p.input2_zero_point) << p.left_shift
    return (multiply_by_quantized_multiplier(x, p.input1_multiplier, p.input1_shift),
            multiply_by_quantized_multiplier(y, p.input2_multiplier, p.input2_shift))


def add_s8(a: ArrayLike, b: ArrayLike, params: AddParams) -> I8:
    """TFLM reference_integer_ops::Add / BroadcastAdd6DSlow (numpy broadcasting)."""
    x, y = _rescaled_inputs(a, b, params, "add")
    return _requantize(x + y, params.output_multiplier, params.output_shift,
                       params.output_zero_point, params.act_min, params.act_max)


def sub_s8(a: ArrayLike, b: ArrayLike, params: SubParams) -> I8:
    """TFLM reference_ops::Sub / BroadcastQuantSubSlow for int8: a − b."""
    x, y = _rescaled_inputs(a, b, params, "sub")
    return _requantize(x - y, params.output_multiplier, params.output_shift,
                       params.output_zero_point, params.act_min, params.act_max)


@dataclass(frozen=True)
class MulParams:
    """TFLM OpDataMul for int8."""

    input1_zero_point: int
    input2_zero_point: int
    output_zero_point: int
    output_multiplier: int
    output_shift: int
    act_min: int
    act_max: int


def prepare_mul(input1_scale: float, input1_zero_point: int, input2_scale: float,
                input2_zero_point: int, output_scale: float, output_zero_point: int,
                activation: str = "NONE") -> MulParams:
    """TFLM CalculateOpDataMul: double(s1)·double(s2)/double(s_out)."""
    s1, s2, so = _f32(input1_scale), _f32(input2_scale), _f32(output_scale)
    mult, shift = quantize_multiplier(float(s1) * float(s2) / float(so))
    zp_out = _check_zero_point(output_zero_point, "output")
    act_min, act_max = activation_range(activation, so, zp_out)
    return MulParams(_check_zero_point(input1_zero_point, "input1"),
                     _check_zero_point(input2_zero_point, "input2"), zp_out, mult, shift,
                     act_min, act_max)


def mul_s8(a: ArrayLike, b: ArrayLike, params: MulParams) -> I8:
    """TFLM reference_integer_ops::Mul / BroadcastMul6DSlow (numpy broadcasting)."""
    x, y = _broadcast_pair(a, b, "mul")
    prod = (x - params.input1_zero_point) * (y - params.input2_zero_point)
    return _requantize(prod, params.output_multiplier, params.output_shift,
                       params.output_zero_point, params.act_min, params.act_max)


@dataclass(frozen=True)
class SquaredDifferenceParams:
    """TFLM squared_difference OpData (ArithmeticParams) for int8; no fused activation."""

    input1_zero_point: int
    input2_zero_point: int
    output_zero_point: int
    left_shift: int
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_multiplier: int
    output_shift: int


def prepare_squared_difference(input1_scale: float, input1_zero_point: int,
                               input2_scale: float, input2_zero_point: int,
                               output_scale: float, output_zero_point: int
                               ) -> SquaredDifferenceParams:
    """TFLM SquaredDifferencePrepare (int8: left_shift 7, inputs rescaled like ADD, the
    squared difference rescaled by twice_max² / (2^14 · s_out))."""
    s1, s2, so = _f32(input1_scale), _f32(input2_scale), _f32(output_scale)
    left_shift = 7
    twice_max = 2.0 * float(max(s1, s2))
    m1 = _quantize_multiplier_smaller_than_one(float(s1) / twice_max,
                                               "SQUARED_DIFFERENCE input1")
    m2 = _quantize_multiplier_smaller_than_one(float(s2) / twice_max,
                                               "SQUARED_DIFFERENCE input2")
    mo = quantize_multiplier(twice_max * twice_max / ((1 << (2 * left_shift)) * float(so)))
    return SquaredDifferenceParams(_check_zero_point(input1_zero_point, "input1"),
                                   _check_zero_point(input2_zero_point, "input2"),
                                   _check_zero_point(output_zero_point, "output"),
                                   left_shift, *m1, *m2, *mo)


def squared_difference_s8(a: ArrayLike, b: ArrayLike,
                          params: SquaredDifferenceParams) -> I8:
    """TFLM SQUARED_DIFFERENCE int8: (a − b)² (numpy broadcasting)."""
    x, y = _broadcast_pair(a, b, "squared_difference")
    x = multiply_by_quantized_multiplier((x - params.input1_zero_point) << params.left_shift,
                                         params.input1_multiplier, params.input1_shift)
    y = multiply_by_quantized_multiplier((y - params.input2_zero_point) << params.left_shift,
                                         params.input2_multiplier, params.input2_shift)
    diff = x - y
    return _requantize(wrap_int32(diff * diff), params.output_multiplier,
                       params.output_shift, params.output_zero_point, INT8_MIN, INT8_MAX)


# ==== LOGISTIC, SOFTMAX, RSQRT (fixed-point transcendentals) ============================

def _check_probability_output(op: str, output_scale: float, output_zero_point: int) -> None:
    if int(output_zero_point) != PROB_ZERO_POINT or np.float32(output_scale) != PROB_SCALE:
        raise ValueError(f"{op} int8 output must have scale 1/256 and zero point -128, "
                         f"got {output_scale!r} and {output_zero_point}")


@dataclass(frozen=True)
class LogisticParams:
    """TFLM OpDataLogistic for int8. The output is always scale 1/256, zero point -128."""

    input_zero_point: int
    input_multiplier: int
    input_left_shift: int
    input_range_radius: int


def prepare_logistic(input_scale: float, input_zero_point: int,
                     output_scale: float = PROB_SCALE,
                     output_zero_point: int = PROB_ZERO_POINT) -> LogisticParams:
    """TFLM CalculateArithmeticOpDataLogistic for int8: the input is rescaled to Q4.27.

    TFLM only checks the output zero point (-128) and silently assumes scale 1/256; we
    require both, since any other scale would make the result mean something else.
    """
    _check_probability_output("LOGISTIC", output_scale, output_zero_point)
    real = float(_f32(input_scale)) * float(1 << 27)  # input_integer_bits = 4
    mantissa, left_shift = math.frexp(real)
    multiplier = _round_half_away(mantissa * (1 << 31))
    if left_shift < 0 or multiplier > INT32_MAX:
        raise ValueError(f"LOGISTIC input scale {input_scale!r} is too small")
    radius = math.floor(15.0 * (1 << 27) / (1 << left_shift))  # CalculateInputRadius(4, ..)
    return LogisticParams(_check_zero_point(input_zero_point, "input"), multiplier,
                          left_shift, radius)


def logistic_s8(x: ArrayLike, params: LogisticParams) -> I8:
    """TFLM reference_integer_ops::Logistic (int8 in, Q0.8 − 128 out)."""
    values = np.arange(INT8_MIN, INT8_MAX + 1, dtype=np.int64) - params.input_zero_point
    q4 = multiply_by_quantized_multiplier(values, params.input_multiplier,
                                          params.input_left_shift)
    out = rounding_divide_by_pot(_logistic_fixed(q4, 4), 31 - 8) + PROB_ZERO_POINT
    out = np.clip(out, INT8_MIN, INT8_MAX)
    out = np.where(values <= -params.input_range_radius, INT8_MIN,
                   np.where(values >= params.input_range_radius, INT8_MAX, out))
    table = out.astype(np.int8)
    return table[_i64(x) - INT8_MIN]


@dataclass(frozen=True)
class SoftmaxParams:
    """TFLM SoftmaxParams for int8 in / int8 out (scale 1/256, zero point -128)."""

    input_multiplier: int
    input_left_shift: int
    diff_min: int


def prepare_softmax(input_scale: float, output_scale: float = PROB_SCALE,
                    output_zero_point: int = PROB_ZERO_POINT, *, beta: float = 1.0
                    ) -> SoftmaxParams:
    """TFLM CalculateSoftmaxParams for int8 (PreprocessSoftmaxScaling with 5 integer bits).
    The input zero point cancels out (softmax sees only differences to the row max)."""
    _check_probability_output("SOFTMAX", output_scale, output_zero_point)
    beta32 = np.float32(beta)
    real = min(float(beta32) * float(_f32(input_scale)) * float(1 << 26),
               float((1 << 31) - 1))
    if not real > 1.0:
        raise ValueError(f"SOFTMAX input scale·beta {float(input_scale) * beta!r} is too "
                         "small (TFLM needs input_scale·beta·2^26 > 1)")
    mult, left_shift = quantize_multiplier(real)
    radius = math.floor(31.0 * (1 << 26) / (1 << left_shift))  # CalculateInputRadius(5, ..)
    return SoftmaxParams(mult, left_shift, -radius)


def softmax_s8(x: ArrayLike, params: SoftmaxParams) -> I8:
    """TFLM reference_ops::Softmax for int8 over the last axis."""
    xa = _i64(x)
    diff = xa - xa.max(axis=-1, keepdims=True)
    valid = diff >= params.diff_min
    rescaled = saturating_rounding_doubling_high_mul(
        wrap_int32(diff << params.input_left_shift), params.input_multiplier)
    exp = np.where(valid, _exp_on_negative_values(rescaled, 5), 0)  # Q0.31
    accumulation_integer_bits = 12  # Rescale<12>: Q0.31 -> Q12.19
    sum_of_exps = wrap_int32(rounding_divide_by_pot(exp, accumulation_integer_bits)
                             .sum(axis=-1, keepdims=True))
    headroom_plus_one = _count_leading_zeros32(sum_of_exps)
    num_bits_over_unit = accumulation_integer_bits - headroom_plus_one
    shifted_sum_minus_one = wrap_int32((sum_of_exps << headroom_plus_one) - (1 << 31))
    shifted_scale = _one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one)
    exponent = num_bits_over_unit + 31 - 8
    if np.any(exponent > 31):
        raise ValueError("softmax: a row is too long for TFLM's int8 softmax (its "
                         "exponent check would abort)")
    out = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted_scale, exp),
                                 exponent) + PROB_ZERO_POINT
    out = np.where(valid, np.clip(out, INT8_MIN, INT8_MAX), INT8_MIN)
    return out.astype(np.int8)


# ==== LOG_SOFTMAX ======================================================================

@dataclass(frozen=True)
class LogSoftmaxParams:
    """TFLM LogSoftmaxOpData for int8 in / int8 out (scale 16/256, zero point 127)."""

    input_multiplier: int
    input_left_shift: int
    reverse_scaling_divisor: int
    reverse_scaling_right_shift: int  # >= 0, as TFLM stores it
    diff_min: int


def prepare_log_softmax(input_scale: float, output_scale: float = LOG_PROB_SCALE,
                        output_zero_point: int = LOG_PROB_ZERO_POINT) -> LogSoftmaxParams:
    """TFLM LogSoftmaxPrepare for int8: PreprocessLogSoftmaxScalingExp with beta 1 and 5
    integer bits, and CalculateInputRadius."""
    if float(np.float32(output_scale)) != LOG_PROB_SCALE or \
            output_zero_point != LOG_PROB_ZERO_POINT:
        raise ValueError("LOG_SOFTMAX int8 output must have scale 16/256 and zero point 127 "
                         f"(got {output_scale!r}, {output_zero_point})")
    real = min(float(_f32(input_scale)) * float(1 << 26), float((1 << 31) - 1))
    if not real > 1.0:
        raise ValueError(f"LOG_SOFTMAX input scale {float(input_scale)!r} is too small "
                         "(TFLM needs input_scale·2^26 > 1)")
    mult, left_shift = quantize_multiplier(real)
    divisor, reverse_shift = quantize_multiplier(float(1 << (31 - left_shift)) / float(mult))
    if reverse_shift > 0:
        raise ValueError("LOG_SOFTMAX reverse scaling divisor is not below one")
    radius = math.floor(31.0 * (1 << 26) / (1 << left_shift))  # CalculateInputRadius(5, ..)
    return LogSoftmaxParams(mult, left_shift, divisor, -reverse_shift, -radius)


def _sat_mul_pot_param(x: I64, exponent: I64) -> I64:
    """TFLM SaturatingRoundingMultiplyByPOTParam for exponents >= 0 (per element)."""
    e = _i64(exponent)
    threshold = (np.int64(1) << (31 - e)) - 1
    shifted = np.where(x > threshold, INT32_MAX,
                       np.where(x < -threshold, INT32_MIN, wrap_int32(x << e)))
    return np.where(e == 0, x, shifted)


def _sat_add(a: I64, b: I64) -> I64:
    return np.clip(a + b, INT32_MIN, INT32_MAX)


def _log_x_for_x_ge_1(x: I64, input_bits: int, output_bits: int) -> I64:
    """TFLM log_x_for_x_greater_than_or_equal_to_1_impl<output_bits, input_bits> on raw
    int32 values: Q(input_bits) in, Q(output_bits) out."""
    mul = saturating_rounding_doubling_high_mul
    accum_bits = output_bits + 1
    log_2, sqrt_sqrt_half, sqrt_half = 1488522236, 1805811301, 1518500250
    alpha_n, alpha_d, alpha_i, alpha_f = 117049297, 127690142, 1057819769, 638450708
    shifted_quarter = rounding_divide_by_pot(np.int64(536870912), accum_bits)  # Rescale
    z_a = x
    z_a_headroom_plus_1 = _count_leading_zeros32(z_a)
    r_a_tmp = _sat_mul_pot_param(z_a, z_a_headroom_plus_1 - 1)
    r_a_raw = _sat_mul_pot_param(mul(r_a_tmp, sqrt_half), np.int64(1))
    z_a_pow_2_adj = _sat_add(_sat_mul_pot_param(
        _i64(input_bits - z_a_headroom_plus_1), np.int64(31 - accum_bits)), shifted_quarter)
    z_b = mul(z_a, sqrt_half)
    z_b_headroom = _count_leading_zeros32(z_b) - 1
    r_b_raw = _sat_mul_pot_param(z_a, z_b_headroom)
    z_b_pow_2_adj = np.clip(_sat_mul_pot_param(_i64(input_bits - z_b_headroom),
                                               np.int64(31 - accum_bits)) - shifted_quarter,
                            INT32_MIN, INT32_MAX)
    r = np.minimum(r_a_raw, r_b_raw)
    z_pow_2_adj = np.maximum(z_a_pow_2_adj, z_b_pow_2_adj)
    s = r + sqrt_sqrt_half  # RoundingHalfSum
    p = np.where(s >= 0, (s + 1) // 2, -((1 - s) // 2))
    q = wrap_int32(r - sqrt_sqrt_half)
    q = wrap_int32(q + q)
    common_sq = mul(q, q)
    num = wrap_int32(mul(q, r) + mul(mul(q, common_sq), alpha_n))
    denom_minus_one_0 = wrap_int32(
        mul(p, wrap_int32(wrap_int32(alpha_i + q) + mul(alpha_d, common_sq)))
        + mul(alpha_f, q))
    recip_denom = _one_over_one_plus_x_for_x_in_0_1(denom_minus_one_0)
    num_scaled = rounding_divide_by_pot(num, accum_bits)  # Rescale<accum>(Q0 num)
    total = wrap_int32(mul(z_pow_2_adj, log_2) + mul(num_scaled, recip_denom))
    return _sat_mul_pot(total, accum_bits - output_bits)  # Rescale<output_bits>


def log_softmax_s8(x: ArrayLike, params: LogSoftmaxParams) -> I8:
    """TFLM reference_ops::LogSoftmaxQuantized for int8 over the last axis."""
    xa = _i64(x)
    diff = xa - xa.max(axis=-1, keepdims=True)
    in_q5 = multiply_by_quantized_multiplier(diff, params.input_multiplier,
                                             params.input_left_shift)
    exp = np.where(diff >= params.diff_min, _exp_on_negative_values(in_q5, 5), 0)
    sum_q12 = wrap_int32(rounding_divide_by_pot(exp, 12).sum(axis=-1, keepdims=True))
    log_sum_q5 = _log_x_for_x_ge_1(sum_q12, 12, 5)
    adjusted_diff_min = np.maximum(
        params.diff_min - 1,
        multiply_by_quantized_multiplier(wrap_int32(log_sum_q5 + INT32_MIN),
                                         params.reverse_scaling_divisor,
                                         -params.reverse_scaling_right_shift))
    out = rounding_divide_by_pot(wrap_int32(in_q5 - log_sum_q5), 31 - 5 - 4) + INT8_MAX
    out = np.where(diff > adjusted_diff_min, np.clip(out, INT8_MIN, INT8_MAX), INT8_MIN)
    return out.astype(np.int8)


@dataclass(frozen=True)
class RsqrtParams:
    """TFLM OpDataAbsRsqrt for int8 RSQRT."""

    input_zero_point: int
    output_zero_point: int
    multiplier: int
    shift: int


def prepare_rsqrt(input_scale: float, input_zero_point: int, output_scale: float,
                  output_zero_point: int) -> RsqrtParams:
    """TFLM SetRsqrtOutputMultiplier: 1 / (sqrt(double(s_in)) · double(s_out))."""
    s_in, s_out = _f32(input_scale), _f32(output_scale)
    mult, shift = quantize_multiplier(1.0 / (math.sqrt(float(s_in)) * float(s_out)))
    return RsqrtParams(_check_zero_point(input_zero_point, "input"),
                       _check_zero_point(output_zero_point, "output"), mult, shift)


def rsqrt_s8(x: ArrayLike, params: RsqrtParams) -> I8:
    """TFLM RsqrtEvalQuantized for int8. An input at the zero point (real 0) gives 127;
    inputs below the zero point (negative reals) are an error, as in TFLM."""
    xa = _i64(x)
    if np.any(xa < params.input_zero_point):
        raise ValueError("rsqrt: input below its zero point (a negative value); TFLM "
                         "fails with 'Rsqrt is only defined for positive values'")
    k_shift = 20  # keeps 1/sqrt(value) an integer before the final rescale
    values = np.arange(INT8_MIN, INT8_MAX + 1, dtype=np.int64) - params.input_zero_point
    inv_mult, inv_shift = _inv_sqrt_quantized_multiplier_exp(np.maximum(values, 0), -1)
    data = multiply_by_quantized_multiplier(1, inv_mult, inv_shift + k_shift)
    out = multiply_by_quantized_multiplier(data, params.multiplier, params.shift - k_shift)
    table = np.where(values == 0, INT8_MAX, out + params.output_zero_point)
    return np.clip(table, INT8_MIN, INT8_MAX).astype(np.int8)[xa - INT8_MIN]


# ==== MEAN (last axis, keep_dims) ======================================================

@dataclass(frozen=True)
class MeanParams:
    """TFLM OpDataReduce for int8 MEAN, plus the 1/n folding Eval applies to it
    (``eval_multiplier``/``eval_shift``), which depends only on n so is done here."""

    input_zero_point: int
    output_zero_point: int
    multiplier: int
    shift: int
    num_elements: int
    eval_multiplier: int
    eval_shift: int


def prepare_mean(input_scale: float, input_zero_point: int, output_scale: float,
                 output_zero_point: int, num_elements: int) -> MeanParams:
    """TFLM PrepareMeanOrSumHelper (multiplier s_in/s_out) and QuantizedMeanOrSum's
    folding of 1/num_elements into the multiplier."""
    n = int(num_elements)
    if n <= 0:
        raise ValueError(f"mean over {n} elements")
    mult, shift = quantize_multiplier(float(_f32(input_scale)) / float(_f32(output_scale)))
    fold = min(n.bit_length() - 1, 32, 31 + shift)
    eval_mult = (mult << fold) // n
    return MeanParams(_check_zero_point(input_zero_point, "input"),
                      _check_zero_point(output_zero_point, "output"), mult, shift, n,
                      eval_mult, shift - fold)


def mean_s8(x: ArrayLike, params: MeanParams) -> I8:
    """TFLM reference_ops::QuantizedMeanOrSum (mean) over the last axis, keep_dims."""
    xa = _i64(x)
    if xa.shape[-1] != params.num_elements:
        raise ValueError(f"mean: last axis has {xa.shape[-1]} elements, prepared for "
                         f"{params.num_elements}")
    total = wrap_int32(xa.sum(axis=-1, keepdims=True)
                       - params.input_zero_point * params.num_elements)
    return _requantize(total, params.eval_multiplier, params.eval_shift,
                       params.output_zero_point, INT8_MIN, INT8_MAX)


# ==== QUANTIZE / DEQUANTIZE (float boundary) ===========================================

def quantize(x: ArrayLike, scale: float, zero_point: int) -> I8:
    """float32 -> int8 as TFLite's QUANTIZE does it: round(x / scale) in float32, ties
    away from zero, plus the zero point, saturated to int8."""
    xf = np.asarray(x, dtype=np.float32)
    if np.isnan(xf).any():
        raise ValueError("quantize: input contains NaN")
    q = xf / _f32(scale)
    a = np.abs(q)
    f = np.floor(a)
    rounded = np.copysign(f + (a - f >= np.float32(0.5)), q).astype(np.float64)
    out = np.clip(rounded, -1e9, 1e9) + int(zero_point)  # no int32 overflow, then saturate
    return np.clip(out, INT8_MIN, INT8_MAX).astype(np.int8)


def dequantize(q: ArrayLike, scale: float, zero_point: int) -> NDArray[np.float32]:
    """int8 -> float32 as TFLite's DEQUANTIZE: float(double(scale) · (q − zero_point))."""
    return (float(_f32(scale)) * (_i64(q) - int(zero_point))).astype(np.float32)
