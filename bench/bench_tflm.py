"""tinygen's portable kernels against TensorFlow Lite Micro's reference kernels, on the same
emulated core: instructions, flash and RAM of the same model.

Builds one preset (default preset:mcu-tiny, with the same calibration and test vectors)
for each QEMU target (default qemu-m4 and qemu-m55) twice: ``--backend portable``
(tinygen's runtime and generated C) and ``--backend tflm`` (the .tflite export on a
MicroInterpreter with TFLM's reference kernels, compiled from $TINYGEN_TFLM). Both
firmwares must print the golden outputs of their flavour; then it prints

- instructions per inference (QEMU's TCG plugin, exact; mean over the vectors);
- flash, from ``size -A`` of each ELF (every section the firmware keeps in flash: .text
  with .rodata, .ARM.exidx, orphan sections, .data's initial values), split into model
  data (tinygen: weights, quantization data and schedule; TFLM: the .tflite), the test
  vectors both embed, code (``readelf -s`` sizes of FUNC symbols), and everything else
  (other constants: TFLM's op tables and strings, libc's);
- RAM: tinygen's arena (+ streaming state) against TFLM's ``arena_used_bytes()`` (its
  persistent and non-persistent arena allocations) plus the op resolver and interpreter
  objects, both as the firmware reports them; and the static RAM of each ELF (.data +
  .bss, the reserved TFLM arena included), the stack left out.

Goals for mcu-tiny on qemu-m4: instructions <= 0.5x TFLM's, RAM <= 0.3x, flash of the
whole ELF <= 0.8x.

With ``--chunk C --left L`` the preset streams (its weights, chunked attention): both
firmwares step whole streams of ``--seconds`` of features from a reset, the figures are
per step, and RAM counts the state (tinygen's state region; TFLM's state buffer beside
its arena).

Usage: TINYGEN_TFLM=... python bench/bench_tflm.py [--preset mcu-tiny]
                                                   [--targets qemu-m4 qemu-m55] [--json]
                                                   [--chunk 4 --left 4 [--seconds 1]]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tinygen.build import BuildOptions, build
from tinygen.compiler.pipeline import compile_model
from tinygen.speech.calib import inputs, window_frames
from tinygen.speech.checkpoint import load_model
from tinygen.speech.model import build_model
from tinygen.speech.streaming import compile_streaming
from tinygen.targets import TargetError, qemu

CALIB = 4
RAM_ORIGIN = 0x20000000  # every Arm QEMU board's RAM (firmware/boards/qemu/*.ld)
GOALS = {"instructions": 0.5, "ram": 0.3, "flash": 0.8}


def sections(elf: Path) -> dict[str, tuple[int, int]]:
    """``size -A``: section -> (size, address)."""
    proc = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True,
                          text=True, check=True)
    found = {}
    for line in proc.stdout.splitlines():
        m = re.fullmatch(r"(\S+)\s+(\d+)\s+(\d+)", line.strip())
        if m:
            found[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    return found


def symbols(elf: Path) -> list[tuple[str, str, int]]:
    """``readelf -s``: (type, name, size) of every symbol (FUNC, OBJECT, ...); the
    section of a symbol says nothing here (.rodata is inside .text)."""
    proc = subprocess.run(["arm-none-eabi-readelf", "-sW", str(elf)], capture_output=True,
                          text=True, check=True)
    found = []
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 8 and parts[0].endswith(":") and parts[2].isdigit():
            found.append((parts[3], parts[7], int(parts[2])))
    return found


def elf_figures(elf: Path, model_data: int) -> dict[str, int]:
    """Flash (and its split) and static RAM of ``elf``."""
    secs = sections(elf)
    flash = ram = 0
    for name, (size, addr) in secs.items():
        if name in (".bss", ".stack"):
            ram += size if name == ".bss" else 0
        elif name == ".data":
            flash += size
            ram += size
        elif (addr != 0 and addr < RAM_ORIGIN) or name == ".text":
            flash += size
    syms = symbols(elf)
    code = sum(size for kind, _, size in syms if kind == "FUNC")
    vectors = sum(size for _, name, size in syms if name.startswith("tg_vector"))
    return {"flash": flash, "model_data": model_data, "vectors": vectors, "code": code,
            "other": flash - model_data - vectors - code, "static_ram": ram}


def one(preset: str, target: str, backend: str, tmp: Path, model: Any, cal: list[Any],
        vecs: list[Any], compiled: Any) -> dict[str, Any]:
    out = tmp / f"{preset}-{target}-{backend}"
    report = build(model, out, cal, vecs, BuildOptions(target=target, backend=backend),
                   preset, compiled=compiled)
    ran = qemu.run(out, report)
    expected = [(out / "test_vectors" / f"expected_{k}.bin").read_bytes()
                for k in range(len(vecs))]
    if ran.exit_code != 0 or ran.outputs != expected:
        raise SystemExit(f"bench_tflm: {target} {backend} outputs differ from the golden "
                         f"reference (exit {ran.exit_code})")
    if backend == "tflm":
        m = re.search(r"tg_tflm_memory arena_used (\d+) objects (\d+)", ran.console)
        if m is None:
            raise SystemExit("bench_tflm: the TFLM firmware did not print its memory")
        arena, objects = int(m.group(1)), int(m.group(2))
        state = int(report["tflm"].get("state_bytes", 0))  # a streaming step's buffer
        ram = {"arena": arena, "objects": objects, "state": state,
               "total": arena + objects + state,
               "reserved_arena": int(report["tflm"]["arena_bytes"])}
        model_data = int(report["tflm"]["model_bytes"])
    else:
        state = int(report["flash"].get("state_init_bytes", 0))
        arena = int(report["arena_bytes"])
        ram = {"arena": arena, "state": state, "total": arena + state}
        model_data = int(report["flash"]["total_bytes"]) - state
    return {"backend": backend,
            "instructions_per_inference": float(np.mean(ran.instructions_per_inference)),
            "ram": ram, **elf_figures(out / qemu.ELF, model_data)}


def bench(preset: str, targets: list[str], vectors: int, chunk: int = 0, left: int = 0,
          seconds: float = 1.0) -> list[dict[str, Any]]:
    model = load_model(f"preset:{preset}")
    frames = window_frames(model.cfg, 1000)
    compiled: Any
    if chunk:  # the same weights, streaming: vectors are streams of `seconds` of audio
        cfg = dataclasses.replace(model.cfg, chunk_frames=chunk, left_chunks=left).validate()
        weights = model.state_dict()
        model = build_model(cfg)
        model.load_state_dict(weights)
        cal = inputs(model.cfg, frames, CALIB, seed=0)
        vecs = inputs(model.cfg, round(seconds * model.cfg.frames_per_second), vectors,
                      seed=1)
        compiled = compile_streaming(model, cal)
    else:
        cal = inputs(model.cfg, frames, CALIB, seed=0)
        vecs = inputs(model.cfg, frames, vectors, seed=1)
        compiled = compile_model(model, frames, cal)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-tflm-") as tmp:
        for target in targets:
            t = one(preset, target, "portable", Path(tmp), model, cal, vecs, compiled)
            try:
                f = one(preset, target, "tflm", Path(tmp), model, cal, vecs, compiled)
            except TargetError as err:  # e.g. the .tflite and TFLM's code outgrow the board
                results.append({"preset": preset, "target": target,
                                "machine": qemu.BOARDS[target].machine, "vectors": vectors,
                                "tinygen": t, "tflm": None, "tflm_refused": str(err)})
                continue
            results.append({
                "preset": preset, "target": target, "machine": qemu.BOARDS[target].machine,
                "vectors": vectors, "tinygen": t, "tflm": f,
                "ratios": {"instructions": t["instructions_per_inference"]
                           / f["instructions_per_inference"],
                           "ram": t["ram"]["total"] / f["ram"]["total"],
                           "flash": t["flash"] / f["flash"],
                           "static_ram": t["static_ram"] / f["static_ram"]}})
    return results


def print_table(r: dict[str, Any]) -> None:
    t, f = r["tinygen"], r["tflm"]
    per = "steps" if t["ram"].get("state") else "inferences"
    print(f"{r['preset']} on {r['target']} ({r['machine']}): tinygen portable vs TFLM "
          f"reference kernels, mean of the {r['vectors']} vectors' {per}")
    if f is None:
        print(f"  tinygen: {t['instructions_per_inference']:,.0f} instructions per inference, "
              f"flash {t['flash']:,} B (code {t['code']:,}), arena {t['ram']['total']:,} B")
        print(f"  TFLM: refused: {r['tflm_refused']}")
        return
    q = r["ratios"]
    rows = [("instructions per inference", t["instructions_per_inference"],
             f["instructions_per_inference"]),
            ("flash, whole ELF (size -A)", t["flash"], f["flash"]),
            ("  model data (weights...)", t["model_data"], f["model_data"]),
            ("  test vectors", t["vectors"], f["vectors"]),
            ("  code (functions)", t["code"], f["code"]),
            ("  everything else", t["other"], f["other"]),
            ("RAM: arena (+ state) / TFLM", t["ram"]["total"], f["ram"]["total"]),
            ("static RAM (.data + .bss)", t["static_ram"], f["static_ram"])]
    print(f"  {'':<30}{'tinygen':>14}{'TFLM':>14}{'ratio':>8}")
    for name, a, b in rows:
        print(f"  {name:<30}{a:>14,.0f}{b:>14,.0f}{a / b if b else 0:>8.2f}")
    state = f" + state {f['ram']['state']:,}" if f["ram"]["state"] else ""
    print(f"  TFLM RAM = arena_used_bytes() {f['ram']['arena']:,} + resolver and interpreter "
          f"{f['ram']['objects']:,}{state} (arena reserved: {f['ram']['reserved_arena']:,})")
    verdicts = ", ".join(f"{k} {q[k]:.2f}x ({'meets' if q[k] <= g else 'misses'} <= {g}x)"
                         for k, g in GOALS.items())
    print(f"  goals: {verdicts}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="mcu-tiny")
    ap.add_argument("--targets", "--target", nargs="+", default=["qemu-m4", "qemu-m55"],
                    choices=["qemu-m4", "qemu-m7", "qemu-m55"])
    ap.add_argument("--vectors", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=0,
                    help="stream with chunks of C encoder frames (40 ms each); 0: a window")
    ap.add_argument("--left", type=int, default=4, help="chunks of left context")
    ap.add_argument("--seconds", type=float, default=1.0, help="length of each stream")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    results = bench(args.preset, args.targets, args.vectors, args.chunk, args.left,
                    args.seconds)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        print_table(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
