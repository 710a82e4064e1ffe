"""QEMU benchmark: instructions per inference and per MAC on an emulated Cortex-M or Xtensa.

Builds a preset (default preset:mcu-tiny) for one or more QEMU targets (default qemu-m4,
the mps2-an386 Cortex-M4; qemu-xtensa is the sim machine's lx106) with the portable
kernels (or --backend esp-nn on qemu-xtensa: ESP-NN's ANSI C from $TINYGEN_ESP_NN;
--backend cmsis-nn on qemu-m4|m7|m55: CMSIS-NN from $TINYGEN_CMSIS_NN), runs
the firmware under QEMU with tinygen's instruction-count plugin, and attributes the
instructions of each schedule step to its op kind. MACs per step come from the plan (the
same calibration gives the same plan): fully connected rows * in * out, conv2d
out_elements * kh * kw * in_c, depthwise out_elements * kh * kw, batch matmul
batches * m * k * n. Ops without MACs are given per output element instead.

Goals (mcu-tiny), printed where they apply: the whole inference <= 3.0 instructions per
MAC on qemu-m4 with the portable kernels, <= 1.5 with CMSIS-NN and <= 0.7 on qemu-m55 with
CMSIS-NN; the fully connected layers <= 0.9 on qemu-m4 with CMSIS-NN.

Counts are exact and repeatable (QEMU executes the same instructions every run); they
are instructions, not cycles: a Cortex-M4 takes 1 cycle for most of them, 2 or more for
loads, branches and 64-bit multiplies.

The lx106 has no 64-bit multiply (GCC calls __muldi3 for every requantization) and no
ESP32-S3 SIMD, so its counts say how portable C fares on the ISA family, not how fast an
ESP32-S3 is.

Usage: python bench/bench_qemu.py [--preset mcu-tiny] [--targets qemu-m4 qemu-xtensa]
                                  [--backend portable] [--vectors 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tinygen.build import BuildOptions, build
from tinygen.compiler.pipeline import compile_model
from tinygen.compiler.plan import KINDS, Step, make_plan
from tinygen.speech.calib import inputs, window_frames
from tinygen.speech.checkpoint import load_model
from tinygen.targets import qemu

CALIB = 4
KIND_NAMES = {"depthwise_conv2d": "depthwise"}  # the short names used in the table


def step_macs(st: Step) -> int:
    p = st.params
    if st.kind == "fully_connected":
        return int(p["rows"] * p["in_features"] * p["out_features"])
    if st.kind == "conv2d":
        return int(p["batches"] * p["out_h"] * p["out_w"] * p["out_c"] * p["kernel_h"]
                   * p["kernel_w"] * p["in_c"])
    if st.kind == "depthwise_conv2d":
        return int(p["batches"] * p["out_h"] * p["out_w"] * p["out_c"] * p["kernel_h"]
                   * p["kernel_w"])
    if st.kind == "batch_matmul":
        return int(p["batches"] * p["m"] * p["k"] * p["n"])
    return 0


def step_elements(st: Step) -> int:
    """Output elements of a step (all outputs of a split)."""
    p = st.params
    if st.kind in ("add", "mul", "lut"):
        return int(p["size"])
    if st.kind in ("softmax", "layer_norm", "split"):
        return int(p["rows"] * p["depth"])
    if st.kind == "transpose":
        return int(np.prod(p["in_shape"]))
    return 0


def bench(preset: str, target: str, vectors: int, tmp: Path,
          backend: str = "portable") -> dict[str, Any]:
    model = load_model(f"preset:{preset}")
    frames = window_frames(model.cfg, 1000)
    cal = inputs(model.cfg, frames, CALIB, seed=0)
    vecs = inputs(model.cfg, frames, vectors, seed=1)
    out = tmp / f"{preset}-{target}"
    report = build(model, out, cal, vecs, BuildOptions(target=target, backend=backend),
                   preset)
    steps = make_plan(compile_model(model, frames, cal).int8).steps
    ran = qemu.run(out, report)
    expected = [(out / "test_vectors" / f"expected_{k}.bin").read_bytes()
                for k in range(vectors)]
    if ran.exit_code != 0 or ran.outputs != expected:
        raise SystemExit(f"bench_qemu: {target} outputs differ from the golden reference "
                         f"(exit {ran.exit_code})")
    if any(len(s) != len(steps) for s in ran.instructions_per_step):
        raise SystemExit("bench_qemu: the firmware ran a different schedule than the plan")
    per_step = np.mean(np.array(ran.instructions_per_step, dtype=np.float64), axis=0)
    kinds: dict[str, dict[str, float]] = {}
    for st, instr in zip(steps, per_step, strict=True):
        k = kinds.setdefault(st.kind, {"steps": 0, "instructions": 0.0, "macs": 0,
                                       "elements": 0})
        k["steps"] += 1
        k["instructions"] += float(instr)
        k["macs"] += step_macs(st)
        k["elements"] += step_elements(st)
    total = float(np.mean(ran.instructions_per_inference))
    macs = int(report["macs_per_inference"])
    return {
        "preset": preset,
        "target": target,
        "machine": qemu.BOARDS[target].machine,
        "backend": report["backend"],
        "vectors": vectors,
        "instructions_per_inference": total,
        "macs_per_inference": macs,
        "instructions_per_mac": total / macs,
        "per_kind": {kind: {**v, "share": v["instructions"] / total,
                            "per_mac": v["instructions"] / v["macs"] if v["macs"] else None,
                            "per_element": (v["instructions"] / v["elements"]
                                            if v["elements"] else None)}
                     for kind, v in sorted(kinds.items(), key=lambda kv: KINDS.index(kv[0]))},
    }


def print_table(r: dict[str, Any]) -> None:
    print(f"{r['preset']} on {r['target']} ({r['machine']}, {r['backend']} kernels), "
          f"mean of {r['vectors']} inferences")
    print(f"  {r['instructions_per_inference']:,.0f} instructions per inference, "
          f"{r['macs_per_inference']:,} MACs: {r['instructions_per_mac']:.2f} "
          "instructions per MAC")
    print(f"  {'op kind':<16}{'steps':>6}{'instructions':>15}{'share':>8}{'MACs':>12}"
          f"{'instr/MAC':>11}{'instr/elem':>12}")
    for kind, v in r["per_kind"].items():
        per_mac = f"{v['per_mac']:.2f}" if v["per_mac"] is not None else "-"
        per_el = f"{v['per_element']:.1f}" if v["per_element"] is not None else "-"
        print(f"  {KIND_NAMES.get(kind, kind):<16}{v['steps']:>6}{v['instructions']:>15,.0f}"
              f"{100 * v['share']:>7.1f}%{v['macs']:>12,}{per_mac:>11}{per_el:>12}")
    for what, value, goal in goals(r):
        verdict = "meets" if value <= goal else "misses"
        print(f"  {what}: {value:.3f} instructions per MAC ({verdict} the goal of <= {goal})")


def goals(r: dict[str, Any]) -> list[tuple[str, float, float]]:
    """The per-MAC goals that apply to this run (mcu-tiny's device-speed goals): the
    whole inference on qemu-m4 (portable <= 3.0, CMSIS-NN <= 1.5) and qemu-m55 (CMSIS-NN
    <= 0.7), and the fully connected layers on qemu-m4 with CMSIS-NN (<= 0.9)."""
    fc = r["per_kind"].get("fully_connected")
    whole = r["instructions_per_mac"]
    table = {("qemu-m4", "portable"): [("whole inference", whole, 3.0)],
             ("qemu-m4", "cmsis-nn"): [("whole inference", whole, 1.5)]
             + ([("fully connected", fc["per_mac"], 0.9)] if fc is not None else []),
             ("qemu-m55", "cmsis-nn"): [("whole inference", whole, 0.7)]}
    return table.get((r["target"], r["backend"]), [])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mcu-tiny")
    ap.add_argument("--targets", "--target", nargs="+", default=["qemu-m4"],
                    choices=sorted(qemu.BOARDS))
    ap.add_argument("--backend", default="portable", choices=("portable", "esp-nn",
                                                              "cmsis-nn"),
                    help="esp-nn: qemu-xtensa only (ESP-NN's ANSI C from $TINYGEN_ESP_NN); "
                         "cmsis-nn: qemu-m4|m7|m55 (CMSIS-NN from $TINYGEN_CMSIS_NN); "
                         "other targets keep the portable kernels")
    ap.add_argument("--vectors", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-qemu-") as tmp:
        results = [bench(args.preset, t, args.vectors, Path(tmp),
                         args.backend if args.backend in qemu.BOARDS[t].backends
                         else "portable") for t in args.targets]
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
        return 0
    for r in results:
        print_table(r)
    if len(results) > 1:
        print("instructions per MAC: " + ", ".join(
            f"{r['target']} ({r['backend']}) {r['instructions_per_mac']:.2f}" for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
