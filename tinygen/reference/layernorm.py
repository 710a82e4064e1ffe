"""tinygen's integer LayerNorm (TFLite Micro has no LAYER_NORM op).

All arithmetic is integer; docs/quantization.md derives it. Per row of D int8 values:

    xi  = x - zp_x                           int32
    S   = sum(xi)                            int32
    c   = D*xi - S                           int32, D times (x - mean) in input steps
    Q   = sum(c*c) + eps_q                   int64, eps_q = max(1, round(eps*D^3/s_x^2))
    r   = isqrt(Q)                           floor square root, r >= 1
    t   = round_half_away(c * 2^F / r)       |t| <= 2^F, F = 24: (x-mean)/std / sqrt(D)
    out = clamp(MBQM(sign_i*t, M_i, sh_i) + bias_i, -128, 127)

with M_i·2^(sh_i-31) = |gamma_i|·sqrt(D)/(s_y·2^F), sign_i = sign(gamma_i) and
bias_i = round(beta_i/s_y) + zp_y. MBQM is TFLite's MultiplyByQuantizedMultiplier, the
same requantization every other int8 op uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinygen.reference.kernels import multiply_by_quantized_multiplier, quantize_multiplier

FRAC_BITS = 24


@dataclass(frozen=True)
class LayerNormParams:
    """Integers for one use of a LayerNorm; per-channel tuples have D entries."""

    input_zero_point: int
    eps_q: int
    multiplier: tuple[int, ...]
    shift: tuple[int, ...]
    sign: tuple[int, ...]  # +1 / -1
    bias: tuple[int, ...]  # round(beta / s_y) + zp_y


def _round_half_away(v: float) -> int:
    return math.floor(abs(v) + 0.5) * (1 if v >= 0 else -1)


def prepare_layer_norm(input_scale: float, input_zero_point: int, output_scale: float,
                       output_zero_point: int, gamma: np.ndarray | None,
                       beta: np.ndarray | None, eps: float, channels: int) -> LayerNormParams:
    s_x = float(np.float32(input_scale))
    s_y = float(np.float32(output_scale))
    d = int(channels)
    g = np.ones(d) if gamma is None else gamma.astype(np.float64).reshape(d)
    b = np.zeros(d) if beta is None else beta.astype(np.float64).reshape(d)
    eps_q = max(1, _round_half_away(eps * d ** 3 / (s_x * s_x)))
    mults, shifts = [], []
    for gi in g:
        m, s = quantize_multiplier(abs(float(gi)) * math.sqrt(d) / (s_y * 2.0 ** FRAC_BITS))
        mults.append(m)
        shifts.append(s)
    bias = [min(2**31 - 1, max(-(2**31), _round_half_away(bi / s_y) + int(output_zero_point)))
            for bi in b]
    return LayerNormParams(int(input_zero_point), int(eps_q), tuple(mults), tuple(shifts),
                           tuple(1 if gi >= 0 else -1 for gi in g), tuple(bias))


def isqrt64(q: np.ndarray) -> np.ndarray:
    """Floor square root of non-negative int64 values, exact."""
    r = np.floor(np.sqrt(q.astype(np.float64))).astype(np.int64)
    r = np.where(r * r > q, r - 1, r)
    r = np.where((r + 1) * (r + 1) <= q, r + 1, r)
    return r


def layer_norm_s8(x: np.ndarray, p: LayerNormParams) -> np.ndarray:
    """x (..., D) int8 -> (..., D) int8."""
    xi = x.astype(np.int64) - p.input_zero_point
    d = xi.shape[-1]
    c = d * xi - xi.sum(axis=-1, keepdims=True)
    q = (c * c).sum(axis=-1, keepdims=True) + p.eps_q
    r = isqrt64(q)
    num = np.abs(c) << FRAC_BITS
    t = np.sign(c) * ((num + r // 2) // r)
    acc = t * np.array(p.sign, dtype=np.int64)
    out = multiply_by_quantized_multiplier(acc, np.array(p.multiplier, dtype=np.int64),
                                           np.array(p.shift, dtype=np.int64))
    out = out + np.array(p.bias, dtype=np.int64)
    return np.clip(out, -128, 127).astype(np.int8)
