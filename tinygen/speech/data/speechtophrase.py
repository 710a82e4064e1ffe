"""English test recordings of OHF-Voice/speech-to-phrase
(``tinygen data import speech-to-phrase SRC``).

SRC is a checkout of https://github.com/OHF-Voice/speech-to-phrase. Its
``tests/wav/en/<sentence>.wav`` files are voice commands of a smart home ("set a timer
for 5 minutes", "what time is it", "pause"), 16 kHz mono; the file name is the
transcript. Left out: ``oov_*.wav`` (deliberately out-of-vocabulary sounds, no
transcript) and ``generated/`` (text-to-speech, not a person). The repository does not
name the speaker; the recordings are taken as one speaker and held out whole (``test``).
License Apache-2.0 (the repository's LICENSE.md).
"""

from __future__ import annotations

from pathlib import Path

from tinygen.speech.data import DataError
from tinygen.speech.data.imports import Source, SourceItem, transcript

KIND = "speech-to-phrase"
WAVS = "tests/wav/en"


def scan(src: Path, revision: str | None = None) -> Source:
    wavs = src / WAVS
    files = sorted(f for f in wavs.glob("*.wav") if not f.name.startswith("oov_")) \
        if wavs.is_dir() else []
    items = [SourceItem(key=f.stem, audio=f, text=transcript(f.stem),
                        speaker="speech-to-phrase-en", split="test") for f in files]
    items = [it for it in items if it.text]
    if not items:
        raise DataError(f"{src} has no {WAVS}/<sentence>.wav recordings",
                        "give a checkout of github.com/OHF-Voice/speech-to-phrase")
    return Source(meta={
        "source": KIND,
        "url": "https://github.com/OHF-Voice/speech-to-phrase",
        "revision": revision or "unknown",
        "license": "Apache-2.0",
        "speakers_note": "recorded voice commands (tests/wav/en, not generated/); the "
                         "speaker is not named, taken as one",
        "split_rule": "held out whole: every utterance in test",
    }, items=items)
