"""Speed of the portable kernels in one run: an emulated Cortex-M4 and the host.

1. qemu-m4 (mps2-an386), portable kernels, one preset (default mcu-tiny): instructions per
   inference and, per op kind, instructions per MAC (or per output element for ops
   without MACs), counted exactly by QEMU's TCG plugin (bench_qemu.py does the counting
   and checks the outputs against the golden reference first);
2. host: the generated C's best time per inference against the tflite-micro wheel's
   interpreter on the same model, for each host preset (default mcu-tiny and paper-5m;
   bench_host.py does the timing).

Goals: at most 3.0 instructions per MAC overall on qemu-m4, and host C at least 3x faster
than the tflite-micro interpreter on every host preset.

Usage: python bench/bench_speed.py [--preset mcu-tiny] [--host-presets mcu-tiny,paper-5m]
                                   [--runs 10] [--vectors 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import bench_host
import bench_qemu

GOAL_INSTR_PER_MAC = 3.0
GOAL_HOST_SPEEDUP = 3.0


def measure(preset: str, host_presets: list[str], runs: int, vectors: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
        qemu = bench_qemu.bench(preset, "qemu-m4", vectors, Path(tmp))
        host = [bench_host.bench_preset(name, runs, Path(tmp)) for name in host_presets]
    return {"qemu_m4": qemu,
            "host": [{k: r[k] for k in ("preset", "macs", "c_us", "tflm_us",
                                         "speedup_vs_tflm")} for r in host]}


def verdict(ok: bool) -> str:
    return "meets" if ok else "misses"


def print_report(r: dict[str, Any]) -> None:
    q = r["qemu_m4"]
    bench_qemu.print_table(q)
    print(f"  overall: {q['instructions_per_mac']:.2f} instructions per MAC "
          f"({verdict(q['instructions_per_mac'] <= GOAL_INSTR_PER_MAC)} the goal of "
          f"<= {GOAL_INSTR_PER_MAC})")
    print("host: generated C vs the tflite-micro interpreter (best time per inference)")
    print(f"  {'model':<14}{'MACs':>14}{'C us':>11}{'TFLM us':>11}{'x faster':>10}")
    for h in r["host"]:
        print(f"  {h['preset']:<14}{h['macs']:>14,}{h['c_us']:>11,.0f}{h['tflm_us']:>11,.0f}"
              f"{h['speedup_vs_tflm']:>10.2f}  "
              f"({verdict(h['speedup_vs_tflm'] >= GOAL_HOST_SPEEDUP)} >= {GOAL_HOST_SPEEDUP}x)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mcu-tiny", help="the qemu-m4 model")
    ap.add_argument("--host-presets", default="mcu-tiny,paper-5m")
    ap.add_argument("--runs", type=int, default=10, help="timed host inferences (best of)")
    ap.add_argument("--vectors", type=int, default=2, help="qemu-m4 inferences (mean of)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    hosts = [h for h in args.host_presets.split(",") if h]
    result = measure(args.preset, hosts, args.runs, args.vectors)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
