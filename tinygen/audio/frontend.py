"""The integer audio front end: int16 PCM in, int8 log-mel frames out, defined once.

Contract:

- **In:** int16 PCM samples at ``sample_rate``. **Out:** ``(frames, n_mels)`` int8, the
  model's input, whose real value is ``(q - ZERO_POINT) * SCALE`` (``SCALE = 1/40``,
  ``ZERO_POINT = -28``: the range [-2.5, 3.875] in feature units).
- **Framing is streaming, not centred:** frame k covers samples ``[k*hop, k*hop + win)``.
  ``N`` samples give 0 frames if ``N < win``, else ``1 + (N - win) // hop``.
  :class:`FrontendStream` fed the same samples in any chunking gives exactly the frames
  of :func:`features` on the whole signal.
- **Integer arithmetic only** (int64 numpy, no float after :func:`frontend_tables`), and
  byte-identical to the portable C in ``firmware/tinygen/audio/tg_frontend.c``, which takes
  the same tables through ``tg_frontend_tables_t``. No input can overflow: every bound is
  proved in docs/frontend.md and checked by :func:`frontend_tables`.
- **Meaning:** the dequantized output approximates the float features of
  ``tinygen.speech.features`` (``(ln(mel + 1e-6) + 4) / 4`` of the power of a periodic-Hann
  STFT through an HTK mel filterbank) on the same frames; digital silence is exactly
  ``SILENCE_Q`` (-126, i.e. -2.45). The agreement is measured (bench/bench_frontend.py),
  not asserted bit for bit.

Per frame (formats in docs/frontend.md):

    x  int16 (win)             -> v = round(x * w_q15 / 2^s)        int32, |v| < 2^21
    v  zero-padded to n_fft    -> z[n] = v[2n] + i v[2n+1]          n_fft/2 complex int32
    z  -> Z = FFT_{n_fft/2}(z) radix-2 DIT, Q30 twiddles, one rounding per component
    Z  -> Y[k] = 2 X[k] = E + T_k O  (the real-FFT split), k = 0 .. n_fft/2
    Y  -> P[k] = (Yr^2 + Yi^2) >> POWER_SHIFT                    int64 (< 2^49)
    P  -> M[m] = sum_k wmel_q12[m, k] P[k]                         int64 (< 2^61)
    M  -> L = log2(M + floor) in Q16 (bit length + 128-entry LUT, linear interpolation)
    L  -> q = clamp((L * out_mult + out_bias) >> 32, -128, 127)

The numpy code runs all frames of a signal at once, 128 per batch (about 300x real time
on one core; bench/bench_frontend.py measures it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinygen.errors import ConfigError

SCALE = 1.0 / 40.0  # feature units per int8 step
ZERO_POINT = -28  # int8 value of feature 0.0
# The real values the int8 output can stand for; a model compiled with this as its input's
# range gets exactly (SCALE, ZERO_POINT) as its input quantization (float32 scale).
FEATURE_RANGE = ((-128 - ZERO_POINT) * SCALE, (127 - ZERO_POINT) * SCALE)
LOG_FLOOR = 1e-6  # added to the mel power before the log, as in tinygen.speech.features
LOG_OFFSET = -4.0  # feature = (ln(mel + LOG_FLOOR) - LOG_OFFSET) / LOG_SCALE
LOG_SCALE = 4.0
TWIDDLE_BITS = 30  # FFT twiddles are Q30 (exactly +-1 representable)
MEL_WEIGHT_BITS = 12  # mel weights are Q12 (0 .. 4096)
POWER_SHIFT = 12  # P = |2X|^2 >> POWER_SHIFT before the mel weights
LOG_LUT_BITS = 7  # log2(1 + f) table: 2^7 segments, linear interpolation in between
LOG_FRAC_BITS = 16  # L is log2 in Q16
OUT_SHIFT = 32  # q = (L * out_mult + out_bias) >> OUT_SHIFT
# Bounds that the tables must keep (see docs/frontend.md, "Headroom").
FFT_LIMIT = 1 << 30  # |component| of every FFT value, including the split output
MEL_LIMIT = 1 << 61  # any mel sum plus the floor


@dataclass(frozen=True)
class FrontendConfig:
    """The front end's parameters (the same names as tinygen.speech.config)."""

    sample_rate: int = 16000
    n_fft: int = 512  # a power of two, >= win_length
    win_length: int = 400  # samples per frame (25 ms)
    hop_length: int = 160  # samples between frame starts (10 ms), <= win_length
    n_mels: int = 40  # HTK triangular filters from 0 Hz to sample_rate / 2

    @classmethod
    def of(cls, cfg: Any) -> FrontendConfig:
        """The front-end fields of any object that has them (a ConformerConfig)."""
        return cls(int(cfg.sample_rate), int(cfg.n_fft), int(cfg.win_length),
                   int(cfg.hop_length), int(cfg.n_mels))

    def validate(self) -> FrontendConfig:
        def need(ok: bool, what: str, fix: str) -> None:
            if not ok:
                raise ConfigError(f"audio front end: {what}", fix)

        need(self.sample_rate > 0 and self.n_mels > 0, f"sample_rate {self.sample_rate}, "
             f"n_mels {self.n_mels}", "both must be > 0")
        need(self.n_fft >= 4 and self.n_fft & (self.n_fft - 1) == 0 and self.n_fft <= 4096,
             f"n_fft = {self.n_fft}", "use a power of two from 4 to 4096")
        need(0 < self.win_length <= self.n_fft, f"win_length = {self.win_length}",
             f"use 1 .. n_fft ({self.n_fft})")
        need(0 < self.hop_length <= self.win_length, f"hop_length = {self.hop_length}",
             f"use 1 .. win_length ({self.win_length})")
        need(self.n_mels <= self.n_fft // 2, f"n_mels = {self.n_mels}",
             f"use at most n_fft / 2 = {self.n_fft // 2} filters")
        return self

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def frames_for(self, samples: int) -> int:
        """Frames that ``samples`` samples give (streaming framing, not centred)."""
        return 0 if samples < self.win_length else 1 + (samples - self.win_length) \
            // self.hop_length


@dataclass(frozen=True)
class FrontendTables:
    """Every constant the integer front end uses; the C takes the same values."""

    cfg: FrontendConfig
    window: np.ndarray  # int16 (win,): periodic Hann in Q15, 0 .. 32767
    window_shift: int  # s: v = round(x * window / 2^s)
    bitrev: np.ndarray  # uint16 (n_fft/2,): bit-reversed index of the half-size FFT
    twiddle: np.ndarray  # int32 (n_fft/4, 2): W_{n_fft/2}^j = (cos, -sin) in Q30
    split: np.ndarray  # int32 (n_fft/4 + 1, 2): T_k = -i W_{n_fft}^k = (-sin, -cos), Q30,
    # k <= n_fft/4; the rest by symmetry, T_(n_fft/2 - k) = (sr_k, -si_k) (split_factors)
    mel_start: np.ndarray  # uint16 (n_mels,): first FFT bin of each filter
    mel_length: np.ndarray  # uint16 (n_mels,): bins of each filter
    mel_offset: np.ndarray  # uint16 (n_mels,): where its weights start in mel_weight
    mel_weight: np.ndarray  # uint16 (sum of lengths,): Q12 weights, 0 .. 4096
    log_lut: np.ndarray  # uint32 (2^LOG_LUT_BITS + 1,): round(log2(1 + i/128) * 2^16)
    log_floor: int  # added to every mel sum: LOG_FLOOR in mel units
    out_mult: int  # q = clamp((L * out_mult + out_bias) >> 32, -128, 127)
    out_bias: int

    @property
    def mel_exponent(self) -> int:
        """Mel sums are real mel power times 2^mel_exponent."""
        return mel_exponent(self.window_shift)

    def twiddle_q31(self) -> np.ndarray:
        """The twiddles as the C stores them: Q31 (twice the Q30 values), saturated to
        int32. Only W^0 = 1 saturates, and the C never multiplies by it (nor by -i): it
        multiplies doubled FFT values by Q31 twiddles, which gives the Q30 rounding exactly
        (tg_q32_dot2 in tg_frontend.c)."""
        return np.clip(self.twiddle.astype(np.int64) * 2, -(1 << 31),
                       (1 << 31) - 1).astype(np.int32)

    def split_q31(self) -> np.ndarray:
        """The split factors as the C stores them: Q31, twice the Q30 values. Every stored
        factor (k <= n_fft/4) is <= 0, so all fit int32 exactly."""
        q31 = self.split.astype(np.int64) * 2
        assert q31.max() <= 0 and q31.min() >= -(1 << 31)
        return q31.astype(np.int32)

    def nbytes(self) -> int:
        """Flash bytes of the tables as the C stores them (arrays and scalars)."""
        arrays = (self.window, self.bitrev, self.twiddle, self.split, self.mel_start,
                  self.mel_length, self.mel_offset, self.mel_weight, self.log_lut)
        return sum(a.nbytes for a in arrays) + 8 * 4 + 3 * 8


def mel_exponent(window_shift: int) -> int:
    """log2 of (mel sum units per unit of float mel power).

    x_int = 2^15 x, v = x_int w_q15 / 2^s = 2^(30 - s) x w, the split output is 2X, so
    |2X_int|^2 = 2^(62 - 2s) |X|^2; the Q12 weights and the >> POWER_SHIFT cancel.
    """
    return 2 * (30 - window_shift) + 2 + MEL_WEIGHT_BITS - POWER_SHIFT


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) float64 HTK triangles, peak 1 (tinygen.speech.features')."""
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(sample_rate / 2), n_mels + 2))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    up = (freqs[:, None] - lower[None, :]) / (centre - lower)[None, :]
    down = (upper[None, :] - freqs[:, None]) / (upper - centre)[None, :]
    return np.maximum(0.0, np.minimum(up, down))


def _window_shift(window: np.ndarray) -> int:
    """The smallest s that keeps every FFT value under FFT_LIMIT (docs/frontend.md).

    Every value of the FFT and of the split is (up to rounding) a partial DFT of v, or
    twice one, so its components are at most 2 * sum|v| plus the roundings."""
    for s in range(0, 16):
        vmax = (32768 * window.astype(np.int64) + (1 << s >> 1)) >> s  # |v[n]| bound
        if 2 * int(vmax.sum()) + 2 * len(window) + 64 <= FFT_LIMIT // 2:
            return s
    raise AssertionError("unreachable: s = 15 always fits")


def frontend_tables(cfg: FrontendConfig | Any = None) -> FrontendTables:
    """All tables for ``cfg`` (a FrontendConfig, or any config with the same fields)."""
    if cfg is None:
        cfg = FrontendConfig()
    elif not isinstance(cfg, FrontendConfig):
        cfg = FrontendConfig.of(cfg)
    cfg.validate()
    win, n = cfg.win_length, cfg.n_fft
    half = n // 2
    idx = np.arange(win)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * idx / win)  # periodic, as torch.hann_window
    window = np.minimum(np.round(hann * 32768.0), 32767).astype(np.int16)
    s = _window_shift(window)

    bits = half.bit_length() - 1
    bitrev = np.array([int(format(i, f"0{bits}b")[::-1], 2) if bits else 0
                       for i in range(half)], dtype=np.uint16)
    one = 1 << TWIDDLE_BITS
    j = np.arange(max(half // 2, 1))
    twiddle = np.stack([np.round(np.cos(2 * np.pi * j / half) * one),
                        np.round(-np.sin(2 * np.pi * j / half) * one)], axis=1)
    k = np.arange(half // 2 + 1)  # T_(half - k) = (sr_k, -si_k): the C pairs k, half - k
    split = np.stack([np.round(-np.sin(2 * np.pi * k / n) * one),
                      np.round(-np.cos(2 * np.pi * k / n) * one)], axis=1)

    fb = mel_filterbank(n, cfg.n_mels, cfg.sample_rate)  # (bins, n_mels)
    wq = np.round(fb * (1 << MEL_WEIGHT_BITS)).astype(np.int64)
    starts, lengths, offsets, weights = [], [], [], []
    for m in range(cfg.n_mels):
        nz = np.flatnonzero(wq[:, m])
        lo, hi = (int(nz[0]), int(nz[-1]) + 1) if len(nz) else (0, 0)
        starts.append(lo)
        lengths.append(hi - lo)
        offsets.append(len(weights))
        weights += wq[lo:hi, m].tolist()

    lut = np.round(np.log2(1.0 + np.arange((1 << LOG_LUT_BITS) + 1) / (1 << LOG_LUT_BITS))
                   * (1 << LOG_FRAC_BITS)).astype(np.uint32)
    e0 = mel_exponent(s)
    log_floor = round(LOG_FLOOR * 2.0 ** e0)
    # q = feature / SCALE + ZERO_POINT, feature = (ln2 (L / 2^16 - e0) - LOG_OFFSET) / LOG_SCALE
    per_l = math.log(2.0) / (LOG_SCALE * SCALE * (1 << LOG_FRAC_BITS))
    const = (-math.log(2.0) * e0 - LOG_OFFSET) / (LOG_SCALE * SCALE) + ZERO_POINT
    out_mult = round(per_l * 2.0 ** OUT_SHIFT)
    out_bias = round(const * 2.0 ** OUT_SHIFT) + (1 << (OUT_SHIFT - 1))  # round half up

    tables = FrontendTables(
        cfg=cfg, window=window, window_shift=s, bitrev=bitrev,
        twiddle=twiddle.astype(np.int32), split=split.astype(np.int32),
        mel_start=np.array(starts, dtype=np.uint16),
        mel_length=np.array(lengths, dtype=np.uint16),
        mel_offset=np.array(offsets, dtype=np.uint16),
        mel_weight=np.array(weights, dtype=np.uint16), log_lut=lut,
        log_floor=log_floor, out_mult=out_mult, out_bias=out_bias)
    _check_headroom(tables)
    # fft_split takes the first two stages' twiddles (1 and -i) as exact rotations
    assert tables.twiddle[0].tolist() == [one, 0]
    assert half < 4 or tables.twiddle[half // 4].tolist() == [0, -one]
    return tables


def _check_headroom(t: FrontendTables) -> None:
    """The bounds docs/frontend.md proves, evaluated for these tables."""
    cfg = t.cfg
    v_max = (32768 * t.window.astype(np.int64) + (1 << t.window_shift >> 1)) >> t.window_shift
    sum_v = int(v_max.sum())
    assert 2 * sum_v + 2 * cfg.win_length + 64 <= FFT_LIMIT // 2
    # Parseval: sum_k |2X_k|^2 over the one-sided bins <= 4 n_fft sum v^2 (< 2^61 here).
    energy = 4 * cfg.n_fft * int((v_max * v_max).sum())
    assert energy + 4 * cfg.bins * (2 * sum_v + 1) < MEL_LIMIT
    # Each mel sum <= max weight * sum_k P_k (+ floor), and stays < 2^61 + 2^12.
    mel_max = (energy >> POWER_SHIFT) * (1 << MEL_WEIGHT_BITS) + t.log_floor
    assert mel_max < MEL_LIMIT + (1 << MEL_WEIGHT_BITS) + t.log_floor < (1 << 62)
    assert t.log_floor >= 1
    assert abs(63 * (1 << LOG_FRAC_BITS) * t.out_mult) + abs(t.out_bias) < (1 << 62)
    assert int(t.mel_offset[-1]) + int(t.mel_length[-1]) == len(t.mel_weight) < 65536


# ------------------------------------------------------------------------ computation
def _frames(pcm: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """(win, frames) int64: frame k is column k (streaming framing)."""
    count = cfg.frames_for(len(pcm))
    starts = np.arange(count) * cfg.hop_length
    return pcm.astype(np.int64)[np.arange(cfg.win_length)[:, None] + starts[None, :]]


def _round_shift(x: np.ndarray, shift: int) -> np.ndarray:
    """round(x / 2^shift), halves up (floor((x + 2^(shift-1)) / 2^shift))."""
    return (x + (1 << shift >> 1)) >> shift if shift else x


def fft_split(v: np.ndarray, t: FrontendTables) -> tuple[np.ndarray, np.ndarray]:
    """(n_fft, F) int64 windowed frames, one per column -> 2X: real and imaginary parts,
    (n_fft/2 + 1, F) int64 each.

    The same operations, in the same order, as tg_frontend.c's FFT and split. Frames are
    columns so that each butterfly works on contiguous rows (about 4x faster)."""
    half = t.cfg.n_fft // 2
    frames = v.shape[1]
    order = t.bitrev.astype(np.int64)
    re = np.ascontiguousarray(v[0::2][order])  # (half, F): z = v[2n] + i v[2n+1]
    im = np.ascontiguousarray(v[1::2][order])
    new_re, new_im = np.empty_like(re), np.empty_like(im)
    tw = t.twiddle.astype(np.int64)
    rnd = 1 << (TWIDDLE_BITS - 1)
    size = 2
    while size <= half:  # radix-2 decimation in time, butterflies of span h
        h, groups, step = size // 2, half // size, half // size
        a_re = re.reshape(groups, 2, h, frames)
        a_im = im.reshape(groups, 2, h, frames)
        ar, ai, br, bi = a_re[:, 0], a_im[:, 0], a_re[:, 1], a_im[:, 1]
        wr = tw[0:h * step:step, 0][:, None]  # (h, 1)
        wi = tw[0:h * step:step, 1][:, None]
        if h <= 2:  # twiddles 1 and -i (exact in Q30): the rounded products are exact
            tr = np.concatenate([br[:, :1], bi[:, 1:]], axis=1)
            ti = np.concatenate([bi[:, :1], -br[:, 1:]], axis=1)
        else:
            tr = br * wr
            tr -= bi * wi
            tr += rnd
            tr >>= TWIDDLE_BITS
            ti = br * wi
            ti += bi * wr
            ti += rnd
            ti >>= TWIDDLE_BITS
        o_re = new_re.reshape(groups, 2, h, frames)
        o_im = new_im.reshape(groups, 2, h, frames)
        np.add(ar, tr, out=o_re[:, 0])
        np.subtract(ar, tr, out=o_re[:, 1])
        np.add(ai, ti, out=o_im[:, 0])
        np.subtract(ai, ti, out=o_im[:, 1])
        re, new_re, im, new_im = new_re, re, new_im, im
        size *= 2
    return split_bins(re, im, t)


def split_bins(re: np.ndarray, im: np.ndarray, t: FrontendTables
               ) -> tuple[np.ndarray, np.ndarray]:
    """The half-size FFT Z (real and imaginary parts, (n_fft/2, F) int64) -> 2X, the real
    FFT's n_fft/2 + 1 bins: Y[k] = E + T_k O with E = Z[k] + conj Z[-k],
    O = Z[k] - conj Z[-k], each product rounded once (tg_frontend.c's split)."""
    half = t.cfg.n_fft // 2
    rnd = 1 << (TWIDDLE_BITS - 1)
    k = np.arange(half + 1)
    kk, mk = k % half, (half - k) % half
    zr, zi, cr, ci = re[kk], im[kk], re[mk], -im[mk]
    er, ei = zr + cr, zi + ci
    orr, oi = zr - cr, zi - ci
    full = split_factors(t.split)
    sr = full[:, 0][:, None]
    si = full[:, 1][:, None]
    yr = er + ((sr * orr - si * oi + rnd) >> TWIDDLE_BITS)
    yi = ei + ((sr * oi + si * orr + rnd) >> TWIDDLE_BITS)
    return yr, yi


def power_of(yr: np.ndarray, yi: np.ndarray) -> np.ndarray:
    """P = (Yr^2 + Yi^2) >> POWER_SHIFT, int64."""
    return (yr * yr + yi * yi) >> POWER_SHIFT


def split_factors(split: np.ndarray) -> np.ndarray:
    """(n_fft/4 + 1, 2) stored split factors -> all n_fft/2 + 1 of them, int64:
    T_(half - k) = (sr_k, -si_k), as sin(pi - x) = sin x and cos(pi - x) = -cos x."""
    head = split.astype(np.int64)
    tail = head[-2::-1] * np.array([1, -1], dtype=np.int64)
    return np.concatenate([head, tail])


def log2_q16(m: np.ndarray, t: FrontendTables) -> np.ndarray:
    """log2(m) in Q16 for int64 m >= 1: bit length, then the LUT with interpolation."""
    e = np.zeros(m.shape, dtype=np.int64)
    for sh in (32, 16, 8, 4, 2, 1):  # e = floor(log2 m), by binary search on the bits
        e += sh * ((m >> (e + sh)) > 0)
    f = np.where(e >= LOG_FRAC_BITS, m >> np.maximum(e - LOG_FRAC_BITS, 0),
                 m << np.maximum(LOG_FRAC_BITS - e, 0)) & ((1 << LOG_FRAC_BITS) - 1)
    seg_bits = LOG_FRAC_BITS - LOG_LUT_BITS
    i = f >> seg_bits
    r = f & ((1 << seg_bits) - 1)
    lut = t.log_lut.astype(np.int64)
    lo = lut[i]
    return (e << LOG_FRAC_BITS) + lo + (((lut[i + 1] - lo) * r + (1 << seg_bits >> 1))
                                        >> seg_bits)


def frames_from_windows(x: np.ndarray, t: FrontendTables) -> np.ndarray:
    """(win, F) int64 samples, one frame per column -> (F, n_mels) int8 features."""
    cfg = t.cfg
    frames = x.shape[1]
    v = np.zeros((cfg.n_fft, frames), dtype=np.int64)
    v[:cfg.win_length] = _round_shift(x * t.window.astype(np.int64)[:, None],
                                      t.window_shift)
    power = power_of(*fft_split(v, t))  # (bins, F)
    mel = np.zeros((cfg.n_mels, frames), dtype=np.int64)
    weights = t.mel_weight.astype(np.int64)
    for m in range(cfg.n_mels):  # n_mels short dot products over all frames at once
        lo, ln, off = int(t.mel_start[m]), int(t.mel_length[m]), int(t.mel_offset[m])
        if ln:
            mel[m] = weights[off:off + ln] @ power[lo:lo + ln]
    logq = log2_q16(mel + t.log_floor, t)
    q = (logq * t.out_mult + t.out_bias) >> OUT_SHIFT
    return np.clip(q, -128, 127).astype(np.int8).T


def features(pcm: np.ndarray, tables: FrontendTables | None = None,
             batch: int = 128) -> np.ndarray:
    """(samples,) int16 PCM -> (frames, n_mels) int8, frames as the module docstring says."""
    t = frontend_tables() if tables is None else tables
    pcm = np.asarray(pcm)
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise TypeError(f"features() takes 1-D int16 PCM, got {pcm.dtype} {pcm.shape}")
    cfg = t.cfg
    count = cfg.frames_for(len(pcm))
    out = np.empty((count, cfg.n_mels), dtype=np.int8)
    for first in range(0, count, batch):  # bounded memory for long signals
        last = min(count, first + batch)
        lo = first * cfg.hop_length
        hi = (last - 1) * cfg.hop_length + cfg.win_length
        out[first:last] = frames_from_windows(_frames(pcm[lo:hi], cfg), t)
    return out


def dequantize(q: np.ndarray) -> np.ndarray:
    """int8 features -> float32 feature units (for comparisons and training)."""
    return ((q.astype(np.float32) - ZERO_POINT) * np.float32(SCALE)).astype(np.float32)


SILENCE_Q = int(np.clip(round((math.log(LOG_FLOOR) - LOG_OFFSET) / LOG_SCALE / SCALE)
                        + ZERO_POINT, -128, 127))


class FrontendStream:
    """Streaming front end: push any number of samples, get the frames they complete."""

    def __init__(self, tables: FrontendTables | None = None) -> None:
        self.tables = frontend_tables() if tables is None else tables
        self.reset()

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.int16)  # samples from the next frame's start

    def push(self, pcm: np.ndarray) -> np.ndarray:
        pcm = np.asarray(pcm, dtype=np.int16).reshape(-1)
        buf = np.concatenate([self._pending, pcm])
        out = features(buf, self.tables)
        self._pending = buf[len(out) * self.tables.cfg.hop_length:]
        return out
