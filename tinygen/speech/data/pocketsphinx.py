"""Recordings from the Debian package ``pocketsphinx-testdata``
(``tinygen data import pocketsphinx SRC``).

SRC is a folder into which the package was extracted with ``dpkg -x`` (or /). Two sets
have transcripts, in Sphinx's ``<s> words </s> (fileid)`` format:

- ``librivox/``: five sentences of Sense and Sensibility read by one LibriVox reader;
- ``cards/``: five phrases of playing cards ("four queen of clubs") by another speaker.

``tidigits/`` is a spoken-digit corpus and is never imported. Both speakers are held out
whole (``test``). License BSD-2-Clause (the package's copyright).
"""

from __future__ import annotations

import re
from pathlib import Path

from tinygen.speech.data import DataError
from tinygen.speech.data.debian import package_version
from tinygen.speech.data.imports import Source, SourceItem, transcript

KIND = "pocketsphinx"
DATA = "usr/share/pocketsphinx/test/data"
SETS = {"librivox": ("transcription", "librivox-reader"),
        "cards": ("cards.transcription", "cards-speaker")}
LINE = re.compile(r"^\s*(?:<s>)?(.*?)(?:</s>)?\s*\(([^()]+)\)\s*$")
HINT = ("extract it with: apt-get download pocketsphinx-testdata && "
        "dpkg -x pocketsphinx-testdata_*.deb SRC")


def scan(src: Path, revision: str | None = None) -> Source:
    data = src / DATA
    items = []
    for name, (trans, speaker) in SETS.items():
        path = data / name / trans
        if not path.is_file():
            raise DataError(f"{src} has no {DATA}/{name}/{trans}", HINT)
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            m = LINE.match(line)
            if m is None:
                raise DataError(f"{path}:{lineno} is not '<s> words </s> (fileid)'", HINT)
            wav = data / name / f"{m.group(2)}.wav"
            if not wav.is_file():
                raise DataError(f"{path}:{lineno} names {wav.name}, which is missing", HINT)
            items.append(SourceItem(key=f"{name}/{m.group(2)}", audio=wav,
                                    text=transcript(m.group(1)), speaker=speaker,
                                    split="test"))
    return Source(meta={
        "source": KIND,
        "url": "https://github.com/cmusphinx/pocketsphinx",
        "revision": revision or package_version(src, "pocketsphinx-testdata"),
        "license": "BSD-2-Clause",
        "speakers_note": "two speakers: a LibriVox reader (librivox/), another (cards/)",
        "split_rule": "held out whole: every utterance in test",
    }, items=items)
