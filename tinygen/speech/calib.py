"""Calibration and test inputs: fixed-length windows of front-end features.

A compiled model has one input shape: ``window_frames`` log-mel frames (1 s = 101 frames
at a 10 ms hop). Inputs come from a corpus (``--data DIR``: a ``tinygen data synth``
folder or a LibriSpeech root), cut to the window, or, without a corpus, from
deterministic speech-like signals: voiced harmonic stacks with a moving pitch, formant
bands, noise bursts, pauses and level changes. Those cover the value ranges log-mel
features of speech take, which is what calibration needs; real data calibrates better.
Both go through the one integer front end (:func:`frontend_logmel`), as the device does.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tinygen.errors import TinygenError
from tinygen.speech.config import MAX_WINDOW_MS, ConformerConfig
from tinygen.speech.features import frontend_logmel, silence_value


class CalibrationError(TinygenError):
    """No usable calibration input."""


def window_frames(cfg: ConformerConfig, window_ms: float) -> int:
    if not (math.isfinite(window_ms) and 0 < window_ms <= MAX_WINDOW_MS):
        raise CalibrationError(f"window {window_ms:g} ms",
                               f"use a --window-ms between 1 and {MAX_WINDOW_MS:g}")
    frames = 1 + round(window_ms * cfg.sample_rate / 1000.0) // cfg.hop_length
    if cfg.subsampled_frames(frames) < 1:  # 4x subsampling needs 7 frames
        shortest = math.ceil(6 * cfg.hop_length * 1000 / cfg.sample_rate)
        while cfg.subsampled_frames(1 + round(shortest * cfg.sample_rate / 1000.0)
                                    // cfg.hop_length) < 1:
            shortest += 1
        raise CalibrationError(f"a {window_ms:g} ms window gives no encoder frame",
                               f"use --window-ms {shortest} or more")
    return frames


def speechlike(samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A deterministic speech-like waveform in [-1, 1]."""
    t = np.arange(samples) / sample_rate
    out = np.zeros(samples)
    pos = 0
    while pos < samples:
        seg = int(rng.uniform(0.05, 0.3) * sample_rate)
        end = min(samples, pos + seg)
        tt = t[pos:end] - t[pos]
        kind = rng.choice(["voiced", "voiced", "noise", "pause"])
        if kind == "voiced":
            f0 = rng.uniform(90, 260) * (1 + rng.uniform(-0.2, 0.2) * tt / max(tt[-1], 1e-3))
            phase = 2 * np.pi * np.cumsum(f0) / sample_rate
            formants = rng.uniform([300, 900, 2200], [900, 2200, 3500])
            sig = np.zeros(end - pos)
            for h in range(1, 30):
                freq = f0 * h
                gain = sum(np.exp(-((freq - f) / 150.0) ** 2) for f in formants) + 0.05
                sig += gain / h * np.sin(h * phase)
        elif kind == "noise":
            sig = rng.standard_normal(end - pos)
            sig = np.convolve(sig, np.ones(rng.integers(1, 8)), mode="same")
        else:
            sig = 0.01 * rng.standard_normal(end - pos)
        env = np.sin(np.pi * np.linspace(0, 1, end - pos)) ** 0.5
        out[pos:end] = sig * env * rng.uniform(0.05, 1.0)
        pos = end
    out += rng.uniform(1e-4, 3e-3) * rng.standard_normal(samples)
    return (out / max(1.0, float(np.abs(out).max()))).astype(np.float32)


def synthetic_inputs(cfg: ConformerConfig, frames: int, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    samples = (frames - 1) * cfg.hop_length + cfg.win_length  # exactly `frames` frames
    return [frontend_logmel(speechlike(samples, cfg.sample_rate, rng), cfg)[None, :frames]
            for _ in range(n)]


def corpus_inputs(cfg: ConformerConfig, frames: int, n: int, seed: int, data: Path,
                  split: str) -> list[np.ndarray]:
    """Windows cut from the utterances of ``split`` (centred; short ones are padded with
    the features of silence)."""
    from tinygen.speech.data.dataset import UnusableAudio, load_split, read_audio

    utts = load_split(Path(data), split, cfg.vocab)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(utts))
    silence = silence_value()
    out: list[np.ndarray] = []
    for i in order:
        if len(out) == n:
            break
        try:
            wave = read_audio(utts[int(i)].path, cfg.sample_rate)
        except UnusableAudio:  # skipped, as in training
            continue
        feats = frontend_logmel(wave, cfg)
        if feats.shape[0] >= frames:
            start = (feats.shape[0] - frames) // 2
            window = feats[start:start + frames]
        else:
            window = np.full((frames, cfg.n_mels), silence, np.float32)
            off = (frames - feats.shape[0]) // 2
            window[off:off + feats.shape[0]] = feats
        out.append(window[None].astype(np.float32))
    return out


def inputs(cfg: ConformerConfig, frames: int, n: int, seed: int, data: Path | None = None,
           split: str = "train") -> list[np.ndarray]:
    """``n`` (1, frames, n_mels) float windows; the same arguments give the same arrays."""
    if n <= 0:
        raise CalibrationError("the calibration set is empty (0 inputs asked for)",
                               "use --calib 1 or more")
    if data is None:
        return synthetic_inputs(cfg, frames, n, seed)
    got = corpus_inputs(cfg, frames, n, seed, data, split)
    if not got:
        raise CalibrationError(f"the calibration set is empty: no readable audio in the "
                               f"'{split}' split of {data}", "check --data")
    return got
