"""Backends benchmark: one model on every kernel backend tinygen can run here, in one run.

Rows (all from one calibration, so one int8 model and one flash figure):

- QEMU, instructions (bench_qemu's per-step attribution): portable on qemu-m4, and
  CMSIS-NN v7.0.0 on qemu-m4, qemu-m7 and qemu-m55 (``--backend cmsis-nn``, compiled from
  $TINYGEN_CMSIS_NN with each board's -mcpu): instructions per inference and per MAC,
  and per MAC of each op kind with MACs (fully connected, conv2d, depthwise, batch
  matmul); every run is checked bit-exact with the golden reference first;
- host, time: the C build with the portable kernels and with ESP-NN's ANSI C path
  (``--backend esp-nn``, from $TINYGEN_ESP_NN), best of N ``tg_model_invoke()`` calls,
  against the best of N ``Interpreter.invoke()`` of the tflite_micro wheel on the
  model's .tflite;
- flash: weights + quantization data + schedule (report.json) over unique parameters.

A backend whose library variable is unset is left out, saying so.

Usage: python bench/bench_backends.py [--preset mcu-tiny] [--vectors 1] [--runs 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_host import tflm_best_ns  # bench/ is the script's folder
from bench_qemu import CALIB, KIND_NAMES, bench

from tinygen.build import BuildOptions, build
from tinygen.compiler.pipeline import compile_model
from tinygen.speech.calib import inputs, window_frames
from tinygen.speech.checkpoint import load_model
from tinygen.targets import CFLAGS, find_compiler, host, nnlib
from tinygen.tflite.export import to_tflite

BENCH_MAIN = Path(__file__).with_name("host_bench.c")
QEMU_ROWS = [("portable", "qemu-m4"), ("cmsis-nn", "qemu-m4"), ("cmsis-nn", "qemu-m7"),
             ("cmsis-nn", "qemu-m55")]
MAC_KINDS = ("fully_connected", "conv2d", "depthwise_conv2d", "batch_matmul")


def have(backend: str) -> bool:
    lib = nnlib.of(backend)
    return lib is None or bool(os.environ.get(lib.env))


def host_time(preset: str, backend: str, runs: int, tmp: Path) -> dict[str, Any]:
    """Best-of-``runs`` time of the host C build of ``preset`` with ``backend``."""
    model = load_model(f"preset:{preset}")
    frames = window_frames(model.cfg, 1000)
    cal, vec = inputs(model.cfg, frames, CALIB, seed=0), inputs(model.cfg, frames, 1, seed=1)
    out = tmp / f"host-{backend}"
    report = build(model, out, cal, vec, BuildOptions(target="host", backend=backend), preset)
    kernels = report.get("host")
    extra: list[str] = []
    archive: list[str] = []
    if kernels:
        lib = nnlib.LIBRARIES[backend]
        cc = find_compiler()
        archive = [str(nnlib.library(backend, "host", cc, "ar", ()))]
        extra = [f"-I{out / 'host'}", *kernels["defines"],
                 *lib.adapter_flags(nnlib.root(backend, "host"))]
    exe = out / "host" / "bench"
    srcs = [BENCH_MAIN, *host.sources(out, kernels=kernels)[1:]]
    subprocess.run([*find_compiler().split(), *CFLAGS, *extra, f"-I{out / 'model'}",
                    f"-I{out / 'lib' / 'tinygen'}", f"-I{out / 'lib' / 'tinygen' / 'audio'}",
                    *map(str, srcs), *archive, "-o", str(exe)], check=True)
    xq = (out / "test_vectors" / "input_0.bin").read_bytes()
    ns = float(subprocess.run([str(exe), str(runs)], input=xq, capture_output=True,
                              check=True).stdout.split()[1])
    return {"backend": backend, "us": ns / 1e3, "report": report, "input": xq,
            "model": model, "frames": frames, "cal": cal}


def tflm_time(row: dict[str, Any], runs: int) -> float:
    blob, _ = to_tflite(compile_model(row["model"], row["frames"], row["cal"]).tflite_int8)
    return tflm_best_ns(blob, row["input"], row["report"]["input"]["shape"], runs) / 1e3


def run(preset: str, vectors: int, runs: int) -> dict[str, Any]:
    result: dict[str, Any] = {"preset": preset, "qemu": [], "host": [], "left_out": []}
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        for backend, target in QEMU_ROWS:
            if not have(backend):
                result["left_out"].append(f"{backend} on {target}: "
                                          f"${nnlib.LIBRARIES[backend].env} is not set")
                continue
            folder = Path(tmp) / f"{backend}-{target}"
            folder.mkdir()
            r = bench(preset, target, vectors, folder, backend)
            rep = json.loads((folder / f"{preset}-{target}" / "report.json").read_text())
            r["flash_per_unique_param"] = rep["flash"]["total_bytes"] / rep["unique_params"]
            result["qemu"].append(r)
        rows = []
        for backend in ("portable", "esp-nn"):
            if not have(backend):
                result["left_out"].append("esp-nn on host: $TINYGEN_ESP_NN is not set")
                continue
            rows.append(host_time(preset, backend, runs, Path(tmp)))
        tflm_us = tflm_time(rows[0], runs)
        for row in rows:
            rep = row["report"]
            result["host"].append({
                "backend": row["backend"], "c_us": row["us"], "tflm_us": tflm_us,
                "speedup_vs_tflm": tflm_us / row["us"],
                "flash_bytes": rep["flash"]["total_bytes"],
                "flash_per_unique_param": rep["flash"]["total_bytes"] / rep["unique_params"]})
    return result


def print_table(r: dict[str, Any]) -> None:
    print(f"{r['preset']}: instructions under QEMU (mean of the vectors; bit-exact checked)")
    head = "".join(f"{KIND_NAMES.get(k, k)[:9]:>11}" for k in MAC_KINDS)
    print(f"  {'backend':<10}{'target':<10}{'instr/inference':>17}{'per MAC':>9}{head}"
          f"{'flash/unique':>14}")
    for q in r["qemu"]:
        kinds = "".join(
            f"{q['per_kind'][k]['per_mac']:>11.2f}" if k in q["per_kind"] else f"{'-':>11}"
            for k in MAC_KINDS)
        print(f"  {q['backend']:<10}{q['target']:<10}{q['instructions_per_inference']:>17,.0f}"
              f"{q['instructions_per_mac']:>9.2f}{kinds}{q['flash_per_unique_param']:>14.3f}")
    print(f"{r['preset']}: host time per inference (best of N)")
    for h in r["host"]:
        print(f"  {h['backend']:<10}C {h['c_us']:>10.1f} us   tflite-micro {h['tflm_us']:>10.1f} "
              f"us   C is {h['speedup_vs_tflm']:.2f}x faster   flash/unique "
              f"{h['flash_per_unique_param']:.3f}")
    for line in r["left_out"]:
        print(f"  left out: {line}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mcu-tiny")
    ap.add_argument("--vectors", type=int, default=1)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    r = run(args.preset, args.vectors, args.runs)
    if args.json:
        print(json.dumps({**r, "host": r["host"]}, indent=2, default=str))
    else:
        print_table(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
