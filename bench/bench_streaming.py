"""Streaming vs windowed: what listening continuously costs, side by side in one run.

For a streaming model (``chunk_frames`` C, ``left_chunks`` L) and the same network run the
old way (a fixed window recomputed every hop), it prints:

- MACs of one streaming step (4·C log-mel frames in, C encoder frames out) and per second
  of audio;
- MACs of one full-context pass over a 1 s window, and per second of audio when that
  window is re-run every hop that gives the streaming model's latency (one chunk);
- the ratios: streaming per second vs one 1 s pass (goal ≤ 1.2×) and vs the windowed
  model at equal latency;
- the int8 state a streaming step keeps (per virtual layer: keys, values, conv inputs).

Usage: python bench/bench_streaming.py [--model preset:mcu-tiny] [--chunk 4] [--left 4] [--json]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="preset:mcu-tiny")
    ap.add_argument("--chunk", type=int, default=4, help="encoder frames per chunk (40 ms)")
    ap.add_argument("--left", type=int, default=4, help="chunks of left context")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    r = measure(args.model, args.chunk, args.left)
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


if __name__ == "__main__":
    main()
