"""The sharing ablation in miniature: size and accuracy of trained models side by side.

For each checkpoint it runs ``tinygen eval`` on one split (float per utterance, float on
the compiled model's window, the int8 golden reference and the generated host C on that
window) and prints one table row: unique and virtual parameters, flash bytes of the
model data (weights + per-use quantization data + schedule, at the eval window), and
the CER of each backend. The first model is the reference for the ratio columns.

Usage:
    python bench/ablation.py models/baseline-tiny.pt models/mcu-tiny.pt \\
        --data /tmp/corpus [--split test] [--limit N] [--window-ms MS] [--json]

A MODEL ending in .json is read as the output of ``tinygen eval --json`` instead of
being evaluated again (to put evaluations run separately, e.g. in parallel, side by side).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tinygen.speech.evaluate import evaluate

COLUMNS = ("float", "float-window", "int8-reference", "host-c")


def rows_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["backend"]: r for r in report["rows"]}


def table(reports: list[dict[str, Any]]) -> str:
    ref = reports[0]
    lines = [
        f"{ref['split']} split of {ref['data']}, {ref['utterances']} utterances; window "
        f"{ref['window_frames']} frames; ratios against {ref['name']}",
        "",
        "| model | unique params | virtual params | flash (model data) | float CER "
        "| float CER, window | int8 CER | C CER |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rep in reports:
        r = rows_of(rep)
        u = rep["unique_params"] / ref["unique_params"]
        f = rep["flash_bytes"] / ref["flash_bytes"]
        cers = " | ".join(f"{100 * r[c]['cer']:.2f}%" for c in COLUMNS)
        lines.append(f"| {rep['name']} | {rep['unique_params']:,} ({u:.2f}×) | "
                     f"{rep['virtual_params']:,} | {rep['flash_bytes']:,} B ({f:.2f}×) | "
                     f"{cers} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="checkpoints (or `tinygen eval --json` "
                    "outputs); the first is the reference")
    ap.add_argument("--data", type=Path, help="corpus from tinygen data synth")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--window-ms", type=float, default=0.0,
                    help="compiled window (default: the split's longest utterance)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    reports = []
    for spec in args.models:
        if spec.endswith(".json"):
            reports.append(json.loads(Path(spec).read_text()))
            continue
        if args.data is None:
            ap.error(f"--data is needed to evaluate {spec}")
        print(f"evaluating {spec} ...", file=sys.stderr)
        reports.append(evaluate(spec, args.data, args.split, limit=args.limit,
                                window_ms=args.window_ms))
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        print(table(reports))
    for rep in reports:  # the C path is bit-exact, so it must make the same errors
        r = rows_of(rep)
        if r["host-c"]["char_errors"] != r["int8-reference"]["char_errors"]:
            print(f"{rep['name']}: host C and golden reference disagree", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
