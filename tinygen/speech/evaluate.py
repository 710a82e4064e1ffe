"""Accuracy on a corpus split: CER and WER, one row per backend (``tinygen eval``).

A backend is any callable that maps one utterance's log-mel features, a (T, n_mels)
float32 array, to CTC logits, a (T', vocab) array. Rows:

- ``float``: the PyTorch model on each whole utterance;
- ``float-stream`` (streaming models): the model stepped chunk by chunk with cached state
  over the utterance and the silence that completes its last chunk;
- ``float-window``: the same model on the fixed window a compiled model takes (the
  utterance at its start, the rest the features of digital silence), so the next rows
  differ from it by quantization alone;
- ``int8-reference``: the golden reference of the compiled int8 model on that window;
- ``host-c``: the generated C, built for the host and run as a process per utterance.
  It equals the int8 row exactly when the C is bit-exact, which is the point.

A streaming model has no window: its rows ``float-stream``, ``int8-stream`` and
``host-c-stream`` step through each whole utterance chunk by chunk from the silence state
(silence completing the last chunk), in float, in the golden int8 reference and in the C.

The windowed rows decode every output frame of the window, as a device does: a CTC
model may emit the last characters of an utterance on the frames of silence after it.

Decoding is greedy CTC: argmax per frame, merge repeats, drop the blank (vocab index 0).
CER and WER are corpus-level: total edit distance over total reference characters
(spaces included) or words. A corpus made by ``tinygen data merge`` names each
utterance's source; the report then also gives the rows of each source (``by_source``),
e.g. the wake phrases of a real-speech test set apart from its numbers and commands, and
``--source`` scores only some sources.

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

from tinygen.errors import TinygenError, float_arg, int_arg
from tinygen.speech.config import MAX_INPUTS, MAX_WINDOW_MS
from tinygen.speech.data import DataError

if TYPE_CHECKING:
    import numpy as np

    from tinygen.speech.model import Conformer

Backend = Callable[["np.ndarray"], "np.ndarray"]  # (T, n_mels) float32 -> (T', vocab)



class EvalError(TinygenError):
    """An evaluation that cannot run as asked."""


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
    right: int = 0  # utterances whose every word is right

    def add(self, ref: str, hyp: str) -> None:
        self.right += ref.split() == hyp.split()
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
                "utterances": self.utterances,
                "exact": round(self.right / max(self.utterances, 1), 6)}


def score(backend: Backend, examples: Iterable[tuple[np.ndarray, str]], vocab: str,
          advance: Callable[[], None] | None = None, groups: Sequence[str] | None = None,
          by_group: dict[str, Tally] | None = None,
          also: tuple[Callable[[np.ndarray], str], Tally] | None = None) -> Tally:
    """Run ``backend`` on each (features, reference text) pair and tally the errors.

    With ``groups`` (one name per example) and ``by_group``, each group's errors are also
    tallied into ``by_group[name]``. ``also`` = (decoder, tally): the same logits decoded
    another way (a word list) are tallied there too.
    """
    tally = Tally()
    for i, (feats, text) in enumerate(examples):
        logits = backend(feats)
        hyp = greedy_decode(logits, vocab)
        tally.add(text, hyp)
        if also is not None:
            also[1].add(text, also[0](logits))
        if groups is not None and by_group is not None:
            by_group.setdefault(groups[i], Tally()).add(text, hyp)
        if advance is not None:
            advance()
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


def stream_backend(model: Conformer) -> Backend:
    """A streaming model stepped chunk by chunk with cached state over the whole
    utterance (silence appended up to whole chunks); every output frame is decoded."""
    import numpy as np
    import torch

    from tinygen.speech.streaming import silence_state, stream

    model.eval()
    start = silence_state(model)  # the same for every utterance: computed once

    def run(feats: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))[None]
        return stream(model, x, start=start)[0].numpy()  # (T_pad // 4, vocab)

    return run


class Window:
    """Put features at the start of a fixed window of silence; decode the whole output."""

    def __init__(self, frames: int) -> None:
        from tinygen.speech.features import silence_value

        self.frames = frames
        self.silence = silence_value()

    def pad(self, feats: np.ndarray) -> np.ndarray:
        """(T, n_mels) -> (1, frames, n_mels); an utterance longer than the window is cut."""
        import numpy as np

        t = min(feats.shape[0], self.frames)
        window = np.full((self.frames, feats.shape[1]), self.silence, np.float32)
        window[:t] = feats[:t]
        return window[None]

    def wrap(self, run: Callable[[np.ndarray], np.ndarray]) -> Backend:
        def backend(feats: np.ndarray) -> np.ndarray:
            return run(self.pad(feats))[0]

        return backend


def compiled_backends(model: Conformer, examples: list[tuple[np.ndarray, str]], data: Path,
                      window_ms: float, calib: int, workdir: Path
                      ) -> tuple[dict[str, Backend], int, dict[str, Any]]:
    """float-window, int8-reference and host-c rows for the compiled ``model``, the
    window in frames, and the host build's report (flash bytes and arena)."""
    import subprocess

    import numpy as np

    from tinygen.audio import FEATURE_RANGE
    from tinygen.build import BuildOptions, build
    from tinygen.compiler.pipeline import compile_model
    from tinygen.compiler.quantize import dequantize_array
    from tinygen.speech.calib import inputs, window_frames

    cfg = model.cfg
    longest = max(f.shape[0] for f, _ in examples)
    frames = window_frames(cfg, window_ms) if window_ms > 0 else longest
    win = Window(frames)
    cal = inputs(cfg, frames, calib, seed=0, data=data, split="train")
    compiled = compile_model(model, frames, cal, input_range=FEATURE_RANGE)
    q_out = compiled.output_quant

    def float_window(x: np.ndarray) -> np.ndarray:
        return compiled.run_float(x)

    def int8(x: np.ndarray) -> np.ndarray:
        return dequantize_array(compiled.run_int8(compiled.quantize_input(x)), q_out)

    tmp = workdir
    report = build(model, tmp / "host", cal, [], BuildOptions(target="host"), cfg.name)
    exe = tmp / "host" / "host" / "tinygen_model"
    shape = (1, *compiled.int8.values[compiled.int8.outputs[0]].shape[1:])

    def host_c(x: np.ndarray) -> np.ndarray:
        proc = subprocess.run([str(exe)], input=compiled.quantize_input(x).tobytes(),
                              capture_output=True, check=True, timeout=60)
        return dequantize_array(np.frombuffer(proc.stdout, np.int8).reshape(shape), q_out)

    return ({"float-window": win.wrap(float_window), "int8-reference": win.wrap(int8),
             "host-c": win.wrap(host_c)}, frames, report)


def stream_backends(model: Conformer, data: Path | None, calib: int, workdir: Path
                    ) -> tuple[dict[str, Backend], dict[str, Any]]:
    """int8-stream and host-c-stream rows of a streaming ``model``: the compiled step run
    chunk by chunk over each whole utterance from the silence state (the golden reference
    in numpy, and the generated C built for the host, one process per utterance), and
    the host build's report."""
    import subprocess

    import numpy as np

    from tinygen.build import BuildOptions, build
    from tinygen.compiler.quantize import dequantize_array
    from tinygen.speech.calib import inputs, window_frames
    from tinygen.speech.streaming import chunks_of, compile_streaming

    cfg = model.cfg
    cal = inputs(cfg, window_frames(cfg, 3000), calib, seed=0, data=data, split="train")
    compiled = compile_streaming(model, cal)
    start = compiled.int8.meta["state_init"]
    q_out = compiled.output_quant
    vocab = cfg.vocab_size

    def quantized(feats: np.ndarray) -> list[np.ndarray]:
        return [compiled.quantize_input(c) for c in chunks_of(feats[None], cfg)]

    def int8(feats: np.ndarray) -> np.ndarray:
        outs = compiled.stream_int8(quantized(feats), start)
        return dequantize_array(np.concatenate(outs, axis=1)[0], q_out)

    report = build(model, workdir / "host", cal, [], BuildOptions(target="host"), cfg.name,
                   compiled=compiled)
    exe = workdir / "host" / "host" / "tinygen_model"

    def host_c(feats: np.ndarray) -> np.ndarray:
        stream = b"".join(c.tobytes() for c in quantized(feats))
        proc = subprocess.run([str(exe)], input=stream, capture_output=True, check=True,
                              timeout=300)
        logits = np.frombuffer(proc.stdout, np.int8).reshape(-1, vocab)
        return dequantize_array(logits, q_out)

    return {"int8-stream": int8, "host-c-stream": host_c}, report


# ------------------------------------------------------------------------ report
def evaluate(model_spec: str, data: Path, split: str = "test", limit: int | None = None,
             progress: bool = True, compiled: bool = True, window_ms: float = 0.0,
             calib: int = 32, streaming: bool = False, sources: Sequence[str] | None = None,
             calib_data: Path | None = None, words_file: Path | None = None,
             room_tone_ms: float = 0.0) -> dict[str, Any]:
    """Score every available backend of ``model_spec`` on ``split`` of ``data``.

    ``sources`` keeps only utterances of those sources (see ``tinygen data merge``);
    ``calib_data`` is the corpus whose train split calibrates the int8 model (default
    ``data``; a held-out test corpus has no train split). ``streaming`` requires a
    streaming model. ``words_file`` (tinygen.audio.words) also scores each backend's
    logits decoded as the best entry of that word list (``word_rows``).
    ``room_tone_ms`` > 0 lengthens each recording to that many milliseconds with its own
    room tone (:func:`tinygen.speech.data.augment.fill_room_tone`): the window then holds
    sustained background after the speech, as when an energy gate stays open in a noisy
    room, instead of the digital silence the listen firmware fills it with.
    """
    import tempfile

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from tinygen.audio import words
    from tinygen.speech.checkpoint import load_model
    from tinygen.speech.data.dataset import (
        Example,
        SkipLog,
        Skipped,
        SpeechDataset,
        load_split,
    )
    from tinygen.speech.summary import unique_params, virtual_params

    model = load_model(model_spec)
    cfg = model.cfg
    word_list = words.read_word_list(words_file, cfg.vocab) if words_file else None
    if streaming and not cfg.streaming:
        raise EvalError(f"{model_spec} does not stream (chunk_frames = 0)",
                        "drop --streaming, or evaluate a streaming model")
    utterances = load_split(data, split, cfg.vocab)
    if sources:
        have = sorted({u.source or "" for u in utterances})
        utterances = [u for u in utterances if u.source in sources]
        if not utterances:
            raise DataError(f"no utterance of {split} in {data} is from "
                            f"{', '.join(sources)}",
                            f"sources there: {', '.join(have) if any(have) else 'none named'}")
    utterances = utterances[:limit]
    source_of = {u.uid: u.source or "" for u in utterances}
    prepare = None
    if room_tone_ms > 0:
        from tinygen.speech.data.augment import fill_room_tone

        length = round(room_tone_ms * cfg.sample_rate / 1000)
        prepare = lambda w: fill_room_tone(w, length, cfg.sample_rate)  # noqa: E731
    dataset = SpeechDataset(utterances, cfg, prepare=prepare)
    skips = SkipLog()
    examples: list[tuple[np.ndarray, str]] = []
    groups: list[str] = []
    def bar() -> Progress:
        return Progress("[progress.description]{task.description}", BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(),
                        console=Console(stderr=True), disable=not progress, transient=True)

    skipped: list[Skipped] = []
    with bar() as features:
        task = features.add_task(f"features {split}", total=len(dataset))
        for i in range(len(dataset)):
            item = dataset[i]
            if isinstance(item, Example) and not item.text.strip():
                item = Skipped(utterances[i].path, "empty transcript")
            if isinstance(item, Example):
                examples.append((item.feats.numpy(), item.text))
                groups.append(source_of[item.uid])
            else:
                skipped.append(item)
            features.advance(task)
    if not examples:  # a CER over nothing would read 0.0% and pass a gate
        first = (f"; first: {skipped[0].path.name}: {skipped[0].reason}"
                 if skipped else "")
        raise DataError(f"the '{split}' split of {data} has no usable utterance "
                        f"({len(utterances)} listed, {len(skipped)} skipped{first})",
                        "check the corpus, or score another --split")
    skips.add(skipped)
    backends: dict[str, Backend] = {"float": float_backend(model)}
    if cfg.streaming:
        backends["float-stream"] = stream_backend(model)
    frames = None
    build_report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tinygen-eval-") as workdir:
        if compiled and cfg.streaming:  # chunk by chunk, no window
            more, build_report = stream_backends(model, calib_data or data, calib,
                                                 Path(workdir))
            backends.update(more)
        elif compiled:
            more, frames, build_report = compiled_backends(
                model, examples, calib_data or data, window_ms, calib, Path(workdir))
            backends.update(more)
        rows, word_rows = [], []
        by_source: dict[str, list[dict[str, Any]]] = {}
        with bar() as scoring:
            for name, fn in backends.items():
                task = scoring.add_task(f"score {name}", total=len(examples))
                per: dict[str, Tally] = {}
                also = None
                if word_list is not None:
                    also = (_word_decoder(word_list), Tally())
                rows.append(score(fn, examples, cfg.vocab, lambda t=task: scoring.advance(t),
                                  groups=groups, by_group=per, also=also).row(name))
                if also is not None:
                    word_rows.append(also[1].row(name))
                for src, tally in sorted(per.items()):
                    if src:
                        by_source.setdefault(src, []).append(tally.row(name))
    return {
        "model": str(model_spec),
        "name": cfg.name,
        "data": str(data),
        "split": split,
        "utterances": len(examples),
        "skipped": skips.count,
        "window_frames": frames,
        "room_tone_ms": room_tone_ms or None,
        "feature_frames": sum(len(feats) for feats, _ in examples),
        "unique_params": unique_params(model),
        "virtual_params": virtual_params(model),
        "flash_bytes": build_report.get("flash", {}).get("total_bytes"),
        "arena_bytes": build_report.get("arena_bytes"),
        "streaming": build_report.get("streaming"),
        "rows": rows,
        "by_source": by_source,
        **({"words": {"file": str(words_file), "entries": len(word_list.texts)},
            "word_rows": word_rows} if word_list is not None else {}),
    }


def _word_decoder(word_list: Any) -> Callable[[np.ndarray], str]:
    """Logits -> the best entry's text: int8 logits by tinygen.audio.words' integer
    decoder (what the C runs), float logits by the same Viterbi in float."""
    import numpy as np

    from tinygen.audio import words

    def run(logits: np.ndarray) -> str:
        x = np.asarray(logits)
        i = words.decode(x, word_list).index if x.dtype == np.int8 else \
            words.best_entry(x, word_list)
        return word_list.texts[i] if i >= 0 else ""

    return run


def cmd_eval(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from tinygen.speech.data.dataset import warnings_as_lines

    with warnings_as_lines():
        report = evaluate(args.model, args.data, args.split, limit=args.limit,
                          progress=not args.json, compiled=not args.float_only,
                          window_ms=args.window_ms, calib=args.calib,
                          streaming=args.streaming, sources=args.source,
                          calib_data=args.calib_data, words_file=args.words,
                          room_tone_ms=args.room_tone_ms)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    tone = (f", room tone to {report['room_tone_ms']:g} ms" if report["room_tone_ms"]
            else "")
    table = Table(title=f"{report['name']} on {report['data']} ({report['split']}, "
                        f"{report['utterances']} utterances{tone})")
    for col in ("backend", "CER", "WER"):
        table.add_column(col, justify="right" if col in ("CER", "WER") else "left")
    for r in report["rows"]:
        table.add_row(r["backend"], f"{100 * r['cer']:.2f}%", f"{100 * r['wer']:.2f}%")
    console = Console()
    console.print(table)
    if report.get("word_rows"):
        wt = Table(title=f"decoded as the best of {report['words']['entries']} entries of "
                         f"{report['words']['file']}")
        for col in ("backend", "CER", "WER", "utterances right"):
            wt.add_column(col, justify="left" if col == "backend" else "right")
        for r in report["word_rows"]:
            wt.add_row(r["backend"], f"{100 * r['cer']:.2f}%", f"{100 * r['wer']:.2f}%",
                       f"{100 * r['exact']:.1f}%" if "exact" in r else "-")
        console.print(wt)
    if report["by_source"]:
        per = Table(title="by source")
        for col in ("source", "backend", "utterances", "CER", "WER"):
            per.add_column(col, justify="left" if col in ("source", "backend") else "right")
        for src, src_rows in report["by_source"].items():
            for r in src_rows:
                per.add_row(src, r["backend"], str(r["utterances"]), f"{100 * r['cer']:.2f}%",
                            f"{100 * r['wer']:.2f}%")
        console.print(per)
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
    p.add_argument("--limit", type=int_arg(1, 10**9), default=None, metavar="N",
                   help="score only the first N utterances")
    p.add_argument("--float-only", action="store_true",
                   help="score the float model only (no int8 reference, no C build)")
    p.add_argument("--window-ms", type=float_arg(0.0, MAX_WINDOW_MS), default=0.0, metavar="MS",
                   help="window of the compiled model (default: the longest utterance)")
    p.add_argument("--calib", type=int_arg(1, MAX_INPUTS), default=32, metavar="N",
                   help="calibration utterances from the train split (default 32)")
    p.add_argument("--streaming", action="store_true",
                   help="require a streaming model; its rows then run chunk by chunk over "
                        "whole utterances (a streaming model always does)")
    p.add_argument("--source", action="append", default=None, metavar="NAME",
                   help="score only utterances of this source (a `source` field of a "
                        "corpus from `tinygen data merge`); repeat for several")
    p.add_argument("--calib-data", type=Path, default=None, metavar="DIR",
                   help="corpus whose train split calibrates the int8 model "
                        "(default: --data)")
    p.add_argument("--words", type=Path, default=None, metavar="FILE",
                   help="also decode each backend's logits as the best entry of this word "
                        "list (one word or phrase per line; command recognition)")
    p.add_argument("--room-tone-ms", type=float_arg(0.0, MAX_WINDOW_MS), default=0.0,
                   metavar="MS",
                   help="lengthen each recording to MS with its own room tone (its quietest "
                        "20 ms frames, looped): sustained background after the speech, as "
                        "when the gate stays open in a noisy room (default 0: none)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_eval)
