"""Accuracy on a corpus split: CER and WER, one row per backend (``tinygen eval``).

A backend is any callable that maps one utterance's log-mel features, a (T, n_mels)
float32 array, to CTC logits, a (T', vocab) array. The float PyTorch model is one
(:func:`float_backend`); the int8 golden reference and the generated host C become
further rows with the same signature once the compiler builds them. Until then the report
lists them as pending instead of inventing numbers.

Decoding is greedy CTC: argmax per frame, merge repeats, drop the blank (vocab index 0).
CER and WER are corpus-level: total edit distance over total reference characters
(spaces included) or words.

This module imports torch only inside the functions that run a model, so the command
line starts fast.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from tinygen.model import Conformer

Backend = Callable[["np.ndarray"], "np.ndarray"]  # (T, n_mels) float32 -> (T', vocab)

# Rows the compiler will add; each needs a stage that does not exist yet.
PENDING = {
    "int8-reference": "needs the compiler's quantize and reference stages",
    "host-c": "needs the compiler's native backend (generated C)",
}


# ----------------------------------------------------------------------- metrics
def greedy_decode(logits: np.ndarray, vocab: str) -> str:
    """(T', vocab) logits -> text: best symbol per frame, repeats merged, blanks dropped."""
    best = logits.argmax(axis=-1).tolist()
    out = []
    prev = -1
    for i in best:
        if i != prev and i != 0:
            out.append(vocab[i])
        prev = i
    return "".join(out)


def edit_distance(ref: Sequence[Any], hyp: Sequence[Any]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


@dataclass
class Tally:
    """Edit distances summed over a split."""

    char_errors: int = 0
    chars: int = 0
    word_errors: int = 0
    words: int = 0
    utterances: int = 0

    def add(self, ref: str, hyp: str) -> None:
        self.char_errors += edit_distance(ref, hyp)
        self.chars += len(ref)
        self.word_errors += edit_distance(ref.split(), hyp.split())
        self.words += len(ref.split())
        self.utterances += 1

    @property
    def cer(self) -> float:
        return self.char_errors / max(self.chars, 1)

    @property
    def wer(self) -> float:
        return self.word_errors / max(self.words, 1)

    def row(self, backend: str) -> dict[str, Any]:
        return {"backend": backend, "cer": round(self.cer, 6), "wer": round(self.wer, 6),
                "char_errors": self.char_errors, "chars": self.chars,
                "word_errors": self.word_errors, "words": self.words,
                "utterances": self.utterances}


def score(backend: Backend, examples: Iterable[tuple[np.ndarray, str]], vocab: str
          ) -> Tally:
    """Run ``backend`` on each (features, reference text) pair and tally the errors."""
    tally = Tally()
    for feats, text in examples:
        tally.add(text, greedy_decode(backend(feats), vocab))
    return tally


# ---------------------------------------------------------------------- backends
def float_backend(model: Conformer) -> Backend:
    """The PyTorch model in eval mode, one utterance at a time (no padding)."""
    import numpy as np
    import torch

    model.eval()

    def run(feats: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))[None]
            return model(x)[0].numpy()  # (T', vocab)

    return run


# ------------------------------------------------------------------------ report
def evaluate(model_spec: str, data: Path, split: str = "test", limit: int | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Score every available backend of ``model_spec`` on ``split`` of ``data``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from tinygen.checkpoint import load_model
    from tinygen.data.dataset import Example, SkipLog, SpeechDataset, load_split

    model = load_model(model_spec)
    cfg = model.cfg
    utterances = load_split(data, split, cfg.vocab)[:limit]
    dataset = SpeechDataset(utterances, cfg)
    skips = SkipLog()
    examples: list[tuple[np.ndarray, str]] = []
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True),
                  disable=not progress, transient=True) as bar:
        task = bar.add_task(f"eval {split}", total=len(dataset))
        for i in range(len(dataset)):
            item = dataset[i]
            if isinstance(item, Example):
                examples.append((item.feats.numpy(), item.text))
            else:
                skips.add([item])
            bar.advance(task)
    backends: dict[str, Backend] = {"float": float_backend(model)}
    rows = [score(fn, examples, cfg.vocab).row(name) for name, fn in backends.items()]
    return {
        "model": str(model_spec),
        "name": cfg.name,
        "data": str(data),
        "split": split,
        "utterances": len(examples),
        "skipped": skips.count,
        "rows": rows,
        "pending": [{"backend": k, "reason": v} for k, v in PENDING.items()],
    }


def cmd_eval(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from tinygen.data.dataset import warnings_as_lines

    with warnings_as_lines():
        report = evaluate(args.model, args.data, args.split, limit=args.limit,
                          progress=not args.json)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    table = Table(title=f"{report['name']} on {report['data']} ({report['split']}, "
                        f"{report['utterances']} utterances)")
    for col in ("backend", "CER", "WER", "note"):
        table.add_column(col, justify="right" if col in ("CER", "WER") else "left")
    for r in report["rows"]:
        table.add_row(r["backend"], f"{100 * r['cer']:.2f}%", f"{100 * r['wer']:.2f}%", "")
    for p in report["pending"]:
        table.add_row(p["backend"], "-", "-", f"not built yet: {p['reason']}")
    console = Console()
    console.print(table)
    if report["skipped"]:
        console.print(f"skipped {report['skipped']} unusable audio file(s)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``tinygen eval`` to the top-level subcommands."""
    p = sub.add_parser("eval", help="CER and WER of a model on a corpus split",
                       description="Report CER and WER of MODEL on a split of a synth "
                                   "corpus or LibriSpeech folder, one row per backend.")
    p.add_argument("model", metavar="MODEL",
                   help="a checkpoint path, or preset:NAME (random init, fixed seed)")
    p.add_argument("--data", type=Path, required=True, metavar="DIR",
                   help="a corpus from `tinygen data synth`, or a LibriSpeech root")
    p.add_argument("--split", default="test", choices=("train", "dev", "test"),
                   help="which split to score (default test)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="score only the first N utterances")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_eval)
