"""End-to-end audio on qemu-m4: WAV -> front end -> mcu-tiny -> CTC, instructions measured.

Builds models/mcu-tiny.pt for qemu-m4 (portable kernels, ``--window-ms`` window) through
the CLI, speaks phrases with ``tinygen data say``, and runs ``tinygen verify OUT --audio``
on each: the firmware's features, logits and transcript against the Python golden path,
and the QEMU plugin's exact instruction counts of the front end (every push) and of the
model with its CTC push. Prints, per WAV and in total, instructions per second of processed
audio, the front end's share of the model's instructions (goal: <= 5%), and the
real-time factor at the cortex-m4 board's clock (a lower bound: instructions, not cycles).

Usage: PYTHONPATH=. python bench/bench_audio_qemu.py [--window-ms 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from contextlib import redirect_stdout
from pathlib import Path

from tinygen.cli import main
from tinygen.resources import models_dir
from tinygen.verify import load_report
from tinygen.verify_audio import golden_of, verify_audio

PHRASES = ("turn on the kitchen lights", "lights on", "what time is it", "open the door")


def run(window_ms: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-audio-") as tmp:
        out = Path(tmp) / "m4"
        with redirect_stdout(sys.stderr):  # the build's and say's messages
            assert main(["build", str(models_dir() / "mcu-tiny.pt"), "--target", "qemu-m4",
                         "-o", str(out), "--vectors", "1", "--window-ms", str(window_ms),
                         "--json"]) == 0
        compiled = golden_of(out, load_report(out))
        rows = []
        for k, text in enumerate(PHRASES):
            wav = Path(tmp) / f"say{k}.wav"
            with redirect_stdout(sys.stderr):
                assert main(["data", "say", text, "-o", str(wav), "--speed", "190"]) == 0
            r = verify_audio(out, wav, compiled)
            rows.append({"said": text, **{key: r[key] for key in (
                "text", "transcript_equal", "features_bit_exact", "logits_bit_exact",
                "instructions_frontend", "instructions_model_and_decoder",
                "processed_seconds", "instructions_per_second_of_audio",
                "frontend_share_of_model", "real_time_factor_lower_bound", "clock_mhz")}})
        fe = sum(int(r["instructions_frontend"]) for r in rows)  # type: ignore[call-overload]
        model = sum(int(r["instructions_model_and_decoder"])  # type: ignore[call-overload]
                    for r in rows)
        return {"window_ms": window_ms, "rows": rows,
                "frontend_share_of_model": round(fe / model, 4)}


def cli() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window-ms", type=float, default=2000.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = run(args.window_ms)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for r in result["rows"]:  # type: ignore[attr-defined]
        print(f"{r['said']!r:32} -> {r['text']!r:28} equal {r['transcript_equal']}  "
              f"{r['instructions_per_second_of_audio'] / 1e6:7.1f} M instr/s of audio, "
              f"front end {100 * r['frontend_share_of_model']:.2f}% of the model, "
              f"RTF >= {r['real_time_factor_lower_bound']} at {r['clock_mhz']} MHz")
    print(f"front end / model instructions over all WAVs: "
          f"{100 * result['frontend_share_of_model']:.2f}% (goal <= 5%)")


if __name__ == "__main__":
    cli()
