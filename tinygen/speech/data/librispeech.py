"""A local LibriSpeech-format directory: ``speaker/chapter/*.flac`` plus ``*.trans.txt``.

Each ``<speaker>-<chapter>.trans.txt`` holds lines ``<speaker>-<chapter>-<utt> TEXT``;
the audio is ``<speaker>-<chapter>-<utt>.flac`` beside it. A LibriSpeech root holds
subsets named by split (``train-clean-100``, ``dev-clean``, ``test-other`` ...), and
:func:`split_dirs` maps ``train``/``dev``/``test`` to them. Transcripts are normalised to
the model vocabulary (:func:`tinygen.speech.data.normalize_text`). Audio is read with the
``soundfile`` package (PyPI), which reads flac and wav.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinygen.speech.config import DEFAULT_VOCAB
from tinygen.speech.data import DataError, Utterance, normalize_text

SUFFIX = ".trans.txt"


def soundfile() -> Any:
    """The soundfile module, or a DataError that says how to install it."""
    try:
        import soundfile as sf
    except (ImportError, OSError) as err:  # OSError: the libsndfile shared library
        raise DataError(f"cannot import soundfile ({err})",
                        "install it with: pip install 'soundfile>=0.12'") from None
    return sf


def is_librispeech(root: Path) -> bool:
    """True when some ``*.trans.txt`` lies two or three levels below root."""
    return any(root.glob(f"*/*/*{SUFFIX}")) or any(root.glob(f"*/*/*/*{SUFFIX}"))


def split_dirs(root: Path, split: str) -> list[Path]:
    """Subsets of a LibriSpeech root for a split: ``dev`` -> dev-clean, dev-other."""
    return sorted(d for d in root.iterdir()
                  if d.is_dir() and (d.name == split or d.name.startswith(f"{split}-"))
                  and any(d.glob(f"*/*/*{SUFFIX}")))


def read_librispeech(root: Path, vocab: str = DEFAULT_VOCAB, durations: bool = True
                     ) -> list[Utterance]:
    """Every utterance under root (one subset, or several), sorted by id.

    A transcript line whose flac is missing is an error; an unreadable flac is not
    (the Dataset skips and counts it). ``durations`` reads each file's header.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"LibriSpeech folder {root} does not exist",
                        "give the folder that holds speaker/chapter/*.flac")
    sf = soundfile() if durations else None
    out = []
    for trans in sorted(root.rglob(f"*{SUFFIX}")):
        for lineno, line in enumerate(trans.read_text(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            uid, _, text = line.strip().partition(" ")
            audio = trans.parent / f"{uid}.flac"
            if not audio.is_file():
                raise DataError(f"{trans}:{lineno}: audio {audio.name} is missing",
                                "restore the file or delete its transcript line")
            duration = None
            if sf is not None:
                try:
                    info = sf.info(str(audio))
                    duration = info.frames / info.samplerate
                except (RuntimeError, OSError, ValueError):
                    duration = None  # the Dataset reports it
            out.append(Utterance(uid=uid, path=audio.resolve(),
                                 text=normalize_text(text, vocab), duration=duration))
    if not out:
        raise DataError(f"no *{SUFFIX} transcripts under {root}",
                        "give a LibriSpeech-format folder (speaker/chapter/*.flac + "
                        "*.trans.txt)")
    return sorted(out, key=lambda u: u.uid)
