"""tinygen.audio in Python: the integer front end against float oracles, CTC against
tinygen.speech.evaluate.greedy_decode, the gate against hand counts.

The C twins are compared with these byte for byte in test_audio_c.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests import audio_driver as D
from tinygen.audio import ctc, gate
from tinygen.audio import frontend as F
from tinygen.audio.emit import render_audio_tables
from tinygen.errors import ConfigError
from tinygen.speech.config import DEFAULT_VOCAB, ConformerConfig
from tinygen.speech.evaluate import greedy_decode
from tinygen.speech.features import LogMel, mel_filterbank, silence_value

TABLES = F.frontend_tables()


def float_features(pcm: np.ndarray, cfg: F.FrontendConfig,
                   window: np.ndarray | None = None) -> np.ndarray:
    """The float features of tinygen.speech.features on the streaming frames (float64),
    with the exact periodic Hann window or the one given."""
    x = pcm.astype(np.float64) / 32768.0
    count = cfg.frames_for(len(x))
    idx = np.arange(count)[:, None] * cfg.hop_length + np.arange(cfg.win_length)[None, :]
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.win_length) / cfg.win_length)
    hann = hann if window is None else window
    spec = np.fft.rfft(x[idx] * hann, n=cfg.n_fft, axis=1)
    mel = (np.abs(spec) ** 2) @ mel_filterbank(cfg.n_fft, cfg.n_mels, cfg.sample_rate
                                               ).astype(np.float64)
    return (np.log(mel + 1e-6) + 4.0) / 4.0


# ---------------------------------------------------------------- framing, streaming
@pytest.mark.parametrize("n", [0, 1, 399, 400, 401, 559, 560, 561, 16000])
def test_frame_count_follows_the_streaming_rule(n: int) -> None:
    want = 0 if n < 400 else 1 + (n - 400) // 160  # the rule, counted by hand
    assert F.features(np.zeros(n, np.int16), TABLES).shape == (want, 40)


def test_any_chunking_gives_the_frames_of_the_whole_signal() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(-3000, 3000, 9000).astype(np.int16)
    whole = F.features(x, TABLES)
    for seed in range(3):
        stream = F.FrontendStream(TABLES)
        parts = [stream.push(c) for c in D.random_chunks(x, np.random.default_rng(seed))]
        assert np.array_equal(np.concatenate(parts), whole)


def test_frame_k_depends_only_on_its_samples() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(-9000, 9000, 4000).astype(np.int16)
    q = F.features(x, TABLES)
    for k in (0, 5, len(q) - 1):
        assert np.array_equal(F.features(x[k * 160:k * 160 + 400], TABLES)[0], q[k])


# ------------------------------------------------------------ integer steps vs float
def test_integer_fft_matches_numpy_rfft() -> None:
    rng = np.random.default_rng(2)
    v = np.zeros((512, 6), np.int64)
    v[:400] = rng.integers(-(1 << 20), 1 << 20, (400, 6))
    v[:400, 0] = (32767 * TABLES.window.astype(np.int64) + 512) >> 10  # largest DC
    yr, yi = F.fft_split(v, TABLES)
    ref = 2 * np.fft.rfft(v.astype(np.float64), axis=0)  # Y = 2X
    err = np.abs(yr + 1j * yi - ref)
    assert err.max() < 64  # vs |Y| up to 2^28: Q30 twiddles, one rounding per stage
    assert max(np.abs(yr).max(), np.abs(yi).max()) < F.FFT_LIMIT


def test_log2_q16_against_math_log2() -> None:
    m = np.array([1, 2, 3, 5, 1000, 65535, 65536, 65537, 10**9, 2**40 + 12345, 2**61 - 1,
                  2**62 + 7], dtype=np.int64)
    got = F.log2_q16(m, TABLES) / 65536.0
    want = np.log2(m.astype(np.float64))
    assert np.abs(got - want).max() < 2.0 ** -13


def test_silence_is_the_float_silence_value() -> None:
    q = F.features(np.zeros(1600, np.int16), TABLES)
    want = round(silence_value() / F.SCALE) + F.ZERO_POINT  # from tinygen.speech.features
    assert F.SILENCE_Q == want == -126
    assert (q == want).all()


@pytest.mark.parametrize("which", range(len(D.edge_signals())))
def test_edge_signals_match_float_features(which: int) -> None:
    """Clipping, rails, full-scale noise, Nyquist, LSB noise: the integer arithmetic adds
    well under one int8 step to float arithmetic on the same (Q15) window."""
    x = D.edge_signals()[which]
    q = F.features(x, TABLES)
    q15 = TABLES.window.astype(np.float64) / 32768.0
    ref = np.clip(float_features(x, TABLES.cfg, q15), -2.5, 3.875)
    if len(q):
        assert np.abs(F.dequantize(q) - ref).max() < 0.02
        # against the exact Hann window: Q15 steps leak ~ -100 dB of a full-scale tone
        # or DC into far bands, which lifts those near the 1e-6 floor (docs/frontend.md)
        exact = np.clip(float_features(x, TABLES.cfg), -2.5, 3.875)
        assert np.abs(F.dequantize(q) - exact).max() < 0.15


def test_dequantized_features_track_the_torch_front_end_on_speech() -> None:
    """Against tinygen.speech.features.LogMel (torch.stft, centred frames): dropping the
    first 120 samples makes frame k cover the samples of its centred frame k + 2."""
    cfg = ConformerConfig()
    logmel = LogMel(cfg)
    diffs = []
    for x in D.speech(6, seed=3):
        q = F.features(x[120:], F.frontend_tables(cfg))
        with torch.no_grad():
            ref = logmel(torch.from_numpy(x.astype(np.float32) / 32768)[None])[0].numpy()
        n = min(len(q), ref.shape[0] - 4)  # leave out the reflect-padded last frames
        d = np.abs(F.dequantize(q[:n]) - ref[2:2 + n])
        assert d.max() < 0.03  # about one int8 step (0.025)
        diffs.append(d.mean())
    assert np.mean(diffs) < 0.0075  # int8 rounding alone gives 0.025 / 4 = 0.00625


def test_tables_keep_headroom_for_other_shapes() -> None:
    for shape in [(8000, 256, 200, 80, 23), (16000, 1024, 1024, 320, 80),
                  (16000, 512, 512, 512, 64), (16000, 4, 4, 1, 2)]:
        t = F.frontend_tables(F.FrontendConfig(*shape))
        x = np.tile(np.r_[np.full(3, 32767), np.full(3, -32768)], 800).astype(np.int16)
        assert F.features(x, t).shape[1] == shape[4]


@pytest.mark.parametrize(("field", "value"), [("n_fft", 500), ("win_length", 1024),
                                               ("hop_length", 401), ("n_mels", 300)])
def test_bad_front_end_shapes_are_refused(field: str, value: int) -> None:
    cfg = F.FrontendConfig(**{field: value})
    with pytest.raises(ConfigError, match=field):
        F.frontend_tables(cfg)


def test_rendered_tables_carry_the_banner_and_every_value() -> None:
    files = render_audio_tables(TABLES, DEFAULT_VOCAB, model_name="m")
    c = files["tg_audio_tables.c"]
    assert c.startswith("/*") and "Generated by tinygen" in c and "Do not edit" in c
    assert f".log_floor = (uint64_t)INT64_C({TABLES.log_floor})" in c
    assert ".n_mels = 40," in c and "tg_audio_vocab" in files["tg_audio_tables.h"]


# ------------------------------------------------------------------------------ CTC
def _logits(rng: np.random.Generator, frames: int, vocab: int) -> np.ndarray:
    """Runs of one peak symbol, blanks, and many exact ties (a narrow value range)."""
    x = rng.integers(-3, 3, (frames, vocab)).astype(np.int8)
    peaks = np.repeat(rng.integers(0, vocab, frames // 3 + 1), 3)[:frames]
    x[np.arange(frames), peaks] += rng.integers(0, 4, frames).astype(np.int8)
    return x


def test_ctc_text_equals_greedy_decode_and_chunking_does_not_matter() -> None:
    rng = np.random.default_rng(4)
    for _ in range(30):
        x = _logits(rng, int(rng.integers(0, 120)), len(DEFAULT_VOCAB))
        tokens = ctc.decode(x)
        assert ctc.text(tokens, DEFAULT_VOCAB) == greedy_decode(x, DEFAULT_VOCAB)
        dec = ctc.CtcDecoder()
        cuts = np.sort(rng.integers(0, len(x) + 1, 4))
        chunked = [t for part in np.split(x, cuts) for t in dec.push(part)] + dec.flush()
        assert chunked == tokens


def test_ctc_timestamps_by_hand() -> None:
    best = [0, 3, 3, 0, 3, 5, 5, 5, 0, 0, 4]  # blank a a blank a c c c blank blank b
    x = np.full((len(best), 6), -5, np.int8)
    x[np.arange(len(best)), best] = 7
    x[1, 4] = 7  # a tie at frame 1 between 3 and 4: the lowest index (3) wins
    assert ctc.decode(x) == [ctc.Token(3, 1, 2), ctc.Token(3, 4, 4), ctc.Token(5, 5, 7),
                             ctc.Token(4, 10, 10)]


# ----------------------------------------------------------------------------- gate
def test_gate_level_against_float_log2() -> None:
    rng = np.random.default_rng(5)
    for scale in (0, 1, 10, 300, 3000, 32767):
        x = np.clip(rng.standard_normal(1600) * scale, -32768, 32767).astype(np.int16)
        m = int((x.astype(np.int64) ** 2).sum()) // len(x) + 1
        assert abs(gate.level(x) / 16 - math.log2(m)) < 1 / 16 + 0.09  # 4-bit mantissa
    assert gate.level(np.full(10, -32768, np.int16)) == 16 * 30  # 2^30 + 1


def test_gate_skips_silence_runs_on_a_burst_and_hangs_over() -> None:
    g = gate.Gate(gate.GateConfig(threshold=48, rise=1, hangover=2, min_level=96,
                                  init_floor=96))
    quiet = np.zeros(1600, np.int16)
    noise = (np.random.default_rng(6).standard_normal(1600) * 20).astype(np.int16)
    loud = (np.random.default_rng(7).standard_normal(1600) * 3000).astype(np.int16)
    runs = [g.push(c) for c in [quiet, quiet, noise, noise, loud, loud, noise, noise, noise,
                                quiet]]
    # levels (hand-checked by test_gate_level_against_float_log2): quiet 0, noise 136,
    # loud 368. The floor stays at min_level 96, so noise (< 96 + 48) never runs; loud
    # runs, and two hangover chunks follow it.
    assert runs == [False, False, False, False, True, True, True, True, False, False]
