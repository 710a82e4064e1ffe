"""Training sees the device's features: the one integer front end, and seeded augmentation.

The oracle for the features is the C front end's contract as the Python reference states it
(tinygen.audio.frontend.features on the file's own int16 samples, which the C equals byte for
byte in tests/test_audio_c.py): whatever the dataset trains on must quantize back to exactly
those bytes.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import assert_one_line_error, run_main
from tinygen.audio import frontend as F
from tinygen.speech.config import load_preset
from tinygen.speech.data import Utterance
from tinygen.speech.data.dataset import Example, SpeechDataset
from tinygen.speech.features import silence_value
from tinygen.speech.train import BatchPlan, _StepBatches

CFG = load_preset("mcu-tiny")


def write_wav(path: Path, pcm: np.ndarray, rate: int = 16000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


@pytest.fixture(scope="module")
def utterances(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Utterance, np.ndarray]]:
    root = tmp_path_factory.mktemp("feats")
    rng = np.random.default_rng(11)
    out = []
    for k, n in enumerate([400, 401, 3217, 16000, 23456]):
        t = np.arange(n) / 16000
        sig = 8000 * np.sin(2 * np.pi * (200 + 150 * k) * t) + 1500 * rng.standard_normal(n)
        if k == 4:
            sig *= 6  # clips at full scale
        pcm = np.clip(np.round(sig), -32768, 32767).astype(np.int16)
        path = root / f"u{k}.wav"
        write_wav(path, pcm)
        out.append((Utterance(uid=f"u{k}", path=path, text="yes"), pcm))
    return out


def test_dataset_features_are_the_integer_front_end(
        utterances: list[tuple[Utterance, np.ndarray]]) -> None:
    ds = SpeechDataset([u for u, _ in utterances], CFG)
    tables = F.frontend_tables(F.FrontendConfig.of(CFG))
    checked = 0
    for i, (_, pcm) in enumerate(utterances):
        item = ds[i]
        want = F.features(pcm, tables)
        if CFG.subsampled_frames(len(want)) < 1:
            assert not isinstance(item, Example)  # too short for one encoder frame
            continue
        assert isinstance(item, Example)
        assert item.feats.shape == (len(want), CFG.n_mels)
        q = np.round(item.feats.numpy() / F.SCALE) + F.ZERO_POINT
        np.testing.assert_array_equal(q.astype(np.int64), want.astype(np.int64))
        checked += 1
    assert checked >= 3


def test_silence_is_the_front_end_output_for_zeros() -> None:
    q = F.features(np.zeros(4000, np.int16), F.frontend_tables(F.FrontendConfig.of(CFG)))
    assert (q == F.SILENCE_Q).all()
    assert silence_value() == pytest.approx((F.SILENCE_Q - F.ZERO_POINT) * F.SCALE, abs=1e-6)


def shift(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A stand-in augmentation whose effect is easy to see: a random gain."""
    return wave * float(rng.uniform(0.1, 0.5))


def test_augmentation_is_a_pure_function_of_the_draw(
        utterances: list[tuple[Utterance, np.ndarray]]) -> None:
    utts = [u for u, _ in utterances]
    ds = SpeechDataset(utts, CFG, cache=True, augment=shift, augment_prob=1.0)
    clean = ds[3]
    a, b, c = ds[(7, 3)], ds[(7, 3)], ds[(8, 3)]
    assert isinstance(a, Example) and isinstance(b, Example) and isinstance(c, Example)
    assert isinstance(clean, Example)
    assert torch.equal(a.feats, b.feats)  # same draw, same features
    assert not torch.equal(a.feats, c.feats)  # another draw, another gain
    assert not torch.equal(a.feats, clean.feats)
    assert torch.equal(ds[3].feats, clean.feats)  # the cache keeps the clean item
    never = SpeechDataset(utts, CFG, augment=shift, augment_prob=0.0)
    assert torch.equal(never[(7, 3)].feats, clean.feats)


def test_step_batches_carry_draws_that_resume_identically() -> None:
    plan = BatchPlan([1.0] * 40, batch=4, world=1, seed=3)
    whole = list(_StepBatches(plan, 0, 6, 0, seed=3))
    resumed = list(_StepBatches(plan, 4, 6, 0, seed=3))
    assert resumed == whole[4:]
    assert [[i for _, i in b] for b in whole] == list(_StepBatches(plan, 0, 6, 0))
    draws = [d for b in whole for d, _ in b]
    assert len(set(draws)) == len(draws)


def test_train_refuses_bad_noise_options(tmp_path: Path) -> None:
    base = ("train", "--preset", "mcu-tiny", "--data", str(tmp_path), "--out",
            str(tmp_path / "m.pt"), "--steps", "1")
    noise = str(tmp_path / "n.wav")
    assert_one_line_error(run_main(*base, "--noise", noise), "--augment")
    assert_one_line_error(run_main(*base, "--augment", "0.5", "--noise", noise), "does not exist")
    assert_one_line_error(run_main(*base, "--augment", "1.5"), "--augment")
    assert_one_line_error(run_main(*base, "--augment", "0.5", "--augment-kinds", "speed,echo"),
                          "'echo'")
    assert_one_line_error(run_main(*base, "--augment-kinds", "speed"), "--augment P")
    assert_one_line_error(run_main(*base, "--augment", "0.5", "--augment-kinds", "noise"),
                          "--noise")
    assert_one_line_error(run_main(*base, "--noise-tail", "0.5"), "--augment P")
    assert_one_line_error(run_main(*base, "--augment", "0.5", "--noise-tail", "2"),
                          "--noise-tail")
    assert not (tmp_path / "m.pt").exists()


def test_augmented_run_saves_a_loadable_checkpoint_and_resumes(
        utterances: list[tuple[Utterance, np.ndarray]], tmp_path: Path) -> None:
    """--augment/--noise end to end: the options land in the checkpoint's meta as plain
    values (weights_only loading refuses a Path), and --resume continues the run."""
    import json
    from dataclasses import replace

    from tinygen.speech.checkpoint import read_checkpoint
    from tinygen.speech.config import ConformerConfig
    from tinygen.speech.train import TrainOptions, fit

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    lines = [json.dumps({"path": str(u.path), "text": "yes"}) for u, _ in utterances[2:]]
    (corpus / "train.jsonl").write_text("\n".join(lines) + "\n")
    noise = tmp_path / "noise.wav"
    write_wav(noise, np.random.default_rng(5).integers(-3000, 3000, 8000).astype(np.int16))
    tiny = ConformerConfig(name="test-tiny", d_model=16, n_heads=2, ff_dim=32, conv_kernel=3,
                           subsample_channels=4, block_order=(0,)).validate()
    opts = TrainOptions(data=corpus, out=tmp_path / "m.pt", steps=2, batch=2, lr=1e-3,
                        warmup=1, eval_every=1, threads=1, progress=False, augment=1.0,
                        noise=(noise,))
    fit(tiny, opts)
    meta = read_checkpoint(tmp_path / "m.pt")["meta"]
    assert meta["step"] == 2 and meta["options"]["noise"] == [str(noise)]
    fit(None, replace(opts, steps=3, resume=True))
    assert read_checkpoint(tmp_path / "m.pt")["meta"]["step"] == 3


def test_noise_tail_follows_the_chain_and_stays_in_the_window() -> None:
    """--noise-tail draws after the augmentation chain: at 0 the chain is what it was; at 1
    every augmented item ends up longer, by the tail, and never past --window-ms."""
    from tinygen.speech.data.augment import random_augment
    from tinygen.speech.train import TrainOptions, _wave_augment

    rng = np.random.default_rng(11)
    wave = (0.2 * rng.standard_normal(16000)).astype(np.float32)
    plain = _wave_augment(TrainOptions(data=Path("."), out=Path("m.pt"), augment=0.5), 16000)
    tail = _wave_augment(TrainOptions(data=Path("."), out=Path("m.pt"), augment=0.5,
                                      noise_tail=1.0, window_ms=2000.0), 16000)
    assert plain is not None and tail is not None
    for s in range(6):
        chain = random_augment(wave, np.random.default_rng(s), 16000, [])
        assert np.array_equal(plain(wave, np.random.default_rng(s)), chain)
        longer = tail(wave, np.random.default_rng(s))
        assert len(chain) < len(longer) <= 32000
