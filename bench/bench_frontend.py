"""Audio front-end benchmark: Python speed, C cost on qemu-m4, agreement with float.

1. **Python reference speed** (tinygen.audio.features, one core): times real time on
   espeak-ng speech, best of 7 runs, by the process's CPU time (the figure: a shared
   machine's waiting time is left out) and by wall-clock time. Training computes
   features for ~10,000 utterances per epoch; goal >= 200x.
2. **C instructions per second of audio on qemu-m4** (mps2-an386, Cortex-M4, -O2,
   portable C): tests/c/tg_audio_driver.c pushes the same speech in 10 ms blocks, each
   push between the instruction-count markers of firmware/tools/qemu_icount_plugin.c;
   with a step marker at each phase of a frame (window, FFT, split + power, mel + log).
   Goal: <= 5% of the model's instructions per second of audio: mcu-tiny's one 1 s
   window with the portable kernels on the same qemu-m4, measured in the same run by
   bench/bench_qemu.py's attribution (``--model`` names another preset or checkpoint;
   ``--model none`` skips it). Counts are exact instructions, not cycles.
3. **Agreement with the float features** of tinygen.speech.features (torch.stft, centred
   frames; dropping 120 samples aligns our frame k with its frame k + 2): mean and 99th
   percentile of |dequantized int8 - float| in feature units over all frames.
4. **Gate** (tinygen.audio.gate, default settings, 100 ms chunks): the fraction of chunks
   it skips on the utterances joined by 2 s of quiet white noise (RMS 8 LSB), as an
   always-on microphone hears them, and how many speech chunks (chunks inside an
   utterance's own samples) it skips.
5. **Accuracy** (``--accuracy N`` utterances, 0 to skip): the shipped mcu-tiny model
   (trained on the float features) decodes each utterance from the float features and
   from the dequantized int8 features of this front end; CER of both (greedy CTC).

Usage: PYTHONPATH=. python bench/bench_frontend.py [--utterances 40] [--accuracy 30]
                                                  [--model mcu-tiny | none] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import audio_driver as D
from tinygen.audio import frontend as F
from tinygen.speech.config import DEFAULT_VOCAB, ConformerConfig
from tinygen.targets import qemu

PHASES = ("window", "fft", "split_power", "mel_log")


def python_speed(audio: np.ndarray, tables: F.FrontendTables) -> tuple[float, float]:
    """Times real time: by this process's CPU time (one core, unaffected by other
    processes waiting for the CPU) and by wall-clock time; best of 7 runs each."""
    seconds = len(audio) / tables.cfg.sample_rate
    cpu = wall = float("inf")
    for _ in range(7):
        c0, w0 = time.process_time(), time.perf_counter()
        F.features(audio, tables)
        cpu = min(cpu, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
    return seconds / cpu, seconds / wall


def qemu_cost(audio: np.ndarray, tables: F.FrontendTables) -> dict[str, Any]:
    hop = tables.cfg.hop_length
    chunks = [audio[i:i + hop] for i in range(0, len(audio), hop)]
    with tempfile.TemporaryDirectory(prefix="tinygen-bench-fe-") as tmp:
        folder = Path(tmp)
        elf = D.build_qemu(folder, tables, DEFAULT_VOCAB, phases=True)
        plugin = qemu.compile_plugin(qemu.firmware_dir() / "tools" / qemu.PLUGIN_SOURCE,
                                     folder / qemu.PLUGIN)
        out, steps = D.run_qemu(elf, D.frontend_cmd(chunks), plugin)
    frames, _ = D.frontend_read(out, 0, len(chunks), tables.cfg.n_mels)
    if not np.array_equal(frames, F.features(audio, tables)):
        raise SystemExit("qemu-m4 front end differs from the Python reference")
    # per push: step 0 is the push's own work, then 4 phases per frame it completed
    outside = sum(s[0] for s in steps)
    phases = np.zeros(len(PHASES))
    for s in steps:
        phases += np.array(s[1:], dtype=np.float64).reshape(-1, len(PHASES)).sum(axis=0)
    seconds = len(audio) / tables.cfg.sample_rate
    total = outside + phases.sum()
    return {"instructions_per_second": total / seconds,
            "instructions_per_frame": total / len(frames),
            "per_frame_phases": {k: v / len(frames) for k, v in zip(PHASES, phases,
                                                                     strict=True)}}


def model_cost(preset: str) -> float:
    """The preset's instructions per 1 s window on qemu-m4, portable kernels
    (bench_qemu.bench: it checks the outputs against the golden reference)."""
    from bench_qemu import bench  # bench/ is the script's folder

    with tempfile.TemporaryDirectory(prefix="tinygen-bench-fe-model-") as tmp:
        return float(bench(preset, "qemu-m4", 1, Path(tmp))["instructions_per_inference"])


def agreement(utterances: list[np.ndarray]) -> dict[str, float]:
    import torch

    from tinygen.speech.features import LogMel

    cfg = ConformerConfig()
    logmel, tables = LogMel(cfg), F.frontend_tables(cfg)
    diffs = []
    for x in utterances:
        q = F.features(x[120:], tables)
        with torch.no_grad():
            ref = logmel(torch.from_numpy(x.astype(np.float32) / 32768)[None])[0].numpy()
        n = min(len(q), ref.shape[0] - 4)
        diffs.append(np.abs(F.dequantize(q[:n]) - ref[2:2 + n]).reshape(-1))
    d = np.concatenate(diffs)
    return {"mean_abs": float(d.mean()), "p99_abs": float(np.percentile(d, 99)),
            "max_abs": float(d.max()), "values": int(d.size)}


def gate_stats(utterances: list[np.ndarray]) -> dict[str, float]:
    from tinygen.audio.gate import Gate

    rng = np.random.default_rng(0)
    pieces, is_speech = [], []
    for x in utterances:
        gap = np.round(rng.standard_normal(32000) * 8).astype(np.int16)
        pieces += [gap, x]
        is_speech += [np.zeros(len(gap), bool), np.ones(len(x), bool)]
    audio, speech = np.concatenate(pieces), np.concatenate(is_speech)
    g = Gate()
    runs = np.array([g.push(audio[i:i + 1600]) for i in range(0, len(audio) - 1599, 1600)])
    inside = np.array([speech[i:i + 1600].all() for i in range(0, len(audio) - 1599, 1600)])
    return {"chunks": len(runs), "skipped": float(1 - runs.mean()),
            "speech_chunks_skipped": float(1 - runs[inside].mean())}


def accuracy(n: int) -> dict[str, float]:
    import torch

    from tinygen.resources import models_dir
    from tinygen.speech.checkpoint import load_model
    from tinygen.speech.evaluate import edit_distance, float_backend, greedy_decode
    from tinygen.speech.features import LogMel

    model = load_model(models_dir() / "mcu-tiny.pt")
    cfg = model.cfg
    run, logmel, tables = float_backend(model), LogMel(cfg), F.frontend_tables(cfg)
    errors = {"float_features": 0, "int8_frontend": 0}
    chars = 0
    for pcm, text in D.speech_with_text(n, seed=31):
        with torch.no_grad():
            fl = logmel(torch.from_numpy(pcm.astype(np.float32) / 32768)[None])[0].numpy()
        q = F.dequantize(F.features(pcm, tables))
        for key, feats in (("float_features", fl), ("int8_frontend", q)):
            errors[key] += edit_distance(text, greedy_decode(run(feats), cfg.vocab))
        chars += len(text)
    return {**{f"cer_{k}": v / chars for k, v in errors.items()}, "chars": chars}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--utterances", type=int, default=40)
    ap.add_argument("--accuracy", type=int, default=30)
    ap.add_argument("--model", default="mcu-tiny",
                    help="preset whose 1 s window the front end is compared with, or none")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tables = F.frontend_tables()
    utterances = D.speech(args.utterances, seed=21)
    audio = np.concatenate(utterances)
    seconds = len(audio) / tables.cfg.sample_rate
    cpu, wall = python_speed(audio, tables)
    result = {"audio_seconds": seconds, "python_x_real_time": cpu,
              "python_x_real_time_wall": wall,
              "qemu_m4": qemu_cost(audio, tables), "agreement": agreement(utterances),
              "tables_bytes": tables.nbytes(), "gate": gate_stats(utterances)}
    if args.model != "none":
        model = model_cost(args.model)
        result["model"] = {"preset": args.model, "instructions_per_second": model}
        result["qemu_m4"]["share_of_model"] = \
            result["qemu_m4"]["instructions_per_second"] / model
    if args.accuracy:
        result["accuracy"] = accuracy(args.accuracy)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    q = result["qemu_m4"]
    a = result["agreement"]
    print(f"audio: {args.utterances} espeak-ng utterances, {seconds:.1f} s")
    print(f"python reference: {cpu:.0f}x real time on one core by CPU time "
          f"({wall:.0f}x by wall-clock time on this machine now)")
    share = (f"; {100 * q['share_of_model']:.2f}% of {args.model}'s "
             f"{result['model']['instructions_per_second'] / 1e6:.1f} M per 1 s window, "
             f"same machine, portable kernels" if "model" in result else "")
    print(f"C on qemu-m4: {q['instructions_per_second'] / 1e6:.2f} M instructions per "
          f"second of audio ({q['instructions_per_frame']:,.0f} per frame{share})")
    print("  per frame: " + ", ".join(f"{k} {v:,.0f}"
                                      for k, v in q["per_frame_phases"].items()))
    print(f"vs float features: mean |diff| {a['mean_abs']:.4f}, p99 {a['p99_abs']:.4f}, "
          f"max {a['max_abs']:.4f} feature units (int8 step {F.SCALE})")
    print(f"tables: {result['tables_bytes']:,} bytes of flash")
    gs = result["gate"]
    print(f"gate: skips {100 * gs['skipped']:.0f}% of {gs['chunks']} chunks of 100 ms "
          f"(utterances joined by 2 s of quiet noise); skips "
          f"{100 * gs['speech_chunks_skipped']:.1f}% of the chunks inside utterances")
    if args.accuracy:
        c = result["accuracy"]
        print(f"mcu-tiny CER on {args.accuracy} utterances ({c['chars']} chars): float features "
              f"{100 * c['cer_float_features']:.2f}%, int8 front end "
              f"{100 * c['cer_int8_frontend']:.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
