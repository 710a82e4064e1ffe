"""Feature files (`tinygen data features`), training from them, and streaming training that
starts where a stream starts (the silence lead)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_train import TINY
from tinygen.audio.frontend import FrontendConfig
from tinygen.speech.checkpoint import load_checkpoint, read_checkpoint
from tinygen.speech.data import DataError, Utterance
from tinygen.speech.data.dataset import (
    SpeechDataset,
    load_split,
    read_audio,
    stream_window,
)
from tinygen.speech.data.features import decode, encode, read_store, sample_utterances
from tinygen.speech.data.synth import synthesize
from tinygen.speech.evaluate import Tally, greedy_decode
from tinygen.speech.features import _tables, frontend_features, silence_value, to_pcm16
from tinygen.speech.model import build_model
from tinygen.speech.streaming import receptive_steps, stream
from tinygen.speech.train import TrainError, TrainOptions, dev_scores, fit, stream_lead

STREAM = replace(TINY, chunk_frames=2, left_chunks=2).validate()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("store") / "corpus"
    synthesize(out, 20, seed=7, jobs=2, progress=False)  # 16 train, 2 dev, 2 test
    return out


def features_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tinygen", "data", "features", *args,
                           "--quiet"], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def store_file(corpus: Path) -> Path:
    out = corpus.parent / "corpus.feat"
    run = features_cli(str(corpus), "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "train 16, dev 2 utterances of 18" in run.stdout
    return out


def options(data: Path, out: Path, **kw: object) -> TrainOptions:
    base = TrainOptions(data=data, out=out, steps=4, batch=4, lr=3e-3, warmup=1,
                        eval_every=2, threads=1, progress=False, window_prob=0.5)
    return replace(base, **kw)  # type: ignore[arg-type]


def test_encoding_round_trips_every_byte() -> None:
    rng = np.random.default_rng(3)
    frames = [rng.integers(-128, 128, (t, 5), dtype=np.int8) for t in (1, 7, 40)]
    frames.append(np.full((3, 5), -128, np.int8))
    back = decode(encode(frames), [len(f) for f in frames], 5)
    assert all(np.array_equal(a, b) for a, b in zip(frames, back, strict=True))
    with pytest.raises(DataError, match="damaged"):
        decode(encode(frames), [1, 7, 40], 5)


def test_store_holds_the_front_end_codes_and_transcripts(corpus: Path,
                                                         store_file: Path) -> None:
    store = read_store(store_file)
    assert store.frontend == {"sample_rate": 16000, "n_fft": 512, "win_length": 400,
                              "hop_length": 160, "n_mels": 40}
    tables = _tables(FrontendConfig())
    for split in ("train", "dev"):
        utts = load_split(corpus, split, TINY.vocab)
        stored = store.split(split)
        assert [(u.uid, u.text) for u in stored] == [(u.uid, u.text) for u in utts]
        for u, s in zip(utts, stored, strict=True):
            want = frontend_features(to_pcm16(read_audio(u.path, 16000)), tables)
            assert np.array_equal(store.codes[u.uid], want)
            assert s.duration == u.duration
    assert store.split("test") == []
    assert store.header["corpus"] == "corpus" and "corpus_json" in store.header


def test_training_from_the_store_equals_training_from_the_audio(corpus: Path,
                                                                store_file: Path,
                                                                tmp_path: Path) -> None:
    fit(TINY, options(corpus, tmp_path / "a.pt"))
    fit(TINY, options(store_file, tmp_path / "b.pt"))
    a, b = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    assert (read_checkpoint(tmp_path / "a.pt")["meta"]["dev_cer"]
            == read_checkpoint(tmp_path / "b.pt")["meta"]["dev_cer"])


def test_store_refusals(corpus: Path, store_file: Path, tmp_path: Path) -> None:
    before = store_file.read_bytes()
    run = features_cli(str(corpus), "--out", str(store_file))
    assert run.returncode == 2 and "already exists" in run.stderr
    assert store_file.read_bytes() == before  # nothing lost
    run = features_cli(str(corpus), "--out", str(tmp_path / "x.feat"), "--sample", "synth")
    assert run.returncode == 2 and "SOURCE=SHARE" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    run = features_cli(str(corpus), "--out", str(tmp_path / "x.feat"), "--sample", "nope=0.5")
    assert run.returncode == 2 and "names no source" in run.stderr
    assert not (tmp_path / "x.feat").exists()
    with pytest.raises(TrainError, match="--augment needs the audio"):
        fit(TINY, options(store_file, tmp_path / "c.pt", augment=0.5))
    other = replace(TINY, n_mels=32).validate()
    with pytest.raises(TrainError, match=r"another front end than test-tiny \(n_mels\)"):
        fit(other, options(store_file, tmp_path / "c.pt"))
    junk = tmp_path / "junk.feat"
    junk.write_bytes(b"not a feature file")
    with pytest.raises(DataError, match="is not a tinygen feature file"):
        read_store(junk)
    with pytest.raises(TrainError, match="is not a torch device"):
        fit(TINY, options(store_file, tmp_path / "c.pt", device="cuda:x"))
    if not torch.cuda.is_available():
        with pytest.raises(TrainError, match="this torch sees no CUDA GPU"):
            fit(TINY, options(store_file, tmp_path / "c.pt", device="cuda"))
    with pytest.raises(TrainError, match="trains on cpu or cuda"):
        fit(TINY, options(store_file, tmp_path / "c.pt", device="meta"))
    assert not (tmp_path / "c.pt").exists()


def test_sampling_keeps_a_seeded_share_per_source() -> None:
    utts = [Utterance(f"{s}{i}", Path("x"), "a", 1.0, s) for s in "ab" for i in range(10)]
    kept = sample_utterances(utts, {"a": 0.3}, seed=1)
    assert sum(u.source == "a" for u in kept) == 3 and sum(u.source == "b" for u in kept) == 10
    assert kept == sample_utterances(utts, {"a": 0.3}, seed=1)
    assert kept != sample_utterances(utts, {"a": 0.3}, seed=2)
    assert [u.uid for u in kept] == sorted((u.uid for u in kept), key=lambda x: (x[0], int(x[1:])))


def test_stream_window_starts_speech_after_whole_chunks_of_silence() -> None:
    feats = torch.randn(3, 23, 40, generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([23, 9, 1])
    phases = set()
    for seed in range(20):
        out = stream_window(feats, lengths, torch.Generator().manual_seed(seed), 3, 8, 8)
        assert out.shape[1] % 8 == 0 and out.shape[1] >= 24 + 23
        for i, n in enumerate(lengths.tolist()):
            speech = (out[i] != silence_value()).any(dim=1).nonzero().flatten()
            start = int(speech[0])
            assert 24 <= start < 32  # after the lead, at a phase within one chunk
            phases.add(start - 24)
            assert torch.equal(out[i, start:start + n], feats[i, :n])
            assert bool((out[i, :start] == silence_value()).all())
            assert bool((out[i, start + n:] == silence_value()).all())
    assert len(phases) > 4


def test_streaming_dev_score_is_the_stepped_score(corpus: Path) -> None:
    """With a lead as long as the receptive field, the scored pass is stepping from the
    silence state: the dev CER that training reports is the CER a device gets."""
    torch.manual_seed(0)
    model = build_model(STREAM, seed=3).eval()
    ds = SpeechDataset(load_split(corpus, "train", STREAM.vocab)[:6], STREAM)
    lead = receptive_steps(STREAM)
    got = dev_scores(model, ds, lead=lead)
    tally = Tally()
    for i in range(len(ds)):
        item = ds[i]
        logits = stream(model, item.feats[None])[0]
        tally.add(item.text, greedy_decode(logits.numpy(), STREAM.vocab))
    assert got == {"cer": tally.cer, "wer": tally.wer}
    assert stream_lead(STREAM, 2560) == 32 and stream_lead(STREAM, 80) == 1
    assert stream_lead(STREAM, 0) == 0


def test_streaming_training_runs_on_the_silence_lead(store_file: Path,
                                                     tmp_path: Path) -> None:
    losses: list[float] = []
    meta = fit(STREAM, options(store_file, tmp_path / "s.pt", steps=3, stream_lead_ms=400),
               on_step=lambda step, loss: losses.append(loss))
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert meta["options"]["stream_lead_ms"] == 400
    run = subprocess.run([sys.executable, "-m", "tinygen", "train", "--data", str(store_file),
                          "--out", str(tmp_path / "t.pt"), "--init", str(tmp_path / "s.pt"),
                          "--steps", "1", "--batch", "2", "--threads", "1", "--quiet",
                          "--stream-lead-ms", "-1"], capture_output=True, text=True,
                         check=False)
    assert run.returncode == 2 and "--stream-lead-ms -1" in run.stderr
    assert json.loads(json.dumps(meta["options"]))["device"] == "cpu"
