"""The log-mel front end against a direct numpy DFT, and basic signal sanity."""

from __future__ import annotations

import numpy as np
import torch

from tinygen.speech.config import load_preset
from tinygen.speech.features import (
    LOG_FLOOR,
    LOG_OFFSET,
    LOG_SCALE,
    LogMel,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    num_frames,
)


def naive_logmel(wave: np.ndarray, n_fft: int, hop: int, win: int, fb: np.ndarray
                 ) -> np.ndarray:
    """Centred frames, reflect padding, periodic Hann, |DFT|^2 by an explicit sum."""
    pad = n_fft // 2
    x = np.pad(wave.astype(np.float64), pad, mode="reflect")
    window = np.zeros(n_fft)
    off = (n_fft - win) // 2
    window[off:off + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    n = np.arange(n_fft)
    k = np.arange(n_fft // 2 + 1)
    basis = np.exp(-2j * np.pi * np.outer(k, n) / n_fft)  # (bins, n_fft)
    frames = [x[i * hop:i * hop + n_fft] * window for i in range(1 + len(wave) // hop)]
    power = np.abs(np.stack(frames) @ basis.T) ** 2  # (frames, bins)
    return (np.log(power @ fb + LOG_FLOOR) - LOG_OFFSET) / LOG_SCALE


def test_matches_direct_dft() -> None:
    cfg = load_preset("mcu-tiny")
    rng = np.random.default_rng(0)
    wave = rng.uniform(-0.5, 0.5, 4000).astype(np.float32)
    fb = mel_filterbank(cfg.n_fft, cfg.n_mels, cfg.sample_rate)
    ref = naive_logmel(wave, cfg.n_fft, cfg.hop_length, cfg.win_length, fb)
    got = LogMel(cfg)(torch.from_numpy(wave)[None])[0].numpy()
    assert got.shape == (num_frames(4000, cfg.hop_length), cfg.n_mels) == ref.shape
    np.testing.assert_allclose(got, ref, atol=5e-4)


def test_sine_lights_the_right_mel_band() -> None:
    cfg = load_preset("mcu-tiny")
    t = np.arange(cfg.sample_rate) / cfg.sample_rate
    feats = LogMel(cfg)(torch.from_numpy(np.sin(2 * np.pi * 1000 * t).astype(np.float32))[None])
    assert feats.shape == (1, 101, cfg.n_mels)
    peak = int(feats[0, 50].argmax())
    centres = np.linspace(hz_to_mel(0), hz_to_mel(cfg.sample_rate / 2), cfg.n_mels + 2)[1:-1]
    assert peak == int(np.abs(centres - hz_to_mel(1000)).argmin())


def test_filterbank_covers_the_band_once() -> None:
    fb = mel_filterbank(512, 40, 16000)
    assert fb.shape == (257, 40)
    assert fb.max() <= 1.0 and (fb.sum(axis=0) > 0).all()  # no empty filter
    # Between the first and the last centre, adjacent triangles sum to 1.
    freqs = np.linspace(0, 8000, 257)
    centres = mel_to_hz(np.linspace(hz_to_mel(0), hz_to_mel(8000), 42))[1:-1]
    inner = (freqs >= centres[0]) & (freqs <= centres[-1])
    np.testing.assert_allclose(fb[inner].sum(axis=1), 1.0, atol=1e-5)
