"""Real-speech importers, `data merge` and per-source eval, on fake source trees.

Every source tree here is written by the test in the source's own layout, with generated
audio (never committed), so each importer is checked against numbers computed here:
the samples a lossless 16 kHz file must keep, the frequency of a resampled tone, the
hash rule of the split, and hand-written transcripts.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import CliResult, assert_one_line_error
from tinygen.speech.data import SPLITS, DataError
from tinygen.speech.data.imports import build_corpus, importers, merge, spell_numbers, transcript


def run_cli(*args: str) -> CliResult:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    proc = subprocess.run([sys.executable, "-m", "tinygen", *args], capture_output=True,
                          text=True, timeout=300, env=env)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def tone(seconds: float, rate: int, hz: float, seed: int) -> np.ndarray:
    """A tone plus a little seeded noise, int16 (each file's bytes differ by seed)."""
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal(len(t))
    x = 0.3 * np.sin(2 * np.pi * hz * t) + 0.01 * noise
    return np.round(x * 32767).astype(np.int16)


def write_audio(path: Path, samples: np.ndarray, rate: int, fmt: str = "WAV") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, rate, format=fmt, subtype="PCM_16")


def manifest(root: Path, split: str) -> list[dict]:
    return [json.loads(x) for x in (root / f"{split}.jsonl").read_text().splitlines()]


def all_entries(root: Path) -> list[dict]:
    return [e for s in SPLITS for e in manifest(root, s)]


def expected_split(path: Path, test: float, dev: float) -> str:
    f = int(hashlib.sha256(path.read_bytes()).hexdigest()[:8], 16) / 2**32
    return "test" if f < test else "dev" if f < test + dev else "train"


def deb_changelog(root: Path, package: str, version: str) -> None:
    d = root / "usr/share/doc" / package
    d.mkdir(parents=True, exist_ok=True)
    (d / "changelog.Debian.gz").write_bytes(gzip.compress(
        f"{package.split('-en')[0]} ({version}) unstable; urgency=medium\n".encode()))


# ------------------------------------------------------------------------ text
def test_transcripts_spell_numbers_and_keys() -> None:
    assert spell_numbers("press 12 or 0") == "press  twelve  or  zero "
    assert transcript("Press 1, then #.") == "press one then pound"
    assert transcript("At the tone [beep]... 3:45 pm") == "at the tone three forty five pm"
    assert transcript("Call-Forward on No Answer.") == "call forward on no answer"
    assert transcript("[ascending tones]") == ""
    assert transcript("1884") == "one thousand eight hundred eighty four"


# ------------------------------------------------------------------- wake words
def wake_tree(root: Path) -> dict[str, np.ndarray]:
    clips = {}
    for i, (phrase, name, fmt) in enumerate([("alexa", "0", "FLAC"), ("alexa", "1", "WAV"),
                                             ("smart mirror", "abc-1", "WAV"),
                                             ("view glass", "7", "FLAC")]):
        x = tone(0.4 + 0.1 * i, 16000, 300 + 100 * i, seed=i)
        ext = ".flac" if fmt == "FLAC" else ".wav"
        write_audio(root / "audio" / phrase / f"{name}{ext}", x, 16000, fmt)
        clips[f"{phrase}/{name}"] = x
    write_audio(root / "audio" / "multiple_keywords.wav", tone(1, 16000, 200, 9), 16000)
    (root / "README.md").write_text("fake\n")
    return clips


def test_wake_word_benchmark_import(tmp_path: Path) -> None:
    src = tmp_path / "wwb"
    clips = wake_tree(src)
    out = tmp_path / "c"
    res = run_cli("data", "import", "wake-word-benchmark", str(src), "--out", str(out),
                  "--revision", "abc123", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "wrote 4 utterances" in res.stdout and "Apache-2.0" in res.stdout
    meta = json.loads((out / "corpus.json").read_text())
    assert (meta["source"], meta["license"], meta["revision"]) == (
        "wake-word-benchmark", "Apache-2.0", "abc123")
    assert "sha256" in meta["split_rule"] and meta["sample_rate"] == 16000
    entries = {e["original"]: (s, e) for s in SPLITS for e in manifest(out, s)}
    assert set(entries) == set(clips)  # multiple_keywords.wav has no transcript
    for key, x in clips.items():
        split, e = entries[key]
        phrase = key.split("/")[0]
        assert e["text"] == phrase and e["source"] == "wake-word-benchmark"
        src_file = next((src / "audio" / phrase).glob(key.split("/")[1] + ".*"))
        assert split == expected_split(src_file, 0.10, 0.10)
        got, rate = sf.read(str(out / e["path"]), dtype="int16")
        assert rate == 16000
        np.testing.assert_array_equal(got, x)  # 16 kHz in, 16 kHz out: not one sample moves
        assert e["duration"] == pytest.approx(len(x) / 16000, abs=1e-4)
    assert sum(meta["utterances"].values()) == 4


# ------------------------------------------------------------------------ dc_tts
def test_dc_tts_import_resamples_44k(tmp_path: Path) -> None:
    src = tmp_path / "dc_tts" / "LJSpeech-1.1"
    write_audio(src / "wavs" / "LJ001-0001.wav", tone(1.0, 44100, 1000, 1), 44100)
    write_audio(src / "wavs" / "LJ001-0002.wav", tone(0.5, 44100, 2000, 2), 44100)
    (src / "transcript.csv").write_text(
        "LJ001-0001|Printing, in 1884.|Printing, in eighteen eighty-four.\n"
        "LJ001-0002|Hello|Hello!\n"
        "LJ001-0099|never recorded|never recorded\n")
    meta = build_corpus(importers()["dc-tts"](tmp_path / "dc_tts", "5f20e75"),
                        tmp_path / "c", progress=False)
    assert (meta["license"], meta["revision"]) == ("Apache-2.0", "5f20e75")
    entries = {e["original"]: e for e in all_entries(tmp_path / "c")}
    assert set(entries) == {"LJ001-0001", "LJ001-0002"}
    assert entries["LJ001-0001"]["text"] == "printing in eighteen eighty four"
    assert entries["LJ001-0002"]["text"] == "hello"
    got, rate = sf.read(str(tmp_path / "c" / entries["LJ001-0001"]["path"]), dtype="float32")
    assert rate == 16000 and abs(len(got) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(got * np.hanning(len(got))))
    assert np.argmax(spectrum) * 16000 / len(got) == pytest.approx(1000, abs=2)
    assert np.sqrt(np.mean(got**2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)


# ---------------------------------------------------------------------- asterisk
def asterisk_tree(root: Path, g722: bool) -> None:
    sounds = root / "usr/share/asterisk/sounds/en_US_f_Allison"
    lines = {"digits/1": "one", "press-1": "Press 1, then #.", "beep": "[a beep tone]"}
    for i, name in enumerate(lines):
        wav = sounds / f"{name}.wav"
        write_audio(wav, tone(0.5, 8000, 500, i), 8000)
        if g722:
            x = tone(0.5, 16000, 500, i)
            tmp = root / f"tmp{i}.wav"
            write_audio(tmp, x, 16000)
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(tmp), "-c:a",
                            "g722", "-f", "g722", str(sounds / f"{name}.g722")], check=True)
            tmp.unlink()
    doc = root / "usr/share/doc/asterisk-core-sounds-en"
    doc.mkdir(parents=True)
    (doc / "core-sounds-en.txt.gz").write_bytes(gzip.compress(
        ("; Core Asterisk Sounds in English\n\n"
         + "".join(f"{k}: {v}\n" for k, v in lines.items())).encode()))
    deb_changelog(root, "asterisk-core-sounds-en", "1.6.1-1")
    deb_changelog(root, "asterisk-core-sounds-en-wav", "1.6.1-1")
    deb_changelog(root, "asterisk-core-sounds-en-g722", "1.6.1-1")


@pytest.mark.parametrize("g722", [True, False])
def test_asterisk_import(tmp_path: Path, g722: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "deb"
    asterisk_tree(src, g722)
    meta = build_corpus(importers()["asterisk"](src, None), tmp_path / "c", progress=False)
    assert meta["license"] == "CC-BY-SA-3.0"
    assert meta["utterances"] == {"train": 0, "dev": 0, "test": 2}  # held out whole
    assert meta["speakers"]["test"] == ["allison-smith"]
    assert "asterisk-core-sounds-en 1.6.1-1" in meta["revision"]
    assert ("G.722" in meta["audio"]) == g722 and ("ffmpeg" in meta["tools"]) == g722
    texts = {e["original"]: e["text"] for e in manifest(tmp_path / "c", "test")}
    assert texts == {"digits/1": "one", "press-1": "press one then pound"}  # no beep
    got, rate = sf.read(str(tmp_path / "c" / "wav/test/digits_1.wav"), dtype="float32")
    assert rate == 16000 and abs(len(got) - 8000) <= 40
    spectrum = np.abs(np.fft.rfft(got * np.hanning(len(got))))
    assert np.argmax(spectrum) * 16000 / len(got) == pytest.approx(500, abs=4)


# ------------------------------------------------------------------- pocketsphinx
def pocketsphinx_tree(root: Path) -> None:
    data = root / "usr/share/pocketsphinx/test/data"
    (data / "librivox").mkdir(parents=True)
    (data / "cards").mkdir(parents=True)
    write_audio(data / "librivox" / "ss-0870.wav", tone(0.6, 16000, 300, 1), 16000)
    (data / "librivox" / "transcription").write_text(
        "<s> he was not an ill disposed young man </s> (ss-0870)\n")
    write_audio(data / "cards" / "001.wav", tone(0.4, 16000, 400, 2), 16000)
    write_audio(data / "cards" / "002.wav", tone(0.5, 16000, 450, 3), 16000)
    (data / "cards" / "cards.transcription").write_text(
        "<s> ten of clubs  </s> (001)\n<s> set a timer for 10 minutes </s> (002)\n")
    deb_changelog(root, "pocketsphinx-testdata", "0.8+5prealpha+1-15")


def test_pocketsphinx_import(tmp_path: Path) -> None:
    pocketsphinx_tree(tmp_path / "deb")
    meta = build_corpus(importers()["pocketsphinx"](tmp_path / "deb", None), tmp_path / "c",
                        progress=False)
    assert meta["revision"] == "pocketsphinx-testdata 0.8+5prealpha+1-15"
    assert meta["license"] == "BSD-2-Clause"
    assert meta["speakers"]["test"] == ["cards-speaker", "librivox-reader"]
    assert sorted(e["text"] for e in manifest(tmp_path / "c", "test")) == [
        "he was not an ill disposed young man", "set a timer for ten minutes", "ten of clubs"]


# ---------------------------------------------------------------- speech-to-phrase
def test_speech_to_phrase_import_keeps_recorded_sentences(tmp_path: Path) -> None:
    wavs = tmp_path / "stp" / "tests" / "wav" / "en"
    for i, name in enumerate(["set a timer for 30 seconds", "what's the date", "oov_1",
                              "generated/next track"]):
        write_audio(wavs / f"{name}.wav", tone(0.3, 16000, 500 + 50 * i, i), 16000)
    meta = build_corpus(importers()["speech-to-phrase"](tmp_path / "stp", "edfce6e"),
                        tmp_path / "c", progress=False)
    assert (meta["license"], meta["revision"]) == ("Apache-2.0", "edfce6e")
    assert meta["utterances"] == {"train": 0, "dev": 0, "test": 2}
    assert sorted(e["text"] for e in manifest(tmp_path / "c", "test")) == [
        "set a timer for thirty seconds", "what's the date"]  # no oov_, no generated/


# ---------------------------------------------------------------- speech-commands
def test_speech_commands_import_leaves_digits_out(tmp_path: Path) -> None:
    folder = tmp_path / "repo" / "speech_commands_v0.01"
    clips = {"stop": ["0a7c2a8d_nohash_0", "1b4c9b89_nohash_1"], "on": ["0a7c2a8d_nohash_1"],
             "seven": ["2c6d3924_nohash_0"], "zero": ["3b3d2f59_nohash_0"],
             "_background_noise_": ["white_noise"], "off": ["not_a_clip"]}
    for i, (word, names) in enumerate(sorted(clips.items())):
        for j, name in enumerate(names):
            write_audio(folder / word / f"{name}.wav", tone(0.2, 16000, 400 + 60 * i, 10 * i + j),
                        16000)
    (folder / "LICENSE").write_text("Creative Commons Attribution 4.0 International\n")
    meta = build_corpus(importers()["speech-commands"](tmp_path / "repo", "53317d5"),
                        tmp_path / "c", progress=False)
    assert (meta["license"], meta["revision"], meta["dataset_version"]) == (
        "CC-BY-4.0", "53317d5", "v0.01")
    assert meta["utterances"] == {"train": 0, "dev": 0, "test": 3}
    assert meta["left_out"] == {"digit_clips": 2}
    test = manifest(tmp_path / "c", "test")
    assert sorted((e["text"], e["speaker"]) for e in test) == [
        ("on", "0a7c2a8d"), ("stop", "0a7c2a8d"), ("stop", "1b4c9b89")]
    assert meta["speakers"]["test"] == ["0a7c2a8d", "1b4c9b89"]


def test_speech_commands_with_only_digits_is_refused(tmp_path: Path) -> None:
    for word in ("one", "two"):
        write_audio(tmp_path / "sc" / word / "0a7c2a8d_nohash_0.wav", tone(0.2, 16000, 500, 1),
                    16000)
    res = run_cli("data", "import", "speech-commands", str(tmp_path / "sc"), "--out",
                  str(tmp_path / "c"))
    assert_one_line_error(res, "besides digits")
    assert not (tmp_path / "c").exists()


# ------------------------------------------------------------------------ errors
@pytest.mark.parametrize("kind", ["wake-word-benchmark", "dc-tts", "asterisk", "pocketsphinx",
                                  "speech-to-phrase", "speech-commands"])
def test_malformed_source_is_one_line(tmp_path: Path, kind: str) -> None:
    src = tmp_path / "src"
    (src / "audio").mkdir(parents=True)
    res = run_cli("data", "import", kind, str(src), "--out", str(tmp_path / "c"))
    assert_one_line_error(res, str(src))
    assert not (tmp_path / "c").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]  # no temporary left behind


def test_bad_transcript_line_and_overwrite_are_one_line(tmp_path: Path) -> None:
    pocketsphinx_tree(tmp_path / "deb")
    trans = tmp_path / "deb/usr/share/pocketsphinx/test/data/cards/cards.transcription"
    trans.write_text("ten of clubs without an id\n")
    res = run_cli("data", "import", "pocketsphinx", str(tmp_path / "deb"), "--out",
                  str(tmp_path / "c"))
    assert_one_line_error(res, "cards.transcription:1")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "mine.txt").write_text("keep")
    res = run_cli("data", "import", "wake-word-benchmark", str(tmp_path / "nowhere"),
                  "--out", str(tmp_path / "c"))
    assert_one_line_error(res, "does not exist")
    wake_tree(tmp_path / "wwb")
    res = run_cli("data", "import", "wake-word-benchmark", str(tmp_path / "wwb"), "--out",
                  str(tmp_path / "c"))
    assert_one_line_error(res, "already exists", "--force")
    assert (tmp_path / "c" / "mine.txt").read_text() == "keep"


# ------------------------------------------------------------------ merge + eval
@pytest.fixture
def merged(tmp_path: Path) -> Path:
    wake_tree(tmp_path / "wwb")
    pocketsphinx_tree(tmp_path / "deb")
    for kind, src in (("wake-word-benchmark", "wwb"), ("pocketsphinx", "deb")):
        build_corpus(importers()[kind](tmp_path / src, None), tmp_path / kind, progress=False)
    return tmp_path


def test_merge_keeps_sources_splits_and_max_seconds(merged: Path) -> None:
    out = merged / "mix"
    meta = merge(out, [merged / "wake-word-benchmark", merged / "pocketsphinx"],
                 splits=["train", "test"], max_seconds=0.55)
    wake = [e for s in ("train", "test") for e in manifest(merged / "wake-word-benchmark", s)
            if e["duration"] <= 0.55]
    assert meta["by_source"]["wake-word-benchmark"]["train"] + \
        meta["by_source"]["wake-word-benchmark"]["test"] == len(wake)
    assert meta["by_source"]["pocketsphinx"] == {"test": 2, "train": 0}  # 0.6 s one is out
    assert meta["parts"]["pocketsphinx"]["license"] == "BSD-2-Clause"
    assert manifest(out, "dev") == []
    for e in all_entries(out):
        assert e["path"].startswith(f"wav/{e['source']}/") and (out / e["path"]).is_file()
        assert e["uid"].startswith(e["source"])
    merge(merged / "vocab", [merged / "pocketsphinx"], vocabulary_only=True)
    assert [e["text"] for e in manifest(merged / "vocab", "test")] == [
        "set a timer for ten minutes"]  # "clubs" and "ill" are not words of the vocabulary
    with pytest.raises(DataError, match="already exists"):
        merge(out, [merged / "pocketsphinx"])
    with pytest.raises(DataError, match="two corpora named pocketsphinx"):
        merge(merged / "m2", [merged / "pocketsphinx", merged / "pocketsphinx"])
    (merged / "pocketsphinx" / "test.jsonl").write_text('{"path": "wav/test/gone.wav", '
                                                         '"text": "x"}\n')
    res = run_cli("data", "merge", str(merged / "pocketsphinx"), "--out", str(merged / "m3"))
    assert_one_line_error(res, "test.jsonl:1", "gone.wav is missing")
    (merged / "pocketsphinx" / "corpus.json").write_text("{")
    res = run_cli("data", "merge", str(merged / "pocketsphinx"), "--out", str(merged / "m3"))
    assert_one_line_error(res, "corpus.json is not a corpus description")
    assert not (merged / "m3").exists()


def test_eval_reports_each_source(merged: Path) -> None:
    from tinygen.speech.evaluate import evaluate

    out = merged / "mix"
    merge(out, [merged / "wake-word-benchmark", merged / "pocketsphinx"])
    for split in SPLITS:  # evaluate everything as one test split
        (out / "all.jsonl").open("a").write((out / f"{split}.jsonl").read_text())
    os.replace(out / "all.jsonl", out / "test.jsonl")
    whole = evaluate("preset:mcu-tiny", out, "test", progress=False, compiled=False)
    assert whole["utterances"] == 7
    by = {src: rows[0] for src, rows in whole["by_source"].items()}
    assert {s: r["utterances"] for s, r in by.items()} == {"pocketsphinx": 3,
                                                          "wake-word-benchmark": 4}
    for field in ("char_errors", "chars", "word_errors", "words"):
        assert sum(r[field] for r in by.values()) == whole["rows"][0][field]
    assert by["wake-word-benchmark"]["words"] == 6  # alexa x2, smart mirror, view glass
    wake = evaluate("preset:mcu-tiny", out, "test", progress=False, compiled=False,
                    sources=["wake-word-benchmark"])
    assert wake["rows"][0] == by["wake-word-benchmark"]
    with pytest.raises(DataError, match="sources there: pocketsphinx, wake-word-benchmark"):
        evaluate("preset:mcu-tiny", out, "test", progress=False, compiled=False,
                 sources=["asterisk"])
