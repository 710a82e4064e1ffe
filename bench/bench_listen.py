"""Listen-app benchmark: how much of an always-on stream the gate keeps from the model.

Builds mcu-tiny (the shipped model, a 2 s window) for the host with ``--app listen`` and
feeds ``tinygen_listen`` a long stream as a microphone would hear it: N utterances of the
project's synthesizer (random phrase, voice, speed, noise kind and SNR, level; as the
corpus makes them) joined by 0.5 .. 3 s gaps of quiet white noise (RMS 4 LSB), in
256-sample mic blocks. Reports:

- blocks heard, blocks the gate skipped (the fraction is the share of the stream the
  model never sees), and blocks that overlap an utterance (the speech share);
- model runs (windows) with the gate, against the runs of an always-on window
  (one 2 s window per 2 s of audio) -- the model is ~95% of the compute per run;
- the words heard against the phrases spoken (CER over the whole stream);
- that the C lines equal the Python golden (tinygen.audio.listen), as the tests check.

Usage: PYTHONPATH=. python bench/bench_listen.py [--utterances 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import audio_driver as D
from tests.test_listen import golden, parse
from tinygen.audio import frontend_tables
from tinygen.audio.listen import block_bounds
from tinygen.audio_build import audio_input_range
from tinygen.build import BuildOptions, build
from tinygen.compiler.pipeline import compile_model
from tinygen.resources import models_dir
from tinygen.speech.calib import inputs, window_frames
from tinygen.speech.checkpoint import load_model
from tinygen.speech.evaluate import edit_distance

WINDOW_MS = 2000
MIC_BLOCK = 256


def stream(n: int, seed: int) -> tuple[np.ndarray, list[tuple[int, int]], list[str]]:
    """The utterances with gaps; each utterance's [start, end) samples; the phrases."""
    rng = np.random.default_rng(seed)
    parts, spans, texts, pos = [], [], [], 0
    for pcm, text in D.speech_with_text(n, seed):
        gap = int(16000 * rng.uniform(0.5, 3.0))
        parts += [np.round(rng.standard_normal(gap) * 4).astype(np.int16), pcm]
        spans.append((pos + gap, pos + gap + len(pcm)))
        texts.append(text)
        pos += gap + len(pcm)
    tail = np.round(rng.standard_normal(16000) * 4).astype(np.int16)
    return np.concatenate([*parts, tail]).astype(np.int16), spans, texts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--utterances", type=int, default=20)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    model = load_model(str(models_dir() / "mcu-tiny.pt"))
    cfg = model.cfg
    frames = window_frames(cfg, WINDOW_MS)
    cal = inputs(cfg, frames, 8, seed=0)
    compiled = compile_model(model, frames, cal, input_range=audio_input_range(model))
    pcm, spans, texts = stream(args.utterances, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "host"
        report = build(model, out, cal, cal[:1], BuildOptions(target="host", vectors=1,
                                                              app="listen"), "mcu-tiny",
                       compiled=compiled)
        proc = subprocess.run([str(out / "host" / "tinygen_listen")],
                              input=struct.pack("<i", MIC_BLOCK) + pcm.astype("<i2").tobytes(),
                              capture_output=True, check=True, timeout=3600)
        heard = parse(proc.stdout.decode())
        built = {"report": report, "compiled": compiled, "cfg": cfg,
                 "tables": frontend_tables(cfg)}
        same = heard == golden(built, pcm)
    info = report["listen"]
    bounds = block_bounds(len(pcm), frontend_tables(cfg).cfg, info["block_frames"])
    speech = sum(any(s < e2 and s2 < e for s2, e2 in spans) for s, e in bounds)
    said = " ".join(line.text for line in heard.lines)
    spoken = " ".join(texts)
    seconds = len(pcm) / cfg.sample_rate
    result: dict[str, Any] = {
        "utterances": args.utterances, "audio_seconds": round(seconds, 2),
        "block_ms": info["block_ms"], "blocks": heard.blocks, "skipped": heard.skipped,
        "skipped_fraction": round(heard.skipped / heard.blocks, 4),
        "speech_blocks": speech, "speech_fraction": round(speech / heard.blocks, 4),
        "model_runs": heard.runs,
        "always_on_runs": int(seconds * 1000 // WINDOW_MS),
        "model_work_vs_always_on": round(heard.runs / max(1, int(seconds * 1000 //
                                                               WINDOW_MS)), 4),
        "cer": round(edit_distance(spoken, said) / len(spoken), 4),
        "c_equals_golden": same,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:>18}: {v}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
