"""The Asterisk core sound prompts in English (``tinygen data import asterisk SRC``).

SRC is a folder into which the Debian packages ``asterisk-core-sounds-en`` (transcripts,
``usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz``) and
``asterisk-core-sounds-en-g722`` (16 kHz G.722, decoded by ffmpeg) or
``asterisk-core-sounds-en-wav`` (8 kHz PCM) were extracted with ``dpkg -x``. The G.722
copy is preferred: it carries speech up to 7 kHz, the 8 kHz WAVs only up to 4 kHz.

One speaker (Allison Smith) reads 568 prompts: digits and numbers, letters, the phonetic
alphabet, days, and telephone-menu sentences. Lines whose transcript is only a bracketed
note (``[beep tone]``) are tones, not speech, and are left out. The speaker is held out
whole: every utterance goes to ``test``. License CC-BY-SA-3.0 (the packages' copyright).
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from tinygen.speech.data import DataError
from tinygen.speech.data.debian import package_version
from tinygen.speech.data.imports import Source, SourceItem, transcript

KIND = "asterisk"
SOUNDS = "usr/share/asterisk/sounds/en_US_f_Allison"
TEXTS = "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
HINT = ("extract asterisk-core-sounds-en and asterisk-core-sounds-en-g722 (or -wav) with: "
        "apt-get download PKG && dpkg -x PKG_*.deb SRC")


def read_transcripts(path: Path) -> dict[str, str]:
    """``name: text`` lines (``;`` starts a comment) -> {name: raw text}."""
    try:
        lines = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace").splitlines()
    except (OSError, EOFError):
        raise DataError(f"cannot read {path}", HINT) from None
    out = {}
    for line in lines:
        if not line.strip() or line.startswith(";"):
            continue
        name, sep, text = line.partition(":")
        if not sep:
            raise DataError(f"{path}: line {line[:40]!r} is not 'name: text'", HINT)
        out[name.strip()] = text.strip()
    return out


def scan(src: Path, revision: str | None = None) -> Source:
    sounds, texts = src / SOUNDS, src / TEXTS
    if not texts.is_file() or not sounds.is_dir():
        raise DataError(f"{src} has no {TEXTS} and {SOUNDS}/", HINT)
    raw = read_transcripts(texts)
    g722 = any(sounds.rglob("*.g722")) and shutil.which("ffmpeg") is not None
    ext, decoder = (".g722", "ffmpeg") if g722 else (".wav", "sox")
    package = "asterisk-core-sounds-en-g722" if g722 else "asterisk-core-sounds-en-wav"
    items = []
    for name, text in sorted(raw.items()):
        audio = sounds / f"{name}{ext}"
        words = transcript(text)
        if words and audio.is_file():
            items.append(SourceItem(key=name, audio=audio, text=words,
                                    speaker="allison-smith", split="test", decoder=decoder))
    if not items:
        raise DataError(f"{src}: no transcript of core-sounds-en.txt.gz has a {ext} file "
                        f"under {SOUNDS}", HINT)
    return Source(meta={
        "source": KIND,
        "url": "https://downloads.asterisk.org/pub/telephony/sounds/",
        "revision": revision or f"{package_version(src, package)}; "
                                f"{package_version(src, 'asterisk-core-sounds-en')}",
        "license": "CC-BY-SA-3.0",
        "audio": f"{package} ({'16 kHz G.722' if g722 else '8 kHz PCM'})",
        "speakers_note": "one speaker, Allison Smith",
        "split_rule": "held out whole: every utterance in test",
    }, items=items)
