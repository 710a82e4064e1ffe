"""Host benchmark: tinygen's generated C vs TensorFlow Lite Micro on the same model.

For each preset it builds the host target and the .tflite export from the same
calibration, then prints side by side, in one run:

- time per inference: the C build's best of N ``tg_model_invoke()`` calls vs the best of N
  ``Interpreter.invoke()`` calls of the tflite_micro wheel (same machine, same moment);
- arena: tinygen's static plan vs TFLM's "Arena allocation total";
- flash: weights + per-use quantization data + schedule, vs the same network with nothing
  shared (virtual parameters at one byte each), vs the int8 floor (one byte per unique
  parameter);
- arena vs its floor: the largest number of bytes live at any one step.

Usage: python bench/bench_host.py [--presets mcu-tiny,paper-5m] [--runs 30] [--json]
The TFLM model holds LayerNorm as nine builtins (TFLite has no LayerNorm op), so its
arena also holds those intermediates: that is what a TFLM deployment of this model costs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tinygen.build import BuildOptions, build
from tinygen.compiler.pipeline import compile_model
from tinygen.speech.calib import inputs, window_frames
from tinygen.speech.checkpoint import load_model
from tinygen.targets import CFLAGS, find_compiler, host
from tinygen.tflite.export import to_tflite
from tinygen.tflite.runner import default_arena_bytes, tflm_arena_bytes

BENCH_MAIN = Path(__file__).with_name("host_bench.c")


def tflm_best_ns(blob: bytes, xq: bytes, shape: list[int], runs: int) -> float:
    """The best of ``runs`` Interpreter.invoke() times of the tflite_micro wheel (ns)."""
    from tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(blob, arena_size=default_arena_bytes(blob))
    interp.set_input(np.frombuffer(xq, np.int8).reshape(shape), 0)
    interp.invoke()
    best = 1e30
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        interp.invoke()
        best = min(best, time.perf_counter_ns() - t0)
    return best


def bench_preset(name: str, runs: int, tmp: Path) -> dict[str, object]:
    model = load_model(f"preset:{name}") if ":" not in name and not name.endswith(".pt") \
        else load_model(name)
    cfg = model.cfg
    frames = window_frames(cfg, 1000)
    cal, vec = inputs(cfg, frames, 8, seed=0), inputs(cfg, frames, 1, seed=1)
    out = tmp / name.replace(":", "_").replace("/", "_")
    report = build(model, out, cal, vec, BuildOptions(target="host"), cfg.name)
    exe = out / "host" / "bench"
    srcs = [BENCH_MAIN, *host.sources(out)[1:]]
    subprocess.run([*find_compiler().split(), *CFLAGS, f"-I{out / 'model'}",
                    f"-I{out / 'lib' / 'tinygen'}", *map(str, srcs), "-o", str(exe)],
                   check=True)
    xq = (out / "test_vectors" / "input_0.bin").read_bytes()
    c_ns = float(subprocess.run([str(exe), str(runs)], input=xq, capture_output=True,
                                check=True).stdout.split()[1])

    blob, _ = to_tflite(compile_model(model, frames, cal).tflite_int8)
    best = tflm_best_ns(blob, xq, report["input"]["shape"], runs)
    tflm_arena = tflm_arena_bytes(blob)
    flash = report["flash"]
    from tinygen.compiler.plan import make_plan

    floor_arena = max(make_plan(compile_model(model, frames, cal[:1]).int8).occupancy())
    return {
        "preset": name,
        "macs": report["macs_per_inference"],
        "c_us": c_ns / 1e3,
        "tflm_us": best / 1e3,
        "speedup_vs_tflm": best / c_ns,
        "c_gmacs": report["macs_per_inference"] / c_ns,
        "arena": report["arena_bytes"],
        "tflm_arena": tflm_arena,
        "arena_ratio_vs_tflm": report["arena_bytes"] / tflm_arena,
        "arena_floor": floor_arena,
        "arena_ratio_vs_floor": report["arena_bytes"] / floor_arena,
        "flash": flash["total_bytes"],
        "flash_unshared_weights": report["virtual_params"],
        "flash_ratio_vs_unshared": flash["total_bytes"] / report["virtual_params"],
        "flash_ratio_vs_int8_floor": flash["total_bytes"] / report["unique_params"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="mcu-tiny,share-blocks,paper-5m")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.presets.split(","):
            rows.append(bench_preset(name, args.runs, Path(tmp)))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':14s} {'C us':>9s} {'TFLM us':>9s} {'x faster':>8s} {'GMAC/s':>7s} "
          f"{'arena':>9s} {'TFLM arena':>10s} {'ratio':>6s} {'vs floor':>8s} "
          f"{'flash':>10s} {'vs unshared':>11s} {'vs int8 floor':>13s}")
    for r in rows:
        print(f"{r['preset']:14s} {r['c_us']:9.0f} {r['tflm_us']:9.0f} "
              f"{r['speedup_vs_tflm']:8.2f} {r['c_gmacs']:7.2f} {r['arena']:9,d} "
              f"{r['tflm_arena']:10,d} {r['arena_ratio_vs_tflm']:6.2f} "
              f"{r['arena_ratio_vs_floor']:8.2f} {r['flash']:10,d} "
              f"{r['flash_ratio_vs_unshared']:11.2f} {r['flash_ratio_vs_int8_floor']:13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
