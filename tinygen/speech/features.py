"""The model's input features, as training, evaluation and calibration compute them.

:func:`frontend_logmel` is the one front end: the integer reference of
:mod:`tinygen.audio.frontend` (int16 PCM -> int8 frames, byte-identical to the C the firmware
runs), dequantized to float feature units. A model is trained on exactly the values the device
will feed it, and digital silence is exactly :func:`silence_value`.

:class:`LogMel` is the float definition that the integer front end approximates, kept to
measure that agreement (bench/bench_frontend.py, tests): power spectrum of a
Hann-windowed STFT, an HTK-scale triangular mel filterbank, then
``(log(mel + 1e-6) - LOG_OFFSET) / LOG_SCALE``. The fixed affine maps speech at ordinary
levels to roughly [-3, 3], which trains faster than raw log values (about -14 to +5) and
costs nothing at run time: it is part of the front end, before the int8 input. Frames
are centred (reflect padding), so ``N`` samples give ``1 + N // hop_length`` frames: 1 s
at 16 kHz is 101 frames.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from tinygen.audio.frontend import (
    SILENCE_Q,
    FrontendConfig,
    FrontendTables,
    dequantize,
    frontend_tables,
)
from tinygen.audio.frontend import features as frontend_features
from tinygen.speech.config import ConformerConfig

LOG_FLOOR = 1e-6
LOG_OFFSET = -4.0
LOG_SCALE = 4.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int,
                   f_min: float = 0.0, f_max: float | None = None) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) triangular filters on the HTK mel scale, peak 1."""
    f_max = sample_rate / 2 if f_max is None else f_max
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)  # (bins,)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]  # (n_mels,) each
    up = (freqs[:, None] - lower[None, :]) / (centre - lower)[None, :]
    down = (upper[None, :] - freqs[:, None]) / (upper - centre)[None, :]
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


class LogMel(torch.nn.Module):
    """(B, samples) float waveform in [-1, 1] -> (B, frames, n_mels) float log-mel.

    The float definition, centred frames; not what a model is trained on (that is
    :func:`frontend_logmel`)."""

    def __init__(self, cfg: ConformerConfig) -> None:
        super().__init__()
        self.n_fft = cfg.n_fft
        self.hop = cfg.hop_length
        self.win = cfg.win_length
        self.register_buffer("window", torch.hann_window(cfg.win_length, periodic=True))
        fb = mel_filterbank(cfg.n_fft, cfg.n_mels, cfg.sample_rate)
        self.register_buffer("fbank", torch.from_numpy(fb))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wave, self.n_fft, hop_length=self.hop, win_length=self.win,
                          window=self.window, center=True, pad_mode="reflect",
                          return_complex=True)  # (B, bins, frames)
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(power.transpose(1, 2), self.fbank)  # (B, frames, n_mels)
        return (torch.log(mel + LOG_FLOOR) - LOG_OFFSET) / LOG_SCALE


@functools.lru_cache(maxsize=8)
def _tables(fcfg: FrontendConfig) -> FrontendTables:
    return frontend_tables(fcfg)


def to_pcm16(wave: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> int16 PCM (rounded, clipped); int16 passes through.

    A 16-bit file read as float32 (``x / 32768``) comes back exactly."""
    wave = np.asarray(wave)
    if wave.dtype == np.int16:
        return wave
    return np.clip(np.round(wave.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def frontend_logmel(wave: np.ndarray, cfg: ConformerConfig) -> np.ndarray:
    """(samples,) int16 PCM, or float in [-1, 1] -> (frames, n_mels) float32.

    The dequantized int8 output of the integer front end: streaming framing (``N`` samples
    give ``1 + (N - win) // hop`` frames, none below one window)."""
    q = frontend_features(to_pcm16(wave), _tables(FrontendConfig.of(cfg)))
    return dequantize(q)


def silence_value() -> float:
    """The feature value of digital silence: the front end's output for all-zero PCM."""
    return float(dequantize(np.array([SILENCE_Q], dtype=np.int8))[0])


def num_frames(samples: int, hop_length: int) -> int:
    return 1 + samples // hop_length


def samples_for_frames(frames: int, hop_length: int) -> int:
    return max(0, (frames - 1) * hop_length)


def seconds_to_frames(seconds: float, cfg: ConformerConfig) -> int:
    return num_frames(math.floor(seconds * cfg.sample_rate), cfg.hop_length)
