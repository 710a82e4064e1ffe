"""Your own recordings (``tinygen data import recordings SRC``).

SRC is a folder of recordings with a ``transcripts.tsv`` that says what each one says, one
line per recording, tab-separated::

    # FILE             TEXT                          SPEAKER (optional)
    alice/001.wav      turn on the kitchen lights    alice
    alice/002.wav      set a timer for 5 minutes     alice
    bob/001.flac       what time is it               bob

FILE is relative to SRC (WAV and FLAC are decoded by sox; MP3, Ogg, M4A, WebM and any
other type by ffmpeg). TEXT is normalized like every other source's (numbers spelled out,
accents dropped, characters outside the model's alphabet removed). Blank lines and lines
that start with ``#`` are skipped. A line without SPEAKER is speaker ``unknown``.

The split is the user's choice (``--split``): ``hash`` (default) deals each recording by a
hash of its bytes, 10% test, 10% dev and the rest train, so the same files always land in
the same split; ``train``, ``dev`` or ``test`` put every recording in that split, e.g.
``test`` for a set of household voices that the model must never train on.

``--name`` sets the corpus's source name (default ``recordings``), so that several sets
can be merged and reported apart by ``tinygen eval``.

``tinygen data prompts --out DIR --count N`` writes a ``transcripts.tsv`` of N distinct
phrases of the model's vocabulary, naming the files to record them into.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tinygen.speech.data import DataError
from tinygen.speech.data.imports import (
    Source,
    SourceItem,
    decoder_for,
    fold_accents,
    hash_rule,
    hash_split,
    safe_uid,
    transcript,
)

KIND = "recordings"
MANIFEST = "transcripts.tsv"
TEST, DEV = 0.10, 0.10
SPLIT_CHOICES = ("hash", "train", "dev", "test")
FORMAT_HINT = (f"write one line per recording to SRC/{MANIFEST}: FILE<TAB>TEXT, optionally "
               "<TAB>SPEAKER, FILE relative to SRC")


def scan(src: Path, revision: str | None = None, split: str = "hash",
         license: str | None = None, name: str | None = None) -> Source:
    if split not in SPLIT_CHOICES:
        raise DataError(f"--split {split} is not a split rule",
                        "choose from " + ", ".join(SPLIT_CHOICES))
    manifest = src / MANIFEST
    if not manifest.is_file():
        raise DataError(f"{src} has no {MANIFEST}", FORMAT_HINT)
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(f"{manifest} is not UTF-8 text ({err.reason} at byte {err.start})",
                        "save it as UTF-8") from None
    source = name or KIND
    if safe_uid(source) != source:
        raise DataError(f"--name {source!r} is not a plain name",
                        "use letters, digits, '.', '_' and '-'")
    root = src.resolve()
    items: list[SourceItem] = []
    seen: dict[str, int] = {}
    uids: dict[str, int] = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{manifest}:{lineno}"
        fields = line.rstrip("\r").split("\t")
        if len(fields) not in (2, 3) or not fields[0].strip():
            raise DataError(f"{where} is not FILE<TAB>TEXT[<TAB>SPEAKER]", FORMAT_HINT)
        file = fields[0].strip()
        audio = (root / file).resolve()
        if not audio.is_relative_to(root):
            raise DataError(f"{where}: {file} is outside {src}",
                            "give FILE relative to SRC, inside it")
        if not audio.is_file():
            raise DataError(f"{where}: {file} does not exist", "fix the file name or add it")
        if file in seen:
            raise DataError(f"{where}: {file} is listed twice (first on line {seen[file]})",
                            "list each recording once")
        seen[file] = lineno
        key = str(Path(file).with_suffix(""))
        if safe_uid(key) in uids:
            raise DataError(f"{where}: {file} and line {uids[safe_uid(key)]} differ only in "
                            "type or punctuation", "rename one of the two files")
        uids[safe_uid(key)] = lineno
        text = transcript(fold_accents(fields[1]))
        if not text:
            raise DataError(f"{where}: the transcript {fields[1].strip()!r} has no word the "
                            "model can spell", "write what the recording says, in words")
        speaker = fields[2].strip() if len(fields) == 3 and fields[2].strip() else "unknown"
        items.append(SourceItem(
            key=key, audio=audio, text=text, speaker=speaker,
            split=hash_split(audio, TEST, DEV) if split == "hash" else split,
            decoder=decoder_for(audio)))
    if not items:
        raise DataError(f"{manifest} lists no recordings", FORMAT_HINT)
    rule = (hash_rule(TEST, DEV) if split == "hash"
            else f"chosen by the user (--split {split}): every utterance in {split}")
    return Source(meta={
        "source": source,
        "url": str(root),
        "revision": revision or "unknown",
        "license": license or "not stated (the user's own recordings)",
        "speakers_note": f"as {MANIFEST} names them",
        "split_rule": rule,
    }, items=items)


# ------------------------------------------------------------------------ prompts
def prompts(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct phrases of the model's vocabulary (:func:`words.phrase`), the same
    for the same seed: a script to read aloud."""
    import numpy as np

    from tinygen.speech.data.words import phrase

    rng = np.random.default_rng(seed)
    seen: dict[str, None] = {}
    for _ in range(count * 50):
        seen.setdefault(phrase(rng), None)
        if len(seen) == count:
            return list(seen)
    raise DataError(f"cannot draw {count} distinct phrases (got {len(seen)})",
                    "ask for fewer")


def write_prompts(out: Path, count: int, seed: int = 0, speaker: str = "me") -> Path:
    """Write ``out/transcripts.tsv`` naming ``0001.wav`` ... for ``count`` phrases, for the
    user to record; never replaces an existing list."""
    manifest = out / MANIFEST
    if manifest.exists():
        raise DataError(f"{manifest} already exists",
                        "record into another folder, or remove that file first")
    if "\t" in speaker or not speaker.strip():
        raise DataError(f"--speaker {speaker!r} is not a name", "give e.g. --speaker alice")
    width = max(4, len(str(count)))
    lines = [f"# read each phrase into its file: 16 kHz mono (any rate and type works; "
             f"tinygen data import recordings {out} converts them)"]
    lines += [f"{i:0{width}d}.wav\t{text}\t{speaker.strip()}"
              for i, text in enumerate(prompts(count, seed), 1)]
    out.mkdir(parents=True, exist_ok=True)
    tmp = manifest.with_name(manifest.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(manifest)
    return manifest


def cmd_prompts(args: argparse.Namespace) -> int:
    manifest = write_prompts(Path(args.out), args.count, args.seed, args.speaker)
    first = manifest.parent / f"{1:0{max(4, len(str(args.count)))}d}.wav"
    print(f"wrote {args.count} phrases to {manifest}; record each into the file it names, "
          f"e.g. arecord -f S16_LE -r 16000 -c 1 -d 4 {first}, then: tinygen data import "
          f"recordings {manifest.parent} --out DIR")
    return 0
