"""Picovoice wake-word-benchmark (``tinygen data import wake-word-benchmark SRC``).

SRC is a checkout of https://github.com/Picovoice/wake-word-benchmark (or its ``audio``
folder): ``audio/<phrase>/<name>.{wav,flac}``, 16 kHz mono, crowd-sourced, one phrase per
folder (alexa, computer, jarvis, smart mirror, snowboy, view glass). The folder name is the
transcript. Files directly under ``audio/`` (``multiple_keywords.wav``) have no
transcript and are left out.

There are no speaker ids, so the split is by a hash of each file's bytes: 10% test, 10%
dev. A speaker who recorded several phrases can therefore have clips on both sides of the
split: the held-out clips are unseen recordings, not certainly unseen speakers.
"""

from __future__ import annotations

from pathlib import Path

from tinygen.speech.data import DataError
from tinygen.speech.data.imports import Source, SourceItem, hash_rule, hash_split, transcript

KIND = "wake-word-benchmark"
TEST, DEV = 0.10, 0.10
AUDIO = (".wav", ".flac")


def scan(src: Path, revision: str | None = None) -> Source:
    audio = src / "audio" if (src / "audio").is_dir() else src
    folders = sorted(d for d in audio.iterdir() if d.is_dir()) if audio.is_dir() else []
    items = []
    for folder in folders:
        text = transcript(folder.name)
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() in AUDIO and f.is_file():
                items.append(SourceItem(key=f"{folder.name}/{f.stem}", audio=f, text=text,
                                        speaker="unknown", split=hash_split(f, TEST, DEV)))
    if not items:
        raise DataError(f"{src} has no audio/<phrase>/*.wav or *.flac recordings",
                        "give a checkout of github.com/Picovoice/wake-word-benchmark")
    return Source(meta={
        "source": KIND,
        "url": "https://github.com/Picovoice/wake-word-benchmark",
        "revision": revision or "unknown",
        "license": "Apache-2.0",
        "speakers_note": "crowd-sourced, more than 50 speakers, no speaker ids",
        "split_rule": hash_rule(TEST, DEV) + " (no speaker ids: held-out clips are unseen "
                      "recordings, their speakers may also occur in train)",
        "phrases": sorted({it.text for it in items}),
    }, items=items)
