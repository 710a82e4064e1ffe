"""report.md and report.png for a build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinygen.compiler.codegen import Generated
from tinygen.compiler.ir import Graph
from tinygen.compiler.plan import Plan


def write_markdown(path: Path, r: dict[str, Any]) -> None:
    f = r["flash"]
    lines = [
        f"# {r['model']} for {r['target']} ({r['backend']} kernels)",
        "",
        f"Built by tinygen {r['tinygen_version']}.",
        "",
        "| | |",
        "|---|---|",
    ]
    if r.get("unique_params"):
        lines += [
            f"| unique parameters | {r['unique_params']:,} |",
            f"| virtual parameters | {r['virtual_params']:,} "
            f"({r['virtual_params'] / r['unique_params']:.2f}x reuse) |",
            f"| shared parameter tensors | {len(r['sharing_groups'])} of "
            f"{r['parameter_tensors']} |",
        ]
    if "virtual_layers" in r:
        lines += [f"| virtual layers / unique blocks | {r['virtual_layers']} / "
                  f"{r['unique_blocks']} |"]
    lines += [
        f"| flash: weights | {f['weights_bytes']:,} B |",
        f"| flash: per-use quantization data | {f['quant_bytes']:,} B |",
        f"| flash: schedule | {f['schedule_bytes']:,} B "
        f"({100 * f['schedule_bytes'] / max(1, f['weights_bytes']):.2f}% of weights) |",
        f"| flash: total model data | {f['total_bytes']:,} B |",
        f"| arena (RAM) | {r['arena_bytes']:,} B |",
        f"| MACs per inference | {r['macs_per_inference']:,} |",
        f"| kernel calls | {r['steps']} in {r['segments']} segments, {r['programs']} "
        "distinct programs |",
        f"| input | int8 {r['input']['shape']}, scale {r['input']['scale']:.6g}, zero point "
        f"{r['input']['zero_point']} |",
        f"| output | int8 {r['output']['shape']}, scale {r['output']['scale']:.6g}, zero "
        f"point {r['output']['zero_point']} |",
        "",
        "## Ops",
        "",
        "| op | count |",
        "|---|---:|",
        *[f"| {op} | {n} |" for op, n in r["ops"].items()],
        "",
        "report.png shows which weight-pool arrays each segment uses, and the arena bytes "
        "live at every step.",
        "",
    ]
    path.write_text("\n".join(lines))


def write_png(path: Path, graph: Graph, plan: Plan, gen: Generated) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    weights = [a.symbol for a in gen.pool.arrays if a.kind == "weights"]
    symbol_of = {key[1]: sym for key, sym in gen.pool.by_key.items()
                 if isinstance(key, tuple) and key[0] == "value"}
    use = np.zeros((len(plan.segments), len(weights)))
    for s, seg in enumerate(plan.segments):
        for st in seg.steps:
            w = st.params.get("weights")
            if w in symbol_of and symbol_of[w] in weights:
                use[s, weights.index(symbol_of[w])] = 1
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 5.5),
                                 gridspec_kw={"width_ratios": [1.3, 1]})
    a1.imshow(use, aspect="auto", cmap="Greens", interpolation="nearest", vmin=0, vmax=1)
    a1.set_yticks(range(len(plan.segments)))
    a1.set_yticklabels([seg.scope for seg in plan.segments], fontsize=7)
    a1.set_xlabel(f"weight-pool array (each stored once; {len(weights)} arrays)")
    a1.set_title("segment (virtual layer) x weight array it uses")
    occupancy = plan.occupancy()
    a2.fill_between(range(len(occupancy)), occupancy, step="mid", alpha=0.6)
    a2.axhline(plan.arena_bytes, color="k", lw=0.8, ls="--",
               label=f"arena {plan.arena_bytes:,} B")
    a2.set_xlabel("schedule step")
    a2.set_ylabel("live bytes")
    a2.set_title("arena occupancy over the schedule")
    a2.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)
