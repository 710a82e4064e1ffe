"""Waveform augmentation for training on speech that sounds like people and rooms.

Every function takes a mono waveform, int16 or float in [-1, 1], and returns the same
dtype (int16 results are rounded and clipped). Random ones take a numpy Generator, so a
seed fixes the result. Only :func:`load_noise` reads a file (with soundfile); the rest
needs numpy alone.

- :func:`reverb`: a room, from :func:`room_impulse_response` (RT60 drawn per call);
- :func:`telephone`: the 300-3400 Hz telephone band, optionally G.711 mu-law;
- :func:`speed`: playback speed (tempo and pitch together, like ``sox speed``);
- :func:`vtlp`: vocal-tract-length perturbation (Jaitly & Hinton, 2013), the spectral
  envelope warped by a factor around 1 with duration and pitch rate kept;
- :func:`add_noise`: a background recording (or any noise) at a chosen SNR;
  :func:`load_noise` reads one (e.g. ``doing_the_dishes.wav`` of the Speech Commands
  background noises, CC-BY-4.0; docs/training.md says where to get it);
- :func:`room_tone` and :func:`fill_room_tone`: a recording's own background (its
  quietest frames), looped to lengthen the recording without adding speech;
- :func:`noise_tail`: sustained background before and after the speech (room tone or a
  noise recording), as an energy gate that stays open in a noisy room passes it;
- :func:`random_augment`: a seeded chain of the above, for a training loader.

The room model is Polack's: a direct path, a few sparse early reflections, then Gaussian
noise whose energy decays by 60 dB in RT60 seconds. pyroomacoustics (an image-source
simulator) would be the maintained alternative, but its releases need a C++ build and
pull in scipy, which tinygen does not otherwise use.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
LN_1000 = np.log(1000.0)  # 60 dB of energy decay


def _float(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """(float64 copy in [-1, 1], whether the input was int16)."""
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"expected a mono waveform (1-D), got shape {x.shape}")
    if x.dtype == np.int16:
        return x.astype(np.float64) / 32768.0, True
    return x.astype(np.float64), False


def _back(y: np.ndarray, was_int16: bool, like: np.ndarray) -> np.ndarray:
    if was_int16:
        return np.round(np.clip(y, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    return y.astype(like.dtype if np.issubdtype(like.dtype, np.floating) else np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2))) if len(x) else 0.0


# ------------------------------------------------------------------------- rooms
def room_impulse_response(rng: np.random.Generator, rt60: float, sample_rate: int = SAMPLE_RATE,
                          direct_db: float = 0.0, reflections: int = 6) -> np.ndarray:
    """An impulse response of ``1.2 * rt60`` seconds: 1 at t=0, ``reflections`` sparse
    early echoes in 3-40 ms, and a noise tail decaying 60 dB per ``rt60`` whose energy is
    ``direct_db`` below the direct path's (the direct-to-reverberant ratio: 0 dB, as much
    energy in the reverberation as in the direct sound; negative, more)."""
    if rt60 <= 0:
        raise ValueError(f"rt60 must be positive, got {rt60}")
    n = max(int(1.2 * rt60 * sample_rate), 2)
    t = np.arange(n) / sample_rate
    envelope = np.exp(-LN_1000 * t / rt60)  # amplitude falls 1000x (60 dB) at rt60
    tail = rng.standard_normal(n) * envelope
    onset = int(0.003 * sample_rate)
    tail[:onset] = 0.0
    tail *= np.sqrt(10 ** (-direct_db / 10) / max(float(np.sum(tail**2)), 1e-20))
    h = tail
    for _ in range(reflections):
        k = int(rng.integers(onset, max(int(0.040 * sample_rate), onset + 1)))
        h[k] += rng.uniform(-0.6, 0.6) * envelope[k]
    h[0] = 1.0
    return h


def convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Linear convolution by FFT, cut to ``len(x)`` (the reverberant tail past the end of
    the utterance is dropped, as a fixed recording window would)."""
    n = len(x) + len(h) - 1
    size = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)[:len(x)]


def reverb(x: np.ndarray, rng: np.random.Generator, rt60: tuple[float, float] = (0.2, 0.8),
           direct_db: tuple[float, float] = (-3.0, 6.0), sample_rate: int = SAMPLE_RATE
           ) -> np.ndarray:
    """``x`` in a simulated room (RT60 and direct-to-reverberant ratio drawn uniformly),
    rescaled to the RMS level of ``x``."""
    y, was_int = _float(x)
    h = room_impulse_response(rng, float(rng.uniform(*rt60)), sample_rate,
                              direct_db=float(rng.uniform(*direct_db)))
    wet = convolve(y, h)
    wet *= _rms(y) / max(_rms(wet), 1e-12)
    return _back(wet, was_int, np.asarray(x))


# --------------------------------------------------------------------- telephone
def band_pass(x: np.ndarray, low: float, high: float, sample_rate: int = SAMPLE_RATE,
              edge: float = 100.0) -> np.ndarray:
    """Zero-phase FFT band-pass: gain 1 inside [low, high], raised-cosine edges ``edge``
    Hz wide outside them, 0 beyond."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1.0 / sample_rate)
    gain = np.ones_like(f)
    below, above = f < low, f > high
    gain[below] = 0.5 * (1 + np.cos(np.pi * np.minimum((low - f[below]) / edge, 1.0)))
    gain[above] = 0.5 * (1 + np.cos(np.pi * np.minimum((f[above] - high) / edge, 1.0)))
    return np.fft.irfft(spec * gain, len(x))


def mu_law(x: np.ndarray, mu: int = 255) -> np.ndarray:
    """Companded to 8 bits and back (G.711 mu-law): the quantization noise of a phone."""
    c = np.sign(x) * np.log1p(mu * np.abs(np.clip(x, -1, 1))) / np.log1p(mu)
    q = np.round((c + 1) / 2 * 255) / 255 * 2 - 1
    return np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu


def telephone(x: np.ndarray, low: float = 300.0, high: float = 3400.0,
              companding: bool = True, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``x`` as a narrow-band phone line delivers it (no randomness)."""
    y, was_int = _float(x)
    y = band_pass(y, low, high, sample_rate)
    if companding:
        y = mu_law(y)
    return _back(y, was_int, np.asarray(x))


# ------------------------------------------------------------------------ speed
def resample(x: np.ndarray, n: int) -> np.ndarray:
    """Band-limited resampling to ``n`` samples (FFT: spectrum cut or zero-padded)."""
    spec = np.fft.rfft(x)
    out = np.zeros(n // 2 + 1, dtype=complex)
    k = min(len(spec), len(out))
    out[:k] = spec[:k]
    return np.fft.irfft(out, n) * (n / len(x))


def speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Played ``factor`` times faster: ``round(len / factor)`` samples, every frequency
    times ``factor``."""
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    y, was_int = _float(x)
    return _back(resample(y, max(round(len(y) / factor), 1)), was_int, np.asarray(x))


# ------------------------------------------------------------------------- VTLP
def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    pad = np.pad(x, (n_fft, n_fft + hop))
    frames = 1 + (len(pad) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    return np.fft.rfft(pad[idx] * np.hanning(n_fft + 1)[:-1], axis=1)


def _istft(spec: np.ndarray, n_fft: int, hop: int, n: int) -> np.ndarray:
    win = np.hanning(n_fft + 1)[:-1]
    frames = np.fft.irfft(spec, n_fft, axis=1) * win
    out = np.zeros(hop * (len(spec) - 1) + n_fft)
    norm = np.zeros_like(out)
    for i, frame in enumerate(frames):
        out[i * hop:i * hop + n_fft] += frame
        norm[i * hop:i * hop + n_fft] += win**2
    return (out / np.maximum(norm, 1e-8))[n_fft:n_fft + n]


def vtlp_warp(f: np.ndarray, alpha: float, nyquist: float, f_hi: float = 4800.0
              ) -> np.ndarray:
    """Jaitly & Hinton's piecewise-linear warp: ``alpha * f`` up to a knee, then a line
    to the Nyquist frequency (which stays put)."""
    knee = f_hi * min(alpha, 1.0) / alpha
    top = nyquist - (nyquist - f_hi * min(alpha, 1.0)) / (nyquist - knee) * (nyquist - f)
    return np.where(f <= knee, alpha * f, top)


def vtlp(x: np.ndarray, alpha: float, sample_rate: int = SAMPLE_RATE, n_fft: int = 512,
         hop: int = 128) -> np.ndarray:
    """The spectrum of ``x`` warped by :func:`vtlp_warp` (a component at f moves to
    ``warp(f)``), same length: a phase vocoder carries each output bin's magnitude from
    the source frequency that maps onto it and advances its phase at the warped
    instantaneous frequency. The result has the RMS level of ``x``."""
    y, was_int = _float(x)
    spec = _stft(y, n_fft, hop)
    bins = np.arange(spec.shape[1])
    hz = bins * sample_rate / n_fft
    nyq = sample_rate / 2
    # inverse warp by interpolation (the warp is increasing): source Hz of each output bin
    grid = np.linspace(0, nyq, 4 * len(bins))
    src_hz = np.interp(hz, vtlp_warp(grid, alpha, nyq), grid)
    src_bin = src_hz * n_fft / sample_rate
    lo = np.clip(np.floor(src_bin).astype(int), 0, len(bins) - 1)
    hi = np.clip(lo + 1, 0, len(bins) - 1)
    w = src_bin - lo
    mag = np.abs(spec)
    out_mag = (1 - w) * mag[:, lo] + w * mag[:, hi]
    # instantaneous frequency (rad/sample) of each source bin from its phase advance
    phase = np.angle(spec)
    expected = 2 * np.pi * bins * hop / n_fft
    dphi = np.diff(phase, axis=0, prepend=phase[:1]) - expected
    dphi = (dphi + np.pi) % (2 * np.pi) - np.pi
    inst = (expected + dphi) / hop  # (frames, bins)
    near = np.clip(np.round(src_bin).astype(int), 0, len(bins) - 1)
    ratio = np.where(src_hz > 0, hz / np.maximum(src_hz, 1e-9), 1.0)
    out_inst = inst[:, near] * ratio
    out_phase = phase[0, near] + np.cumsum(
        np.vstack([np.zeros((1, len(bins))), out_inst[1:] * hop]), axis=0)
    out = _istft(out_mag * np.exp(1j * out_phase), n_fft, hop, len(y))
    out *= _rms(y) / max(_rms(out), 1e-12)  # the warp stretches bands: keep the level
    return _back(out, was_int, np.asarray(x))


# ------------------------------------------------------------------------ noise
def load_noise(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A noise recording as float32 mono at ``sample_rate`` (channels averaged,
    band-limited resampling when its rate differs)."""
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float64", always_2d=True)
    x = data.mean(axis=1)
    if rate != sample_rate:
        x = resample(x, max(round(len(x) * sample_rate / rate), 1))
    return x.astype(np.float32)


def _loop(tone: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """``n`` samples of ``tone`` played in a loop from sample ``start``."""
    if n <= 0:
        return tone[:0].copy()
    reps = -(-(n + start) // len(tone))
    return np.tile(tone, reps)[start:start + n]


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator
              ) -> np.ndarray:
    """``x`` plus a random stretch of ``noise`` (looped if shorter) scaled so that the
    mean power of ``x`` over that of the added noise is ``snr_db``."""
    y, was_int = _float(x)
    v, _ = _float(noise)
    if len(v) == 0 or _rms(v) == 0:
        raise ValueError("the noise is empty or silent")
    seg = _loop(v, len(y), int(rng.integers(len(v))))
    seg *= _rms(y) / _rms(seg) / 10 ** (snr_db / 20)
    return _back(y + seg, was_int, np.asarray(x))


# -------------------------------------------------------------------- room tone
def room_tone(x: np.ndarray, sample_rate: int = SAMPLE_RATE, frame_ms: float = 20.0,
              share: float = 0.25) -> np.ndarray:
    """The recording's background without its speech: the quietest ``share`` of its
    ``frame_ms`` frames (by RMS), joined in their original order. Same dtype as ``x``;
    a recording shorter than one frame is returned whole."""
    y = np.asarray(x)
    if y.ndim != 1:
        raise ValueError(f"expected a mono waveform (1-D), got shape {y.shape}")
    n = max(int(sample_rate * frame_ms / 1000), 1)
    count = len(y) // n
    if count == 0:
        return y.copy()
    frames = y[:count * n].reshape(count, n)
    energy = np.mean(frames.astype(np.float64) ** 2, axis=1)
    keep = max(round(count * share), 1)
    quiet = np.sort(np.argsort(energy, kind="stable")[:keep])
    return frames[quiet].reshape(-1).copy()


def fill_room_tone(x: np.ndarray, length: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``x`` followed by its own :func:`room_tone`, looped, up to ``length`` samples
    (no randomness; ``x`` unchanged when it is already that long). A recording whose
    background is digital silence is followed by digital silence."""
    y = np.asarray(x)
    if len(y) >= length:
        return y.copy()
    tone = room_tone(y, sample_rate)
    return np.concatenate([y, _loop(tone, length - len(y))])


def noise_tail(x: np.ndarray, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE,
               noises: list[np.ndarray] | None = None, max_samples: int | None = None,
               extra_s: tuple[float, float] = (0.5, 3.0), lead: tuple[float, float] = (0.0, 0.3),
               snr_db: tuple[float, float] = (10.0, 30.0)) -> np.ndarray:
    """``x`` lengthened by ``extra_s`` seconds (uniform; at most up to ``max_samples``)
    of sustained background, a ``lead`` share of it before the speech and the rest after:
    what a model meets when a noisy room keeps an energy gate open. The background is the
    recording's own :func:`room_tone`, looped; or, given ``noises`` (chosen with p 0.5, or
    always when the recording's background is digital silence), one of them under and
    around the speech at ``snr_db`` (uniform) below the speech's level. The transcript is
    unchanged: the model learns to emit nothing for the background."""
    y, was_int = _float(x)
    extra = int(rng.uniform(*extra_s) * sample_rate)
    if max_samples is not None:
        extra = min(extra, max_samples - len(y))
    pick_noise = rng.random() < 0.5
    if extra <= 0:
        return _back(y, was_int, np.asarray(x))
    before = int(extra * rng.uniform(*lead))
    tone = room_tone(y, sample_rate)
    silent = _rms(tone) < 1e-5
    if noises and (pick_noise or silent):
        v = noises[int(rng.integers(len(noises)))].astype(np.float64)
        if len(v) == 0 or _rms(v) == 0:
            raise ValueError("the noise is empty or silent")
        out = np.concatenate([np.zeros(before), y, np.zeros(extra - before)])
        seg = _loop(v, len(out), int(rng.integers(len(v))))
        level = max(_rms(y), 1e-4)  # a silent recording still gets audible noise
        out += seg * (level / _rms(seg) / 10 ** (float(rng.uniform(*snr_db)) / 20))
    else:
        start = int(rng.integers(len(tone))) if len(tone) else 0
        pad = _loop(tone, extra, start) if len(tone) else np.zeros(extra)
        out = np.concatenate([pad[:before], y, pad[before:]])
    return _back(out, was_int, np.asarray(x))


# ------------------------------------------------------------------------ chain
KINDS = ("speed", "vtlp", "reverb", "telephone", "noise")  # what random_augment applies


def random_augment(x: np.ndarray, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE,
                   noises: list[np.ndarray] | None = None,
                   kinds: Collection[str] = KINDS) -> np.ndarray:
    """A seeded chain for a training loader: speed (p 0.5, 0.9-1.1), VTLP (p 0.5,
    alpha 0.9-1.1), reverb (p 0.3), telephone band (p 0.15) and, given ``noises``, one
    of them at 5-25 dB SNR (p 0.5). Output length follows the speed change. ``kinds``
    keeps a subset of the chain (names in :data:`KINDS`); a step left out still tosses its
    coin and is then skipped. With every kind (the default) the chain is unchanged."""
    y = np.asarray(x)
    if rng.random() < 0.5 and "speed" in kinds:
        y = speed(y, float(rng.uniform(0.9, 1.1)))
    if rng.random() < 0.5 and "vtlp" in kinds:
        y = vtlp(y, float(rng.uniform(0.9, 1.1)), sample_rate)
    if rng.random() < 0.3 and "reverb" in kinds:
        y = reverb(y, rng, sample_rate=sample_rate)
    if rng.random() < 0.15 and "telephone" in kinds:
        y = telephone(y, sample_rate=sample_rate)
    if noises and rng.random() < 0.5 and "noise" in kinds:
        y = add_noise(y, noises[int(rng.integers(len(noises)))], float(rng.uniform(5, 25)),
                      rng)
    return y
