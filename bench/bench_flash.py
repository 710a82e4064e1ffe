"""Flash benchmark: where a model's flash goes, and what scale tying costs in accuracy.

For each model (default: the shipped models/mcu-tiny.pt and preset:paper-5m) the int8
model is compiled twice from the same calibration windows: with scale tying (the default:
the uses of a shared weight or layer norm share their activation ranges, so their
multipliers, shifts, biases and tables are stored once; docs/quantization.md) and without
(every use calibrated on its own). For each it prints the generated constant data by kind
(weights; per-channel multipliers; int32 biases; the packed int8 shifts and signs; layer
norm data; logistic tables) and the schedule, the total against the unique parameter
count, and the float-vs-int8 SNR over held-out windows. With ``--data CORPUS`` it also
decodes ``--limit`` utterances of the test split with the int8 reference of each and
prints CER and WER (the same windowing as ``tinygen eval``).

The totals are report.json's ``flash`` (weights + quantization data + schedule); audio
tables are not part of them.

Usage: python bench/bench_flash.py [--models models/mcu-tiny.pt preset:paper-5m]
                                   [--calib 8] [--held-out 8] [--data /path/synth12
                                   --limit 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tinygen.audio_build import audio_input_range
from tinygen.compiler import codegen, plan
from tinygen.compiler.capture import parameter_counts
from tinygen.compiler.pipeline import Compiled, compile_model
from tinygen.compiler.quantize import dequantize_array
from tinygen.speech.calib import inputs, window_frames
from tinygen.speech.checkpoint import load_model


def _label(a: codegen.PoolArray) -> str:
    if a.kind != "quant":
        return a.kind
    if a.symbol == codegen.PACKED_SYMBOL:
        return "int8 shifts, signs"
    # tg_q_<param>_<n>: per-channel multipliers; a layer norm's int32 shifts and biases
    return {"multiplier": "multipliers", "shift": "layer norm shifts",
            "bias": "layer norm biases"}.get(a.symbol.split("_")[2], a.symbol)


def flash(compiled: Compiled) -> dict[str, Any]:
    planned = plan.make_plan(compiled.int8)
    gen = codegen.generate(compiled.int8, planned, "bench", {})
    by_kind: dict[str, int] = {}
    for a in gen.pool.arrays:
        by_kind[_label(a)] = by_kind.get(_label(a), 0) + a.nbytes
    total = gen.weights_bytes + gen.quant_bytes + gen.schedule_bytes
    unique = int(parameter_counts(compiled.int8)["unique_params"])
    return {"weights_bytes": gen.weights_bytes, "quant_bytes": gen.quant_bytes,
            "schedule_bytes": gen.schedule_bytes, "total_bytes": total,
            "unique_params": unique, "ratio": total / unique, "by_kind": by_kind}


def snr_db(compiled: Compiled, windows: list[np.ndarray]) -> float:
    """Float vs int8 reference over ``windows``: signal power over error power, pooled."""
    signal = noise = 0.0
    q_out = compiled.output_quant
    for x in windows:
        ref = compiled.run_float(x).astype(np.float64)
        got = dequantize_array(compiled.run_int8(compiled.quantize_input(x)), q_out)
        signal += float(np.sum(ref ** 2))
        noise += float(np.sum((ref - got) ** 2))
    return 10.0 * np.log10(signal / max(noise, 1e-30))


def examples(model: Any, data: Path, limit: int) -> list[tuple[np.ndarray, str]]:
    """(features, text) of the first ``limit`` test utterances of ``data``."""
    from tinygen.speech.data.dataset import Example, SpeechDataset, load_split

    dataset = SpeechDataset(load_split(data, "test", model.cfg.vocab)[:limit], model.cfg)
    items = (dataset[i] for i in range(len(dataset)))
    return [(item.feats.numpy(), item.text) for item in items
            if isinstance(item, Example) and item.text.strip()]


def cer(model: Any, c: Compiled, frames: int, tests: list[tuple[np.ndarray, str]]
        ) -> dict[str, Any]:
    """CER/WER of the int8 reference ``c`` on ``tests`` (each at the start of the
    window, as ``tinygen eval`` does)."""
    from tinygen.speech.evaluate import Window, score

    def run(x: np.ndarray) -> np.ndarray:
        return dequantize_array(c.run_int8(c.quantize_input(x)), c.output_quant)

    return score(Window(frames).wrap(run), tests, model.cfg.vocab).row("int8-reference")


def bench(spec: str, n_calib: int, n_held: int, data: Path | None, limit: int
          ) -> dict[str, Any]:
    model = load_model(spec)
    tests = examples(model, data, limit) if data is not None else []
    # tinygen eval's window: the longest test utterance; else 1 s
    frames = max(f.shape[0] for f, _ in tests) if tests else window_frames(model.cfg, 1000)
    cal = inputs(model.cfg, frames, n_calib, seed=0, data=data, split="train")
    held = inputs(model.cfg, frames, n_held, seed=1, data=data,
                  split="dev" if data is not None else "train")
    out: dict[str, Any] = {"model": spec, "window_frames": frames, "calib": n_calib,
                           "held_out": n_held}
    for tie in (False, True):
        c = compile_model(model, frames, cal, input_range=audio_input_range(model),
                          tie_scales=tie)
        side = out["tied" if tie else "untied"] = {**flash(c), "snr_db": snr_db(c, held)}
        if tests:
            side["eval"] = cer(model, c, frames, tests)
    return out


def print_table(r: dict[str, Any]) -> None:
    print(f"{r['model']}: {r['window_frames']}-frame window, {r['calib']} calibration and "
          f"{r['held_out']} held-out windows")
    kinds = sorted({k for side in ("untied", "tied") for k in r[side]["by_kind"]})
    print(f"  {'bytes':<22}{'untied':>12}{'tied':>12}")
    for k in kinds:
        print(f"  {k:<22}{r['untied']['by_kind'].get(k, 0):>12,}"
              f"{r['tied']['by_kind'].get(k, 0):>12,}")
    for key in ("quant_bytes", "schedule_bytes", "total_bytes"):
        print(f"  {key:<22}{r['untied'][key]:>12,}{r['tied'][key]:>12,}")
    print(f"  {'total / unique params':<22}{r['untied']['ratio']:>12.3f}"
          f"{r['tied']['ratio']:>12.3f}   ({r['tied']['unique_params']:,} unique params)")
    print(f"  {'SNR float vs int8 dB':<22}{r['untied']['snr_db']:>12.2f}"
          f"{r['tied']['snr_db']:>12.2f}")
    if "eval" in r["tied"]:
        for name in ("cer", "wer"):
            print(f"  {name.upper() + ' %':<22}{100 * r['untied']['eval'][name]:>12.2f}"
                  f"{100 * r['tied']['eval'][name]:>12.2f}   "
                  f"({r['tied']['eval']['utterances']} test utterances)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["models/mcu-tiny.pt", "preset:paper-5m"])
    ap.add_argument("--calib", type=int, default=8, help="calibration windows (default 8)")
    ap.add_argument("--held-out", type=int, default=8, help="SNR windows (default 8)")
    ap.add_argument("--data", type=Path, default=None,
                    help="corpus: calibrate on its train split, SNR on dev, CER on test")
    ap.add_argument("--limit", type=int, default=200, help="test utterances for CER")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    results = [bench(m, args.calib, args.held_out, args.data, args.limit)
               for m in args.models]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print_table(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
