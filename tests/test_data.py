"""Speech data: the espeak-ng corpus, the LibriSpeech loader, the Dataset and its skips."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import CliResult, assert_one_line_error
from tinygen.speech.config import DEFAULT_VOCAB, load_preset
from tinygen.speech.data import SPLITS, DataError, normalize_text
from tinygen.speech.data.dataset import (
    DataWarning,
    Example,
    SkipLog,
    Skipped,
    SpeechDataset,
    collate,
    load_split,
    read_manifest,
    spec_augment,
)
from tinygen.speech.data.librispeech import read_librispeech
from tinygen.speech.data.synth import SAMPLE_RATE, Plan, find_tools, speak, synthesize
from tinygen.speech.data.words import phrase, vocabulary

N_UTTERANCES = 8  # 6 train, 1 dev, 1 test


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "corpus"
    synthesize(out, N_UTTERANCES, seed=3, jobs=2, progress=False)
    return out


def manifest(root: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (root / f"{split}.jsonl").read_text().splitlines()]


def test_word_lists_fit_the_vocabulary() -> None:
    words = vocabulary()
    assert 250 <= len(words) <= 600
    assert set("".join(words)) <= set(DEFAULT_VOCAB[2:])  # letters and apostrophe
    rng = np.random.default_rng(0)
    for _ in range(200):
        text = phrase(rng)
        assert text and normalize_text(text, DEFAULT_VOCAB) == text
        assert set(text.split()) <= words


def test_synth_manifest_and_audio(corpus: Path) -> None:
    meta = json.loads((corpus / "corpus.json").read_text())
    assert meta["utterances"] == {"train": 6, "dev": 1, "test": 1}
    assert sorted(p.name for p in corpus.iterdir()) == [
        "corpus.json", "dev.jsonl", "test.jsonl", "train.jsonl", "wav"]
    combos = {s: set(meta["combos"][s]) for s in SPLITS}
    assert not combos["train"] & combos["test"] and not combos["train"] & combos["dev"]
    for split in SPLITS:
        for entry in manifest(corpus, split):
            assert {"path", "text", "voice", "variant", "duration", "snr_db"} <= set(entry)
            assert f"{entry['voice']}+{entry['variant']}" in combos[split]
            assert normalize_text(entry["text"], DEFAULT_VOCAB) == entry["text"]
            with wave.open(str(corpus / entry["path"])) as w:
                assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (
                    SAMPLE_RATE, 1, 2)
                assert w.getnframes() / SAMPLE_RATE == pytest.approx(entry["duration"],
                                                                     abs=1e-4)
    # voices heard in test never occur in training
    train = {(e["voice"], e["variant"]) for e in manifest(corpus, "train")}
    assert not train & {(e["voice"], e["variant"]) for e in manifest(corpus, "test")}


def test_synth_is_deterministic(corpus: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    synthesize(again, N_UTTERANCES, seed=3, jobs=1, progress=False)
    files = sorted(p.relative_to(corpus) for p in corpus.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (corpus / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = tmp_path / "other"
    synthesize(other, N_UTTERANCES, seed=4, jobs=2, progress=False)
    assert (other / "train.jsonl").read_bytes() != (corpus / "train.jsonl").read_bytes()
    assert not list(tmp_path.glob(".*tmp-*"))  # no temp folders left behind


def test_noise_is_added_at_the_planned_snr(corpus: Path) -> None:
    tools = find_tools()
    for entry in manifest(corpus, "train")[:3]:
        plan = Plan(uid=entry["uid"], split="train", text=entry["text"],
                    voice=entry["voice"], variant=entry["variant"], speed=entry["speed"],
                    pitch=entry["pitch"], gap=entry["gap"], noise=entry["noise"],
                    snr_db=entry["snr_db"], peak=entry["peak"], lead_s=entry["lead_s"],
                    tail_s=entry["tail_s"], seed=0)
        clean = speak(tools, plan).astype(np.float64)
        speech = clean * entry["peak"] / np.abs(clean).max()
        mixed, rate = sf.read(str(corpus / entry["path"]), dtype="float64")
        assert rate == SAMPLE_RATE
        lead = int(entry["lead_s"] * SAMPLE_RATE)
        padded = np.zeros(len(mixed))
        padded[lead:lead + len(speech)] = speech
        assert np.abs(mixed[:lead]).max() > 0  # the leading silence holds noise
        scale = float(mixed @ padded / (padded @ padded))  # <= 1 if the mix was limited
        noise = mixed - scale * padded
        snr = 10 * np.log10(np.mean((scale * speech) ** 2) / np.mean(noise**2))
        assert abs(snr - entry["snr_db"]) < 0.5, (entry["noise"], snr, entry["snr_db"])


def run_cli(*args: str, env: dict[str, str] | None = None) -> CliResult:
    proc = subprocess.run([sys.executable, "-m", "tinygen", *args], capture_output=True,
                          text=True, env=env, timeout=120)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def test_missing_espeak_says_how_to_install(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path / "empty-bin"))
    res = run_cli("data", "synth", "--out", str(tmp_path / "c"), "--utterances", "3", env=env)
    assert_one_line_error(res, "espeak-ng", "apt-get install espeak-ng sox")
    assert not (tmp_path / "c").exists()


def test_synth_cli_refuses_to_overwrite(corpus: Path, tmp_path: Path) -> None:
    res = run_cli("data", "synth", "--out", str(corpus), "--utterances", "3")
    assert_one_line_error(res, "already exists", "--force")
    out = tmp_path / "c"
    res = run_cli("data", "synth", "--out", str(out), "--utterances", "3", "--seed", "1")
    assert res.returncode == 0, res.stderr
    assert "wrote 3 utterances" in res.stdout
    assert [len(manifest(out, s)) for s in SPLITS] == [1, 1, 1]


# ------------------------------------------------------------------- LibriSpeech
def write_flac(path: Path, seconds: float, rate: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(str(path), 0.3 * np.sin(2 * np.pi * 440 * t), rate, format="FLAC")


def librispeech_tree(root: Path) -> None:
    lines = {"train-clean-5/19/198": ["19-198-0000 HELLO, WORLD!", "19-198-0001 IT'S 3 PM"],
             "train-clean-5/26/495": ["26-495-0000 TURN ON THE LIGHTS"],
             "dev-clean/84/121": ["84-121-0000 GOOD-BYE"]}
    for folder, entries in lines.items():
        d = root / folder
        for line in entries:
            write_flac(d / f"{line.split()[0]}.flac", 0.5)
        spk, ch = folder.split("/")[1:]
        (d / f"{spk}-{ch}.trans.txt").write_text("\n".join(entries) + "\n")


def test_librispeech_loader(tmp_path: Path) -> None:
    root = tmp_path / "LibriSpeech"
    librispeech_tree(root)
    train = load_split(root, "train", DEFAULT_VOCAB)
    assert [(u.uid, u.text) for u in train] == [
        ("19-198-0000", "hello world"), ("19-198-0001", "it's pm"),
        ("26-495-0000", "turn on the lights")]
    assert all(u.duration == pytest.approx(0.5) and u.path.is_file() for u in train)
    assert [u.text for u in load_split(root, "dev", DEFAULT_VOCAB)] == ["good bye"]
    assert len(read_librispeech(root / "train-clean-5")) == 3
    with pytest.raises(DataError, match="no subset for split 'test'"):
        load_split(root, "test", DEFAULT_VOCAB)
    cfg = load_preset("mcu-tiny")
    item = SpeechDataset(train, cfg)[0]
    assert isinstance(item, Example)
    # the integer front end frames 0.5 s (8,000 samples) as 1 + (8000 - win) // hop
    assert item.feats.shape == (1 + (8000 - cfg.win_length) // cfg.hop_length, cfg.n_mels)
    assert "".join(cfg.vocab[int(i)] for i in item.labels) == "hello world"


# -------------------------------------------------------------- Dataset, skips
def test_corrupt_audio_is_skipped_counted_and_warned_once(corpus: Path, tmp_path: Path
                                                          ) -> None:
    good = corpus / manifest(corpus, "train")[0]["path"]
    (tmp_path / "garbage.wav").write_bytes(b"RIFF\x00\x00 this is not audio" * 20)
    (tmp_path / "truncated.wav").write_bytes(good.read_bytes()[:30])
    sf.write(str(tmp_path / "8k.wav"), np.zeros(8000), 8000)
    entries = [{"path": str(good), "text": "fine"}] + [
        {"path": name, "text": "bad"} for name in ("garbage.wav", "truncated.wav", "8k.wav",
                                                   "missing.wav")]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    ds = SpeechDataset(read_manifest(tmp_path / "m.jsonl", DEFAULT_VOCAB),
                       load_preset("mcu-tiny"))
    skips = SkipLog()
    with pytest.warns(DataWarning) as record:
        for _ in range(2):  # two epochs: the same bad files are counted once
            batch = collate([ds[i] for i in range(len(ds))])
            skips.add(batch.skipped)
            assert len(batch) == 1 and batch.texts == ["fine"]
    assert len(record) == 1 and "garbage.wav" in str(record[0].message)
    assert skips.count == 4
    reasons = {p.name: r for p, r in skips.reasons.items()}
    assert "8000 Hz" in reasons["8k.wav"]


def test_collate_pads_and_spec_augment_masks(corpus: Path) -> None:
    cfg = load_preset("mcu-tiny")
    ds = SpeechDataset(load_split(corpus, "train", cfg.vocab), cfg)
    items = [ds[i] for i in range(3)] + [Skipped(Path("x.wav"), "bad")]
    batch = collate(items)
    assert len(batch) == 3 and len(batch.skipped) == 1
    lens = [x.feats.shape[0] for x in items[:3] if isinstance(x, Example)]
    assert batch.feats.shape == (3, max(lens), cfg.n_mels)
    assert batch.feat_lens.tolist() == lens
    for b, n in enumerate(lens):
        assert torch.equal(batch.feats[b, :n], items[b].feats)  # type: ignore[union-attr]
        assert not batch.feats[b, n:].any()
        text = "".join(cfg.vocab[int(i)] for i in batch.labels[b, :batch.label_lens[b]])
        assert text == batch.texts[b]
    a = spec_augment(batch.feats, batch.feat_lens, torch.Generator().manual_seed(1),
                     freq_width=5, time_width=10)
    b2 = spec_augment(batch.feats, batch.feat_lens, torch.Generator().manual_seed(1),
                      freq_width=5, time_width=10)
    assert torch.equal(a, b2) and not torch.equal(a, batch.feats)
    for b, n in enumerate(lens):  # padding stays untouched
        assert not a[b, n:].any()


# ------------------------------------------------------------ flite and festival
def test_synth_with_flite_and_festival_deals_whole_speakers(tmp_path: Path) -> None:
    from tinygen.speech.data.voices import SPEAKERS

    out = tmp_path / "tts"
    meta = synthesize(out, 9, seed=2, jobs=2, progress=False, engines=("flite", "festival"))
    assert "flite-2.2" in meta["tools"]["flite"] and "2.5" in meta["tools"]["festival"]
    split_of = {}  # speaker -> the split its voices were dealt to
    for split in SPLITS:
        for combo in meta["combos"][split]:
            engine, voice = combo.split(":")
            speaker = next(s for s, v in SPEAKERS.items() if v.get(engine) == voice)
            assert split_of.setdefault(speaker, split) == split, speaker
        for e in manifest(out, split):
            assert e["voice"] in meta["combos"][split]
            with wave.open(str(out / e["path"])) as w:
                assert (w.getframerate(), w.getnchannels()) == (SAMPLE_RATE, 1)
                x = np.frombuffer(w.readframes(w.getnframes()), "<i2")
            assert e["duration"] > 0.4 and np.abs(x).max() > 3000  # speech, not silence
    assert {s for s in split_of} == {"kal", "slt", "awb", "rms", "ked"}
    again = synthesize(tmp_path / "again", 9, seed=2, jobs=1, progress=False,
                       engines=("flite", "festival"))
    assert again["combos"] == meta["combos"]
    for split in SPLITS:
        for e in manifest(out, split):
            assert (out / e["path"]).read_bytes() == (tmp_path / "again" / e["path"]).read_bytes()


def test_synth_engines_missing_or_unknown_are_one_line(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # espeak-ng and sox, but no flite
    bin_dir.mkdir()
    for tool in ("espeak-ng", "sox"):
        os.symlink(shutil.which(tool), bin_dir / tool)  # type: ignore[arg-type]
    env = dict(os.environ, PATH=str(bin_dir))
    res = run_cli("data", "synth", "--out", str(tmp_path / "c"), "--utterances", "3",
                  "--engines", "espeak-ng,flite", env=env)
    assert_one_line_error(res, "flite not found", "apt-get install flite")
    res = run_cli("data", "synth", "--out", str(tmp_path / "c"), "--utterances", "3",
                  "--engines", "espeak-ng,mbrola")
    assert_one_line_error(res, "unknown --engines mbrola", "flite, festival")
    assert not (tmp_path / "c").exists()
