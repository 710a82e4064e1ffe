"""Speech Commands clips, as repositories carry subsets of them
(``tinygen data import speech-commands SRC``).

Google's Speech Commands data set (Warden 2018, CC-BY-4.0) is one-second clips of single
command words from many crowd-sourced speakers: ``<word>/<speaker>_nohash_<n>.wav``, 16
kHz mono, the folder name is the transcript and the file name's first part the speaker's
id. The full set is a download no registry here carries, but repositories commit subsets
of it, e.g. github.com/vinsis/speech-commands-recognition (``speech_commands_v0.01/``: ten
clips of each of 30 words). SRC is such a checkout, or the data set's own folder.

What is read: every ``<word>/*_nohash_*.wav`` except
- the digit words (zero to nine): spoken digits are never imported, one digit corpus is
  kept as an outside check;
- ``_background_noise_`` (no transcript) and files not named ``<id>_nohash_<n>.wav``.

A subset without the data set's lists is held out whole: every clip in ``test``, an
evaluation of unseen speakers saying single words (``tinygen data merge
--vocabulary-only`` keeps the words of the model's phrase vocabulary). The full data set
(a download from Google, ``speech_commands_v0.02.tar.gz``) carries ``testing_list.txt``
and ``validation_list.txt``; when both are there and every clip they list is too, they are
the test and dev splits and every other clip is train. Google assigns them by a hash of the
speaker id, so no speaker is in two splits. Repositories that carry a subset often carry
the full lists as well; a subset is still held out whole.
"""

from __future__ import annotations

import re
from pathlib import Path

from tinygen.speech.data import DataError
from tinygen.speech.data.imports import Source, SourceItem, transcript

KIND = "speech-commands"
DIGITS = frozenset({"zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                    "nine"})
CLIP = re.compile(r"([0-9a-f]+)_nohash_(\d+)")


def _word_folders(folder: Path) -> list[Path]:
    """The word folders of a Speech Commands folder: those holding <id>_nohash_<n>.wav."""
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("_")
                  and any(CLIP.fullmatch(f.stem) for f in d.glob("*.wav")))


def _root(src: Path) -> tuple[Path, list[Path]]:
    """SRC itself, or the one speech_commands* folder inside it, whichever holds clips, with
    its word folders (none: SRC and an empty list)."""
    if src.is_dir():
        for folder in [src, *sorted(d for d in src.glob("speech_commands*") if d.is_dir())]:
            words = _word_folders(folder)
            if words:
                return folder, words
    return src, []


def _official_lists(root: Path) -> dict[str, str] | None:
    """``word/<id>_nohash_<n>`` -> "test" or "dev" from the data set's own lists, or None
    when SRC does not have both, or lacks a clip that they list (a subset)."""
    test, dev = root / "testing_list.txt", root / "validation_list.txt"
    if not (test.is_file() and dev.is_file()):
        return None
    split: dict[str, str] = {}
    for name, path in (("test", test), ("dev", dev)):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            key = line.removesuffix(".wav")
            if line == key or key.count("/") != 1:
                raise DataError(f"{path}:{lineno} is not <word>/<file>.wav",
                                "restore the list from the data set")
            if split.setdefault(key, name) != name:
                raise DataError(f"{path}:{lineno}: {line} is also in the other list",
                                "restore the lists from the data set")
    if not all((root / f"{key}.wav").is_file() for key in split):
        return None
    return split


def scan(src: Path, revision: str | None = None) -> Source:
    root, words = _root(src)
    items = []
    digits = 0
    lists = _official_lists(root)
    for folder in words:
        is_digit = folder.name.lower() in DIGITS
        text = transcript(folder.name.replace("_", " "))
        for f in sorted(folder.glob("*.wav")):
            match = CLIP.fullmatch(f.stem)
            if match is None:
                continue
            if is_digit:
                digits += 1
            elif text:
                key = f"{folder.name}/{f.stem}"
                split = "test" if lists is None else lists.get(key, "train")
                items.append(SourceItem(key=key, audio=f, text=text,
                                        speaker=match.group(1), split=split))
    if not items:
        raise DataError(f"{src} has no <word>/<id>_nohash_<n>.wav clips besides digits",
                        "give a folder in Speech Commands' layout, e.g. a checkout of "
                        "github.com/vinsis/speech-commands-recognition")
    version = re.search(r"v\d+\.\d+", root.name)
    return Source(meta={
        "source": KIND,
        "url": "https://arxiv.org/abs/1804.03209 (Speech Commands; a subset as the "
               "repository at the revision carries it)",
        "revision": revision or "unknown",
        "dataset_version": version.group() if version else "unknown",
        "license": "CC-BY-4.0",
        "speakers_note": "crowd-sourced, one speaker id per file name prefix",
        "split_rule": "held out whole: every utterance in test" if lists is None else
                      "the data set's testing_list.txt (test) and validation_list.txt (dev), "
                      "every other clip train",
        "left_out": {"digit_clips": digits},
        "words": sorted({it.text for it in items}),
    }, items=items)
