"""Long fuzz runs: the CLI fuzz and the model-config fuzz of the CI tests, with more cases.

- CLI: random command lines over a sandbox of good, damaged and hostile files; every run
  must exit 0, 1 or 2 without a traceback, print at most one stderr line when it fails,
  change nothing outside OUT and leave OUT complete or untouched (tests/fuzzing.py).
- configs: random small configs over every sharing option, built for the host (every
  ``--qemu-every``-th one also for qemu-m4) and verified bit-exact against the golden
  reference; qk/qkv projection sharing (not built yet) must be refused in one line.

Usage: python bench/fuzz.py [--cases 500] [--configs 50] [--seed 0] [--qemu-every 4] [--json]
The CI tests run 150 CLI cases and 8 configs (+2 refusals); this prints the same counts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fuzzing import (
    FEATURES,
    check_run,
    cli_case,
    features_of,
    make_sandbox,
    random_config,
    run_in_process,
    snapshot,
)


def fuzz_cli(cases: int, seed: int, root: Path) -> dict[str, object]:
    box = make_sandbox(root / "box")
    rng = random.Random(seed)
    counts = {"cases": 0, "built": 0, "ok": 0, "refused_cleanly": 0, "mismatch": 0,
              "tracebacks": 0, "broken": 0}
    examples: list[str] = []
    here = os.getcwd()
    os.chdir(box.root)
    try:
        for _ in range(cases):
            argv, out = cli_case(rng)
            before = snapshot(box.root)
            run = run_in_process(argv)
            broken = check_run(run, before, snapshot(box.root), out, box.root)
            counts["cases"] += 1
            counts["tracebacks"] += bool(run.traceback)
            counts["ok"] += run.code == 0
            counts["built"] += run.code == 0 and argv[0] == "build"
            counts["mismatch"] += run.code == 1
            counts["refused_cleanly"] += run.code == 2 and not broken
            if broken:
                counts["broken"] += 1
                examples.append(f"{argv!r}: {'; '.join(broken)}")
    finally:
        os.chdir(here)
    return {**counts, "examples": examples[:20]}


def fuzz_configs(configs: int, seed: int, qemu_every: int, root: Path) -> dict[str, object]:
    from tinygen.build import BuildOptions, build
    from tinygen.errors import TinygenError
    from tinygen.speech.calib import inputs, window_frames
    from tinygen.speech.model import build_model
    from tinygen.verify import verify

    counts = {"configs": 0, "built": 0, "bit_exact": 0, "refused_cleanly": 0,
              "tracebacks": 0, "qemu_builds": 0}
    covered: set[str] = set()
    failures: list[str] = []
    for i in range(configs):
        s = seed + i
        focus = (FEATURES[i % len(FEATURES)], FEATURES[(i + 5) % len(FEATURES)])
        cfg = random_config(s, focus)
        target = "qemu-m4" if qemu_every and i % qemu_every == 0 else "host"
        counts["configs"] += 1
        covered |= features_of(cfg)
        try:
            model = build_model(cfg, seed=s)
            frames = window_frames(cfg, 200)
            out = root / f"cfg{i}"
            build(model, out, inputs(cfg, frames, 2, seed=0), inputs(cfg, frames, 2, seed=1),
                  BuildOptions(target=target), cfg.name)
        except TinygenError as err:
            counts["refused_cleanly"] += 1
            failures.append(f"seed {s}: refused: {err.line()[:200]}")
            continue
        except Exception as err:  # counted: the invariant it breaks
            counts["tracebacks"] += 1
            failures.append(f"seed {s}: {type(err).__name__}: {err}"[:300])
            continue
        counts["built"] += 1
        counts["qemu_builds"] += target != "host"
        result = verify(out)
        counts["bit_exact"] += bool(result["bit_exact"])
        if not result["bit_exact"]:
            failures.append(f"seed {s} ({target}): MISMATCH on {result['mismatched']}")
    return {**counts, "features_covered": sorted(covered),
            "features_missing": sorted(set(FEATURES) - covered), "failures": failures[:20]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=500, help="CLI cases (default 500)")
    ap.add_argument("--configs", type=int, default=50, help="model configs (default 50)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--qemu-every", type=int, default=4,
                    help="every Nth config also for qemu-m4 (0: none; default 4)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tinygen-fuzz-") as tmp:
        report = {"cli": fuzz_cli(args.cases, args.seed, Path(tmp)),
                  "config": fuzz_configs(args.configs, args.seed, args.qemu_every,
                                         Path(tmp) / "cfg")}
    report["seconds"] = round(time.perf_counter() - start, 1)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for part in ("cli", "config"):
            print(part, {k: v for k, v in report[part].items()
                         if k not in ("examples", "failures")})
            for line in report[part].get("examples", []) or report[part].get("failures", []):
                print("  ", line)
        print(f"{report['seconds']} s")
    cli, cfg = report["cli"], report["config"]
    bad = cli["tracebacks"] or cli["broken"] or cfg["tracebacks"] or cfg["failures"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
