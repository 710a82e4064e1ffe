"""Streaming vs windowed: what listening continuously costs, side by side in one run.

For a streaming model (``chunk_frames`` C, ``left_chunks`` L) and the same network run the
old way (a fixed window recomputed every hop), it prints:

- MACs of one streaming step (4·C log-mel frames in, C encoder frames out) and per second
  of audio;
- MACs of one full-context pass over a 1 s window, and per second of audio when that
  window is re-run every hop that gives the streaming model's latency (one chunk);
- the ratios: streaming per second vs one 1 s pass (goal ≤ 1.2×) and vs the windowed
  model at equal latency;
- the int8 state a streaming step keeps (per virtual layer: keys, values, conv inputs);
- with ``--qemu``: both compiled for qemu-m4 (portable kernels) and run under QEMU:
  RAM (streaming: state + arena; windowed: arena) and instructions per second of audio
  (streaming: per step x steps per second; windowed: per 1 s inference x re-runs per
  second at the same latency, and a single pass per second).

Usage: python bench/bench_streaming.py [--model preset:mcu-tiny] [--chunk 4] [--left 4]
                                      [--qemu] [--json]
(--chunk/--left make a full-context model stream; a streaming checkpoint keeps its own.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from tinygen.speech.checkpoint import load_model
from tinygen.speech.model import build_model
from tinygen.speech.streaming import state_bytes_int8, step_macs
from tinygen.speech.summary import macs


def measure(spec: str, chunk: int, left: int) -> dict[str, float | int | str]:
    model = load_model(spec)
    cfg = model.cfg
    if not cfg.streaming:
        cfg = dataclasses.replace(cfg, chunk_frames=chunk, left_chunks=left).validate()
        model = build_model(cfg)
    if not cfg.streaming:
        raise SystemExit(f"bench_streaming: {spec} does not stream (chunk_frames = 0)")
    full = build_model(dataclasses.replace(cfg, chunk_frames=0, left_chunks=0))
    steps_per_s = 1000.0 / cfg.chunk_ms
    window_frames = round(cfg.frames_per_second) + 1  # 1 s of audio, centred framing
    one_pass = macs(full, window_frames)
    per_step = step_macs(model)
    stream_per_s = per_step * steps_per_s
    windowed_per_s = one_pass * steps_per_s  # re-run the 1 s window every chunk
    return {
        "model": spec,
        "chunk_ms": cfg.chunk_ms,
        "left_context_ms": cfg.left_chunks * cfg.chunk_ms,
        "step_macs": per_step,
        "stream_macs_per_s": round(stream_per_s),
        "one_pass_1s_macs": one_pass,
        "windowed_macs_per_s_same_latency": round(windowed_per_s),
        "stream_vs_one_pass": round(stream_per_s / one_pass, 3),
        "stream_vs_windowed": round(stream_per_s / windowed_per_s, 4),
        "state_bytes_int8": state_bytes_int8(cfg),
    }


def measure_qemu(spec: str, chunk: int, left: int) -> dict[str, float | int]:
    """Compiled for qemu-m4 and run: RAM and instructions per second of audio."""
    import tempfile
    from pathlib import Path

    import numpy as np

    from tinygen.build import BuildOptions, build
    from tinygen.compiler.plan import make_plan
    from tinygen.speech.calib import inputs
    from tinygen.speech.streaming import compile_streaming
    from tinygen.verify import verify

    model = load_model(spec)
    cfg = model.cfg
    if not cfg.streaming:
        cfg = dataclasses.replace(cfg, chunk_frames=chunk, left_chunks=left).validate()
        model = build_model(cfg)
        model.load_state_dict(load_model(spec).state_dict())
    full = load_model(spec) if not load_model(spec).cfg.streaming else build_model(
        dataclasses.replace(cfg, chunk_frames=0, left_chunks=0))
    frames = round(cfg.frames_per_second) + 1
    with tempfile.TemporaryDirectory() as tmp:
        cal = inputs(cfg, frames, 4, seed=0)
        s_rep = build(model, Path(tmp) / "s", cal, inputs(cfg, 4 * frames, 1, seed=1),
                      BuildOptions(target="qemu-m4"), cfg.name)
        s_run = verify(Path(tmp) / "s")
        s_steps = make_plan(compile_streaming(model, cal).int8).steps
        w_rep = build(full, Path(tmp) / "w", cal, inputs(cfg, frames, 1, seed=1),
                      BuildOptions(target="qemu-m4"), full.cfg.name)
        w_run = verify(Path(tmp) / "w")
    per_step = float(np.mean(s_run["instructions_per_inference"]))
    by_step = np.mean(np.array(s_run["instructions_per_step"], dtype=np.float64), axis=0)
    if len(by_step) != len(s_steps):
        raise SystemExit("bench_streaming: the firmware ran a different schedule than the plan")
    # The cache updates: concatenating old state and new frames, slicing the new state out.
    copies = float(sum(n for st, n in zip(s_steps, by_step, strict=True)
                       if st.kind in ("concat", "slice")))
    per_window = float(np.mean(w_run["instructions_per_inference"]))
    steps_per_s = 1000.0 / cfg.chunk_ms
    st = s_rep["streaming"]
    return {
        "bit_exact": bool(s_run["bit_exact"] and w_run["bit_exact"]),
        "stream_state_bytes": st["state_bytes"],
        "stream_arena_bytes": st["arena_bytes"],
        "stream_ram_bytes": st["ram_bytes"],
        "window_arena_bytes": w_rep["arena_bytes"],
        "stream_instructions_per_step": round(per_step),
        "stream_cache_copy_instructions_per_step": round(copies),
        "stream_cache_copy_share": round(copies / per_step, 5),
        "stream_instructions_per_s": round(per_step * steps_per_s),
        "window_instructions_per_pass": round(per_window),
        "windowed_instructions_per_s_same_latency": round(per_window * steps_per_s),
        "stream_vs_one_pass_instructions": round(per_step * steps_per_s / per_window, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="preset:mcu-tiny")
    ap.add_argument("--chunk", type=int, default=4, help="encoder frames per chunk (40 ms)")
    ap.add_argument("--left", type=int, default=4, help="chunks of left context")
    ap.add_argument("--qemu", action="store_true",
                    help="also compile both for qemu-m4 and count instructions (minutes)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    r = measure(args.model, args.chunk, args.left)
    if args.qemu:
        r.update(measure_qemu(args.model, args.chunk, args.left))
    if args.json:
        print(json.dumps(r, indent=2))
        return
    print(f"{r['model']}: chunk {r['chunk_ms']:.0f} ms, left context "
          f"{r['left_context_ms']:.0f} ms")
    print(f"  streaming step          {r['step_macs']:>14,} MACs")
    print(f"  streaming, per second   {r['stream_macs_per_s']:>14,} MACs "
          f"({r['stream_vs_one_pass']:.3f}x one 1 s pass; goal <= 1.2x)")
    print(f"  one pass over 1 s       {r['one_pass_1s_macs']:>14,} MACs")
    print(f"  1 s window every chunk  {r['windowed_macs_per_s_same_latency']:>14,} MACs/s "
          f"(streaming needs {r['stream_vs_windowed']:.4f}x of it)")
    print(f"  int8 state              {r['state_bytes_int8']:>14,} B")
    if "stream_ram_bytes" in r:
        print("qemu-m4, portable kernels (bit-exact with the golden reference: "
              f"{'yes' if r['bit_exact'] else 'NO'}):")
        print(f"  streaming RAM           {r['stream_ram_bytes']:>14,} B (state "
              f"{r['stream_state_bytes']:,} + arena {r['stream_arena_bytes']:,}; goal <= 48 KB)")
        print(f"  windowed 1 s arena      {r['window_arena_bytes']:>14,} B")
        print(f"  streaming, per second   {r['stream_instructions_per_s']:>14,} instructions "
              f"({r['stream_vs_one_pass_instructions']:.3f}x one 1 s pass)")
        print(f"  cache concat + slice    {r['stream_cache_copy_instructions_per_step']:>14,} "
              f"instructions per step ({100 * r['stream_cache_copy_share']:.2f}% of a step; "
              "what ring buffers could save)")
        print(f"  one 1 s pass            {r['window_instructions_per_pass']:>14,} instructions")
        print(f"  1 s window every chunk  {r['windowed_instructions_per_s_same_latency']:>14,}"
              " instructions per second")


if __name__ == "__main__":
    main()
