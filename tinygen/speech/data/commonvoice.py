"""A Mozilla Common Voice release (``tinygen data import common-voice SRC``).

Common Voice (commonvoice.mozilla.org) is read sentences recorded by volunteers in their
own rooms on their own microphones, tens of thousands of English speakers, released under
CC0-1.0. No registry reachable from tinygen's build machines carries it; it is a download
from the Common Voice site after accepting its terms. SRC is the language folder of an
extracted release (``cv-corpus-<version>-<date>/en``), or a folder that holds exactly one
such language folder:

    SRC/clips/common_voice_en_<n>.mp3
    SRC/train.tsv, dev.tsv, test.tsv     client_id, path, sentence, ... (tab-separated, a header)

The release's own ``train``/``dev``/``test`` lists are the splits. Common Voice draws
them so that no speaker (``client_id``) is in two of them, so the test split is unseen
speakers. Rows whose sentence has no letter of the model's alphabet are left out and
counted. Clips are MP3, decoded and resampled by ffmpeg.

The English release is large (over a million clips in ``train.tsv``).
``--max-per-split N`` imports a fixed, hash-chosen subset (imports.limit_split).
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

from tinygen.speech.data import SPLITS, DataError
from tinygen.speech.data.imports import Source, SourceItem, fold_accents, transcript

KIND = "common-voice"
NEEDED = ("client_id", "path", "sentence")
RELEASE = re.compile(r"cv-corpus-[0-9][0-9.]*-\d{4}-\d{2}-\d{2}")
HINT = ("give the language folder of an extracted Common Voice release "
        "(cv-corpus-<version>-<date>/en), which holds clips/ and train.tsv, dev.tsv, test.tsv")


def _language_folder(src: Path) -> Path | None:
    """SRC if it holds clips/ and a split list, else its one subfolder that does."""
    def is_lang(d: Path) -> bool:
        return (d / "clips").is_dir() and any((d / f"{s}.tsv").is_file() for s in SPLITS)

    if is_lang(src):
        return src
    found = [d for d in sorted(src.iterdir()) if d.is_dir() and is_lang(d)] \
        if src.is_dir() else []
    return found[0] if len(found) == 1 else None


def _rows(tsv: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of a Common Voice list; its header must name NEEDED."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        with tsv.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(reader, None)
            if header is None or not set(NEEDED) <= set(header):
                raise DataError(f"{tsv}:1 is not a Common Voice header (needs "
                                + ", ".join(NEEDED) + ")", HINT)
            rows = []
            for lineno, fields in enumerate(reader, 2):
                if not any(fields):
                    continue
                if len(fields) != len(header):
                    raise DataError(f"{tsv}:{lineno} has {len(fields)} fields, the header "
                                    f"{len(header)}", "restore the file from the release")
                rows.append((lineno, dict(zip(header, fields, strict=True))))
    except UnicodeDecodeError as err:
        raise DataError(f"{tsv} is not UTF-8 text ({err.reason})",
                        "restore the file from the release") from None
    return rows


def scan(src: Path, revision: str | None = None) -> Source:
    lang = _language_folder(src)
    if lang is None:
        raise DataError(f"{src} has no clips/ folder beside train.tsv, dev.tsv or test.tsv",
                        HINT)
    items: list[SourceItem] = []
    no_text = 0
    locales: set[str] = set()
    seen: dict[str, str] = {}
    for split in SPLITS:
        tsv = lang / f"{split}.tsv"
        if not tsv.is_file():
            continue
        for lineno, row in _rows(tsv):
            clip = row["path"].strip()
            where = f"{tsv}:{lineno}"
            if not clip or "/" in clip or "\\" in clip:
                raise DataError(f"{where}: {clip!r} is not a clip name",
                                "restore the file from the release")
            if clip in seen:
                raise DataError(f"{where}: {clip} is already listed ({seen[clip]})",
                                "restore the lists from the release")
            seen[clip] = where
            text = transcript(fold_accents(row["sentence"]))
            if not text:
                no_text += 1
                continue
            audio = lang / "clips" / clip
            if not audio.is_file():
                raise DataError(f"{where}: clips/{clip} is missing",
                                "extract the whole release, or restore that clip")
            locales.add(row.get("locale", "").strip() or lang.name)
            items.append(SourceItem(key=Path(clip).stem, audio=audio, text=text,
                                    speaker=row["client_id"].strip() or "unknown",
                                    split=split, decoder="ffmpeg"))
    if not items:
        raise DataError(f"{lang}: no row of train.tsv, dev.tsv or test.tsv has a sentence "
                        "the model can spell", HINT)
    release = next((m.group() for p in (lang, *lang.parents)
                    if (m := RELEASE.fullmatch(p.name))), None)
    return Source(meta={
        "source": KIND,
        "url": "https://commonvoice.mozilla.org/datasets",
        "revision": revision or release or "unknown",
        "language": ",".join(sorted(locales)),
        "license": "CC0-1.0",
        "speakers_note": "volunteers, one client_id per speaker; the release's splits share "
                         "no speaker",
        "split_rule": "the release's own train.tsv, dev.tsv and test.tsv",
        "left_out": {"no_spellable_text": no_text},
    }, items=items)
