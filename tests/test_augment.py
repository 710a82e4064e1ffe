"""Waveform augmentation: shapes, dtypes, seeds, and each effect measured on tones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tinygen.speech.data.augment import (
    KINDS,
    add_noise,
    fill_room_tone,
    load_noise,
    noise_tail,
    random_augment,
    reverb,
    room_impulse_response,
    room_tone,
    speed,
    telephone,
    vtlp,
    vtlp_warp,
)

SR = 16000


def sine(hz: float, seconds: float = 1.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(np.asarray(x, np.float64) * np.hanning(len(x))))
    return float(np.argmax(spec) * SR / len(x))


def power_db(x: np.ndarray) -> float:
    x = np.asarray(x, np.float64)
    return 10 * np.log10(np.mean(x**2) + 1e-30)


def speechlike(seed: int, seconds: float = 1.0) -> np.ndarray:
    """Noise bursts shaped like syllables (a deterministic stand-in for speech)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    env = np.clip(np.sin(np.pi * 4 * np.arange(n) / SR), 0, None)
    return (0.2 * env * rng.standard_normal(n)).astype(np.float32)


def test_telephone_keeps_the_band_and_removes_the_rest() -> None:
    for hz, kept in ((100, False), (1000, True), (3000, True), (6000, False)):
        y = telephone(sine(hz), companding=False)
        loss = power_db(sine(hz)) - power_db(y)
        assert (abs(loss) < 0.1) if kept else (loss > 40), (hz, loss)
    x = (sine(1000) * 32767).astype(np.int16)
    y = telephone(x)  # mu-law: 8-bit quantization noise, about 35-40 dB below a loud tone
    assert y.dtype == np.int16 and y.shape == x.shape
    err = y.astype(np.float64) - telephone(x, companding=False).astype(np.float64)
    assert 25 < power_db(x / 32768) - power_db(err / 32768) < 50
    np.testing.assert_array_equal(y, telephone(x))  # no randomness


def test_speed_scales_length_and_frequency() -> None:
    x = sine(440)
    y = speed(x, 1.25)
    assert len(y) == round(len(x) / 1.25) and y.dtype == np.float32
    assert peak_hz(y) == pytest.approx(550, abs=2)
    assert power_db(y) == pytest.approx(power_db(x), abs=0.1)
    slow = speed((x * 32767).astype(np.int16), 0.8)
    assert slow.dtype == np.int16 and len(slow) == 20000
    assert peak_hz(slow) == pytest.approx(352, abs=2)


def test_vtlp_moves_a_tone_by_the_warp_and_keeps_length() -> None:
    nyq = SR / 2
    assert vtlp_warp(np.array([1000.0, nyq]), 1.1, nyq).tolist() == pytest.approx([1100, nyq])
    x = sine(1000)
    for alpha in (0.9, 1.1):
        y = vtlp(x, alpha)
        assert len(y) == len(x)
        assert peak_hz(y) == pytest.approx(1000 * alpha, abs=8)
        assert power_db(y) == pytest.approx(power_db(x), abs=0.01)
    same = vtlp(x, 1.0)  # the identity warp resynthesizes the input
    inner = slice(1000, len(x) - 1000)
    assert np.max(np.abs(same[inner] - x[inner])) < 1e-3
    s = speechlike(1)
    assert np.array_equal(vtlp(s, 1.07), vtlp(s, 1.07))


def schroeder_rt60(h: np.ndarray) -> float:
    """RT60 from the backward-integrated energy decay, fitted between -5 and -25 dB."""
    edc = np.cumsum((h**2)[::-1])[::-1]
    db = 10 * np.log10(edc / edc[0])
    idx = np.where((db <= -5) & (db >= -25))[0]
    slope = np.polyfit(idx / SR, db[idx], 1)[0]  # dB per second
    return -60.0 / slope


def test_room_impulse_response_decays_at_its_rt60() -> None:
    for rt60 in (0.3, 0.7):
        h = room_impulse_response(np.random.default_rng(0), rt60, direct_db=-10)
        assert h[0] == 1.0 and len(h) == int(1.2 * rt60 * SR)
        assert schroeder_rt60(h) == pytest.approx(rt60, rel=0.15)
        bare = room_impulse_response(np.random.default_rng(0), rt60, direct_db=6,
                                     reflections=0)
        assert 10 * np.log10(np.sum(bare[1:] ** 2)) == pytest.approx(-6, abs=1e-9)  # DRR


def test_reverb_is_seeded_keeps_level_and_smears_an_impulse() -> None:
    x = speechlike(2)
    a = reverb(x, np.random.default_rng(7))
    b = reverb(x, np.random.default_rng(7))
    c = reverb(x, np.random.default_rng(8))
    assert a.shape == x.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert power_db(a) == pytest.approx(power_db(x), abs=0.01)
    click = np.zeros(SR, np.float32)
    click[100] = 0.5
    wet = reverb(click, np.random.default_rng(3), rt60=(0.5, 0.5))
    energy = np.cumsum(wet.astype(np.float64) ** 2)
    assert energy[100 + int(0.05 * SR)] < 0.95 * energy[-1]  # energy arrives long after
    assert np.max(np.abs(wet[:100])) < 1e-12  # and none before the click (FFT round-off)
    xi = (x * 32767).astype(np.int16)
    assert reverb(xi, np.random.default_rng(7)).dtype == np.int16


def test_add_noise_hits_the_snr() -> None:
    x = speechlike(3)
    noise = np.random.default_rng(4).standard_normal(3000).astype(np.float32)  # looped
    for snr in (5.0, 20.0):
        y = add_noise(x, noise, snr, np.random.default_rng(0))
        added = y.astype(np.float64) - x
        assert power_db(x) - power_db(added) == pytest.approx(snr, abs=0.01)
    np.testing.assert_array_equal(add_noise(x, noise, 10, np.random.default_rng(1)),
                                  add_noise(x, noise, 10, np.random.default_rng(1)))
    with pytest.raises(ValueError, match="silent"):
        add_noise(x, np.zeros(10), 10, np.random.default_rng(0))


def test_load_noise_mixes_channels_and_resamples(tmp_path: Path) -> None:
    t = np.arange(8000) / 8000
    stereo = np.stack([0.2 * np.sin(2 * np.pi * 300 * t), 0.2 * np.sin(2 * np.pi * 300 * t)], 1)
    sf.write(str(tmp_path / "n.wav"), stereo, 8000, subtype="PCM_16")
    x = load_noise(tmp_path / "n.wav")
    assert x.dtype == np.float32 and len(x) == 16000
    assert peak_hz(x) == pytest.approx(300, abs=2)
    assert power_db(x) == pytest.approx(10 * np.log10(0.02), abs=0.05)  # 0.2 amplitude


def test_random_augment_is_seeded_and_sane() -> None:
    x = (speechlike(5) * 32767).astype(np.int16)
    noises = [np.random.default_rng(6).standard_normal(8000)]
    outs = [random_augment(x, np.random.default_rng(s), noises=noises) for s in range(6)]
    again = [random_augment(x, np.random.default_rng(s), noises=noises) for s in range(6)]
    for y, z in zip(outs, again, strict=True):
        assert y.dtype == np.int16 and np.array_equal(y, z)
        assert 0.85 * len(x) <= len(y) <= 1.15 * len(x)
        assert abs(power_db(y / 32768) - power_db(x / 32768)) < 6
    assert len({y.tobytes() for y in outs}) == 6


def test_random_augment_keeps_only_the_kinds_asked_for() -> None:
    """kinds=(): the input as it was; kinds={"telephone"}: exactly telephone() where the
    chain's fourth coin (speed, VTLP, reverb, telephone) falls under 0.15, else the input;
    every kind: the chain as before."""
    x = (speechlike(7) * 32767).astype(np.int16)
    noises = [np.random.default_rng(8).standard_normal(8000)]
    hits = 0
    for s in range(40):
        assert np.array_equal(random_augment(x, np.random.default_rng(s), kinds=()), x)
        coins = np.random.default_rng(s).random(4)
        got = random_augment(x, np.random.default_rng(s), noises=noises, kinds={"telephone"})
        want = telephone(x) if coins[3] < 0.15 else x
        assert np.array_equal(got, want)
        hits += int(coins[3] < 0.15)
        assert np.array_equal(random_augment(x, np.random.default_rng(s), noises=noises),
                              random_augment(x, np.random.default_rng(s), noises=noises,
                                             kinds=KINDS))
    assert 0 < hits < 40


def quiet_then_loud(seed: int) -> np.ndarray:
    """0.5 s of faint hiss (amplitude 0.001), 1 s of syllable bursts over that hiss, then
    0.5 s of the hiss again: a recording with a room tone to find."""
    rng = np.random.default_rng(seed)
    hiss = (0.001 * rng.standard_normal(2 * SR)).astype(np.float32)
    hiss[SR // 2:SR // 2 + SR] += speechlike(seed)
    return hiss


def test_room_tone_is_the_quietest_quarter_of_the_frames_in_order() -> None:
    x = quiet_then_loud(1)
    tone = room_tone(x)
    assert tone.dtype == x.dtype and len(tone) == 25 * 320  # 100 frames of 20 ms, a quarter
    assert power_db(tone) == pytest.approx(power_db(0.001 * np.ones(1)), abs=0.5)
    frames = x.reshape(100, 320)
    picked = [next(i for i in range(100) if np.array_equal(frames[i], f))
              for f in tone.reshape(25, 320)]
    assert picked == sorted(picked)  # original order kept
    energy = np.mean(frames.astype(np.float64) ** 2, axis=1)
    rest = np.delete(energy, picked)
    assert energy[picked].max() <= rest.min()  # the quietest, whether in pauses or not
    short = x[:100]
    assert np.array_equal(room_tone(short), short)


def test_fill_room_tone_appends_only_background() -> None:
    x = quiet_then_loud(2)
    y = fill_room_tone(x, 3 * SR)
    assert len(y) == 3 * SR and np.array_equal(y[:len(x)], x)
    assert power_db(y[len(x):]) == pytest.approx(power_db(room_tone(x)), abs=0.5)
    assert np.array_equal(fill_room_tone(x, len(x) - 5), x)  # long enough already
    silent = np.zeros(SR, np.int16)
    z = fill_room_tone(silent, 2 * SR)
    assert z.dtype == np.int16 and len(z) == 2 * SR and not z.any()
    assert np.array_equal(fill_room_tone(x, 3 * SR), y)  # no randomness


def find(hay: np.ndarray, needle: np.ndarray) -> int:
    """Offset of ``needle`` as an exact slice of ``hay``, or -1."""
    for k in range(len(hay) - len(needle) + 1):
        if hay[k] == needle[0] and np.array_equal(hay[k:k + len(needle)], needle):
            return k
    return -1


def test_noise_tail_room_tone_keeps_the_speech_and_adds_background() -> None:
    x = (quiet_then_loud(3) * 32767).astype(np.int16)
    leads = []
    for s in range(8):
        y = noise_tail(x, np.random.default_rng(s))  # no noises: the room tone
        assert y.dtype == np.int16
        assert int(0.5 * SR) <= len(y) - len(x) <= 3 * SR
        k = find(y, x)
        assert 0 <= k <= 0.3 * (len(y) - len(x)) + 1
        leads.append(k)
        around = np.concatenate([y[:k], y[k + len(x):]]) / 32768
        assert power_db(around) < power_db(x / 32768) - 20
        assert np.array_equal(y, noise_tail(x, np.random.default_rng(s)))
    assert len(set(leads)) > 1
    capped = noise_tail(x, np.random.default_rng(0), max_samples=len(x) + 100)
    assert len(capped) == len(x) + 100
    assert np.array_equal(noise_tail(x, np.random.default_rng(0), max_samples=len(x) - 1), x)


def test_noise_tail_noise_sits_under_and_around_the_speech_at_the_snr() -> None:
    x = speechlike(4)
    noise = np.random.default_rng(9).standard_normal(5000).astype(np.float32)
    took_noise = 0
    for s in range(12):
        rng = np.random.default_rng(s)
        y = noise_tail(x, rng, noises=[noise], max_samples=4 * SR)
        extra = len(y) - len(x)
        assert int(0.5 * SR) <= extra <= 3 * SR
        if find(y.astype(np.float32), x) >= 0:
            continue  # room tone of this clip: the speech untouched
        took_noise += 1
        best = min(range(int(0.3 * extra) + 2),
                   key=lambda k: power_db(y[k:k + len(x)] - x))
        added = y.astype(np.float64).copy()
        added[best:best + len(x)] -= x
        snr = power_db(x) - power_db(added)
        assert 10 - 0.5 <= snr <= 30 + 0.5
    assert took_noise > 0
    silent = np.zeros(SR, np.float32)  # no room tone to loop: always the noise
    for s in range(4):
        y = noise_tail(silent, np.random.default_rng(s), noises=[noise])
        assert len(y) > SR and np.abs(y).max() > 0
    with pytest.raises(ValueError, match="silent"):
        noise_tail(silent, np.random.default_rng(0), noises=[np.zeros(10)])
