"""LJSpeech sentences read by the author of PhilippMatthes/dc_tts
(``tinygen data import dc-tts SRC``).

SRC is a checkout of https://github.com/PhilippMatthes/dc_tts: ``LJSpeech-1.1/wavs/*.wav``
(44.1 kHz, one speaker) and ``LJSpeech-1.1/transcript.csv`` (``id|text|normalized text``,
the LJSpeech metadata format). The normalized text is the transcript. One speaker, so the
split is by file hash (10% dev, no test: the held-out real speakers come from other
sources).
"""

from __future__ import annotations

from pathlib import Path

from tinygen.speech.data import DataError
from tinygen.speech.data.imports import Source, SourceItem, hash_rule, hash_split, transcript

KIND = "dc-tts"
TEST, DEV = 0.0, 0.10


def scan(src: Path, revision: str | None = None) -> Source:
    root = src / "LJSpeech-1.1" if (src / "LJSpeech-1.1").is_dir() else src
    csv, wavs = root / "transcript.csv", root / "wavs"
    if not csv.is_file() or not wavs.is_dir():
        raise DataError(f"{src} has no LJSpeech-1.1/transcript.csv and LJSpeech-1.1/wavs/",
                        "give a checkout of github.com/PhilippMatthes/dc_tts")
    items = []
    for lineno, line in enumerate(csv.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) < 2:
            raise DataError(f"{csv}:{lineno} is not 'id|text|normalized text'",
                            "give an unmodified checkout of PhilippMatthes/dc_tts")
        wav = wavs / f"{fields[0]}.wav"
        text = transcript(fields[-1])
        if wav.is_file() and text:  # the csv lists some sentences that were never recorded
            items.append(SourceItem(key=fields[0], audio=wav, text=text,
                                    speaker="dc_tts-reader", split=hash_split(wav, TEST, DEV)))
    if not items:
        raise DataError(f"{src}: no line of transcript.csv has a WAV in wavs/",
                        "give an unmodified checkout of PhilippMatthes/dc_tts")
    return Source(meta={
        "source": KIND,
        "url": "https://github.com/PhilippMatthes/dc_tts",
        "revision": revision or "unknown",
        "license": "Apache-2.0",
        "speakers_note": "one reader (the repository's author), 44.1 kHz",
        "split_rule": hash_rule(TEST, DEV),
    }, items=items)
