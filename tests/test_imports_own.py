"""Importers for speech that users bring: their own recordings (``recordings``), a Common
Voice release (``common-voice``), and the full Speech Commands data set with its own split
lists. Every tree is written here in the source's layout with generated audio, and each
expectation is computed here (hash rules, transcripts written by hand)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import assert_one_line_error
from tests.test_imports import all_entries, expected_split, manifest, run_cli, tone, write_audio
from tinygen.speech.data import DataError
from tinygen.speech.data.imports import build_corpus, importers, limit_split, merge
from tinygen.speech.data.recordings import scan as scan_recordings


def to_mp3(wav: Path, mp3: Path) -> None:
    mp3.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(wav), "-c:a", "libmp3lame",
                    "-b:a", "64k", str(mp3)], check=True)


def key_rank(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# ------------------------------------------------------------------------ recordings
def recordings_tree(root: Path) -> dict[str, np.ndarray]:
    """Two speakers, WAV at 16 kHz, FLAC at 44.1 kHz and one MP3; a comment, a blank line."""
    clips = {"alice/001": tone(0.5, 16000, 400, 1), "alice/002": tone(0.6, 16000, 500, 2),
             "bob/001": tone(0.4, 44100, 1000, 3), "carol": tone(0.7, 16000, 700, 4)}
    write_audio(root / "alice/001.wav", clips["alice/001"], 16000)
    write_audio(root / "alice/002.wav", clips["alice/002"], 16000)
    write_audio(root / "bob/001.flac", clips["bob/001"], 44100, "FLAC")
    write_audio(root / "tmp.wav", clips["carol"], 16000)
    to_mp3(root / "tmp.wav", root / "carol.mp3")
    (root / "tmp.wav").unlink()
    (root / "transcripts.tsv").write_text(
        "# FILE\tTEXT\tSPEAKER\n"
        "alice/001.wav\tTurn on the kitchen lights.\talice\n"
        "\n"
        "alice/002.wav\tSet a timer for 5 minutes\talice\n"
        "bob/001.flac\tCafé, s’il vous plaît\tbob\n"
        "carol.mp3\twhat time is it\n", encoding="utf-8")
    return clips


def test_recordings_import_keeps_speakers_and_deals_by_hash(tmp_path: Path) -> None:
    src = tmp_path / "mine"
    clips = recordings_tree(src)
    out = tmp_path / "c"
    res = run_cli("data", "import", "recordings", str(src), "--out", str(out), "--name",
                  "family", "--license", "CC0-1.0", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "wrote 4 utterances" in res.stdout and "of family (CC0-1.0)" in res.stdout
    meta = json.loads((out / "corpus.json").read_text())
    assert (meta["source"], meta["license"]) == ("family", "CC0-1.0")
    assert "sha256" in meta["split_rule"] and "ffmpeg" in meta["tools"]
    by_key = {e["original"]: e for e in all_entries(out)}
    assert {k: (e["text"], e["speaker"]) for k, e in by_key.items()} == {
        "alice/001": ("turn on the kitchen lights", "alice"),
        "alice/002": ("set a timer for five minutes", "alice"),
        "bob/001": ("cafe s'il vous plait", "bob"),
        "carol": ("what time is it", "unknown")}
    files = {"alice/001": "alice/001.wav", "alice/002": "alice/002.wav",
             "bob/001": "bob/001.flac", "carol": "carol.mp3"}
    for key, e in by_key.items():
        assert e["path"] == f"wav/{expected_split(src / files[key], 0.1, 0.1)}/{e['uid']}.wav"
        assert e["source"] == "family"
    got, rate = sf.read(str(out / by_key["alice/001"]["path"]), dtype="int16")
    assert rate == 16000
    np.testing.assert_array_equal(got, clips["alice/001"])  # 16 kHz WAV: lossless
    got, _ = sf.read(str(out / by_key["bob/001"]["path"]), dtype="float32")
    assert abs(len(got) - 0.4 * 16000) <= 2  # 44.1 kHz FLAC resampled
    spectrum = np.abs(np.fft.rfft(got * np.hanning(len(got))))
    assert np.argmax(spectrum) * 16000 / len(got) == pytest.approx(1000, abs=3)
    got, _ = sf.read(str(out / by_key["carol"]["path"]), dtype="float32")
    assert len(got) >= 0.7 * 16000  # MP3 through ffmpeg (the encoder pads, never cuts)
    spectrum = np.abs(np.fft.rfft(got * np.hanning(len(got))))
    assert np.argmax(spectrum) * 16000 / len(got) == pytest.approx(700, abs=3)


def test_recordings_whole_split_and_names_merge_apart(tmp_path: Path) -> None:
    recordings_tree(tmp_path / "mine")
    build_corpus(scan_recordings(tmp_path / "mine", split="test", name="household"),
                 tmp_path / "held", progress=False)
    assert {e["original"] for e in manifest(tmp_path / "held", "test")} == {
        "alice/001", "alice/002", "bob/001", "carol"}
    meta = json.loads((tmp_path / "held" / "corpus.json").read_text())
    assert meta["split_rule"].endswith("every utterance in test")
    assert meta["license"].startswith("not stated")
    build_corpus(scan_recordings(tmp_path / "mine", split="train"), tmp_path / "tr",
                 progress=False)
    assert manifest(tmp_path / "tr", "test") == [] and len(manifest(tmp_path / "tr", "train")) == 4
    merged = merge(tmp_path / "m", [tmp_path / "held", tmp_path / "tr"])
    assert merged["by_source"] == {"household": {"train": 0, "dev": 0, "test": 4},
                                   "recordings": {"train": 4, "dev": 0, "test": 0}}


@pytest.mark.parametrize(("line", "needle"), [
    ("alice/001.wav", "transcripts.tsv:2 is not FILE<TAB>TEXT"),
    ("alice/001.wav\ta\tb\tc", "transcripts.tsv:2 is not FILE<TAB>TEXT"),
    ("alice/009.wav\thello", "transcripts.tsv:2: alice/009.wav does not exist"),
    ("../outside.wav\thello", "is outside"),
    ("alice/001.wav\t[noise] 。", "has no word the model can spell"),
    ("alice/001.wav\thi\nalice/001.wav\tho", "transcripts.tsv:3: alice/001.wav is listed twice"),
    ("alice/001.wav\thi\nalice/001.flac\tho", "differ only in type or punctuation"),
])
def test_recordings_bad_lines_are_refused(tmp_path: Path, line: str, needle: str) -> None:
    src = tmp_path / "mine"
    write_audio(src / "alice/001.wav", tone(0.2, 16000, 400, 1), 16000)
    write_audio(src / "alice/001.flac", tone(0.2, 16000, 400, 2), 16000, "FLAC")
    write_audio(tmp_path / "outside.wav", tone(0.2, 16000, 400, 3), 16000)
    (src / "transcripts.tsv").write_text("# mine\n" + line + "\n")
    with pytest.raises(DataError, match=re.escape(needle)):
        scan_recordings(src)


def test_recordings_errors_on_the_command_line(tmp_path: Path) -> None:
    src = tmp_path / "mine"
    recordings_tree(src)
    res = run_cli("data", "import", "recordings", str(tmp_path), "--out", str(tmp_path / "c"))
    assert_one_line_error(res, "has no transcripts.tsv", "FILE<TAB>TEXT")
    res = run_cli("data", "import", "recordings", str(src), "--out", str(tmp_path / "c"),
                  "--name", "my voice")
    assert_one_line_error(res, "--name 'my voice' is not a plain name")
    res = run_cli("data", "import", "pocketsphinx", str(src), "--out", str(tmp_path / "c"),
                  "--split", "train")
    assert_one_line_error(res, "--split applies to recordings only")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # nothing written


# ---------------------------------------------------------------------- common voice
CV_HEADER = ("client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes"
             "\tage\tgender\taccents\tvariant\tlocale\tsegment\n")


def cv_row(client: str, clip: str, sentence: str) -> str:
    return f"{client}\t{clip}\tsid\t{sentence}\t\t2\t0\t\t\t\t\ten\t\n"


def cv_tree(root: Path) -> Path:
    """cv-corpus-17.0-2024-03-15/en with three speakers; returns the release folder."""
    release = root / "cv-corpus-17.0-2024-03-15"
    lang = release / "en"
    rows = {"train": [("aa11", "common_voice_en_1.mp3", "He said \"yes\"; she left."),
                      ("aa11", "common_voice_en_2.mp3", "Zoë's café opened in 1999."),
                      ("bb22", "common_voice_en_3.mp3", "Turn off the lights")],
            "dev": [("cc33", "common_voice_en_4.mp3", "…")],  # nothing to spell: left out
            "test": [("dd44", "common_voice_en_5.mp3", "What time is it?"),
                     ("dd44", "common_voice_en_6.mp3", "Stop.")]}
    for i, (split, lines) in enumerate(sorted(rows.items())):
        for j, (_, clip, _) in enumerate(lines):
            wav = root / "tmp.wav"
            write_audio(wav, tone(0.3, 48000, 300 + 100 * j, 10 * i + j), 48000)
            to_mp3(wav, lang / "clips" / clip)
            wav.unlink()
        (lang / f"{split}.tsv").write_text(
            CV_HEADER + "".join(cv_row(*r) for r in lines), encoding="utf-8")
    (lang / "validated.tsv").write_text(CV_HEADER)
    return release


def test_common_voice_import_keeps_the_release_splits(tmp_path: Path) -> None:
    release = cv_tree(tmp_path)
    out = tmp_path / "c"
    res = run_cli("data", "import", "common-voice", str(release), "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    assert "wrote 5 utterances" in res.stdout and "(CC0-1.0)" in res.stdout
    meta = json.loads((out / "corpus.json").read_text())
    assert (meta["revision"], meta["language"], meta["license"]) == (
        "cv-corpus-17.0-2024-03-15", "en", "CC0-1.0")
    assert meta["left_out"] == {"no_spellable_text": 1}
    assert meta["utterances"] == {"train": 3, "dev": 0, "test": 2}
    assert meta["speakers"] == {"train": ["aa11", "bb22"], "dev": [], "test": ["dd44"]}
    texts = {e["original"]: e["text"] for e in all_entries(out)}
    assert texts == {"common_voice_en_1": "he said yes she left",
                     "common_voice_en_2": "zoe's cafe opened in one thousand nine hundred "
                                          "ninety nine",
                     "common_voice_en_3": "turn off the lights",
                     "common_voice_en_5": "what time is it", "common_voice_en_6": "stop"}
    got, rate = sf.read(str(out / "wav/test/common_voice_en_6.wav"), dtype="float32")
    assert rate == 16000 and len(got) >= 0.3 * 16000  # 48 kHz MP3, resampled by ffmpeg
    spectrum = np.abs(np.fft.rfft(got * np.hanning(len(got))))
    assert np.argmax(spectrum) * 16000 / len(got) == pytest.approx(400, abs=3)


def test_max_per_split_keeps_a_fixed_hash_chosen_subset(tmp_path: Path) -> None:
    release = cv_tree(tmp_path)
    source = importers()["common-voice"](release / "en", "v17")
    assert source.meta["revision"] == "v17"
    kept = limit_split(source.items, 1)
    train = ["common_voice_en_1", "common_voice_en_2", "common_voice_en_3"]
    test = ["common_voice_en_5", "common_voice_en_6"]
    assert sorted(it.key for it in kept) == sorted([min(train, key=key_rank),
                                                    min(test, key=key_rank)])
    assert limit_split(list(reversed(source.items)), 1) == kept  # not the order of the lists
    assert {it.key for it in limit_split(source.items, 2)} >= {it.key for it in kept}
    out = tmp_path / "c"
    res = run_cli("data", "import", "common-voice", str(release), "--out", str(out),
                  "--max-per-split", "1", "--quiet")
    assert res.returncode == 0, res.stderr
    meta = json.loads((out / "corpus.json").read_text())
    assert meta["utterances"] == {"train": 1, "dev": 0, "test": 1}
    assert "at most 1 per split" in meta["selection"]
    assert {e["original"] for e in all_entries(out)} == {it.key for it in kept}


@pytest.mark.parametrize(("edit", "needle"), [
    ("missing_clip", "train.tsv:3: clips/common_voice_en_2.mp3 is missing"),
    ("header", "train.tsv:1 is not a Common Voice header"),
    ("fields", "train.tsv:2 has 3 fields, the header 13"),
    ("twice", "test.tsv:2: common_voice_en_1.mp3 is already listed"),
    ("no_lists", "has no clips/ folder beside train.tsv"),
])
def test_common_voice_damaged_release_is_one_line(tmp_path: Path, edit: str,
                                                  needle: str) -> None:
    lang = cv_tree(tmp_path) / "en"
    if edit == "missing_clip":
        (lang / "clips" / "common_voice_en_2.mp3").unlink()
    elif edit == "header":
        (lang / "train.tsv").write_text("id\tfile\ttext\n")
    elif edit == "fields":
        (lang / "train.tsv").write_text(CV_HEADER + "aa11\tcommon_voice_en_1.mp3\thi\n")
    elif edit == "twice":
        (lang / "test.tsv").write_text(CV_HEADER + cv_row("dd44", "common_voice_en_1.mp3", "x"))
    else:
        for split in ("train", "dev", "test"):
            (lang / f"{split}.tsv").unlink()
    res = run_cli("data", "import", "common-voice", str(lang), "--out", str(tmp_path / "c"))
    assert_one_line_error(res, needle)
    assert not (tmp_path / "c").exists()


# ------------------------------------------------------------------- speech commands
def test_speech_commands_uses_its_own_lists_when_whole(tmp_path: Path) -> None:
    root = tmp_path / "speech_commands_v0.02"
    names = {"stop": ["0a7c2a8d_nohash_0", "1b4c9b89_nohash_0", "2c6d3924_nohash_0"],
             "go": ["0a7c2a8d_nohash_1", "3d5e8f01_nohash_0"], "seven": ["1b4c9b89_nohash_1"]}
    for i, (word, clips) in enumerate(sorted(names.items())):
        for j, name in enumerate(clips):
            write_audio(root / word / f"{name}.wav", tone(0.2, 16000, 400 + 50 * i, 10 * i + j),
                        16000)
    (root / "testing_list.txt").write_text("stop/1b4c9b89_nohash_0.wav\n"
                                           "seven/1b4c9b89_nohash_1.wav\n")
    (root / "validation_list.txt").write_text("go/3d5e8f01_nohash_0.wav\n")
    source = importers()["speech-commands"](root, "v0.02")
    assert {it.key: it.split for it in source.items} == {
        "stop/0a7c2a8d_nohash_0": "train", "stop/1b4c9b89_nohash_0": "test",
        "stop/2c6d3924_nohash_0": "train", "go/0a7c2a8d_nohash_1": "train",
        "go/3d5e8f01_nohash_0": "dev"}  # digits still left out
    assert "testing_list.txt" in source.meta["split_rule"]
    # a subset that carries the full lists (as repositories do) stays held out whole
    (root / "validation_list.txt").write_text("go/3d5e8f01_nohash_0.wav\n"
                                              "go/ffff0000_nohash_0.wav\n")
    source = importers()["speech-commands"](root, "v0.02")
    assert {it.split for it in source.items} == {"test"}
    assert source.meta["split_rule"] == "held out whole: every utterance in test"
    (root / "validation_list.txt").write_text("stop/1b4c9b89_nohash_0.wav\n")
    with pytest.raises(DataError, match="also in the other list"):
        importers()["speech-commands"](root, "v0.02")


# ------------------------------------------------------------------------- prompts
def test_prompts_round_trip_through_the_importer(tmp_path: Path) -> None:
    from tinygen.speech.data.recordings import prompts
    from tinygen.speech.data.words import vocabulary

    out = tmp_path / "me"
    res = run_cli("data", "prompts", "--out", str(out), "--count", "12", "--seed", "4",
                  "--speaker", "dana")
    assert res.returncode == 0, res.stderr
    lines = [ln.split("\t") for ln in (out / "transcripts.tsv").read_text().splitlines()
             if not ln.startswith("#")]
    texts = prompts(12, seed=4)
    assert lines == [[f"{i:04d}.wav", t, "dana"] for i, t in enumerate(texts, 1)]
    assert len(set(texts)) == 12 and prompts(12, seed=5) != texts
    assert all(set(t.split()) <= vocabulary() for t in texts)
    res = run_cli("data", "import", "recordings", str(out), "--out", str(tmp_path / "c"))
    assert_one_line_error(res, "transcripts.tsv:2: 0001.wav does not exist")
    for i, (name, _, _) in enumerate(lines):  # "record" every phrase
        write_audio(out / name, tone(0.3, 16000, 300 + 20 * i, i), 16000)
    build_corpus(scan_recordings(out), tmp_path / "c", progress=False)
    assert sorted(e["text"] for e in all_entries(tmp_path / "c")) == sorted(texts)
    before = (out / "transcripts.tsv").read_bytes()
    res = run_cli("data", "prompts", "--out", str(out), "--count", "3")
    assert_one_line_error(res, "transcripts.tsv already exists")
    assert (out / "transcripts.tsv").read_bytes() == before
