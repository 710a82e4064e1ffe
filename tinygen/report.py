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
    if "streaming" in r:
        lines += _stream_section(r["streaming"])
    if "listen" in r:
        lines += _listen_section(r["listen"])
    path.write_text("\n".join(lines))


LISTEN_PARTS = {  # report.json listen.ram key -> what it is
    "ring_bytes": "audio ring buffer (int16 samples)",
    "block_bytes": "block buffer (the first block's samples)",
    "frames_bytes": "one block of feature frames",
    "tokens_bytes": "CTC tokens of one model run",
    "word_scores_bytes": "command list scores (one int32 per CTC state)",
    "state_bytes": "the loop: front-end state, gate, decoder, word",
    "config_bytes": "the loop's configuration",
    "model_ram_bytes": "model arena (and streaming state)",
    "dma_bytes": "microphone DMA / driver blocks",
    "mic_buffer_bytes": "microphone read buffers",
    "stack_bytes": "task stacks the glue configures",
}


def _listen_section(s: dict[str, Any]) -> list[str]:
    """--app listen: the blocks, and RAM and flash of the listening app by part."""
    ram, flash = s["ram"], s["flash"]
    lines = [
        "## Listen app",
        "",
        f"Blocks of {s['block_frames']} feature frames ({s['block_ms']:g} ms; the first "
        f"{s['first_block_samples']} samples); "
        f"{'one model step per block' if s['streaming'] else 'one window run per segment'}"
        f"; ring {s['ring_samples']:,} samples ({s['ring_ms']:g} ms)."
        + (f" Command list: {s['words']['entries']} entries, {s['words']['states']} CTC "
           "states; one line per segment, its best entry." if "words" in s else ""),
        "",
        "| RAM | bytes |",
        "|---|---:|",
        *[f"| {what} | {ram[k]:,} |" for k, what in LISTEN_PARTS.items() if k in ram],
        f"| **total** | **{ram['total_bytes']:,}** |",
        "",
    ]
    if not s["stacks_known"]:
        lines += ["Stacks and microphone buffers are the board's (a host or QEMU build "
                  "has none).", ""]
    lines += [
        "| flash | bytes |",
        "|---|---:|",
        f"| model data with the front end's tables and the vocabulary | "
        f"{flash['model_bytes']:,} |",
    ]
    if "words_bytes" in flash:
        lines.append(f"| command list | {flash['words_bytes']:,} |")
    if "code_estimate_bytes" in flash:
        lines.append(f"| code (estimate) | {flash['code_estimate_bytes']:,} |")
    return [*lines, f"| **total** | **{flash['total_bytes']:,}** |", ""]


def _stream_section(s: dict[str, Any]) -> list[str]:
    """Latency, RAM and cost of a streaming step, and a picture of its state region."""
    lines = [
        "## Streaming",
        "",
        "| | |",
        "|---|---|",
        f"| chunk (algorithmic latency) | {s['chunk_ms']:g} ms: {s['input_frames_per_step']} "
        f"log-mel frames in, {s['chunk_frames']} encoder frames out per step |",
        f"| lookahead | {s['lookahead_ms']:g} ms |",
        f"| attention context | {s['left_chunks']} chunks "
        f"({s['left_chunks'] * s['chunk_ms']:g} ms) before the current one |",
        f"| state (persistent) | {s['state_bytes']:,} B |",
        f"| arena (scratch, per step) | {s['arena_bytes']:,} B |",
        f"| RAM total (state + arena) | {s['ram_bytes']:,} B |",
        f"| MACs per step / per second of audio | {s['macs_per_step']:,} / "
        f"{s['macs_per_second']:,} |",
        "",
        "The state region, one row per tensor (offset and size in bytes; each `#` is "
        f"{max(1, s['state_bytes'] // 64):,} B):",
        "",
        "```",
    ]
    unit = max(1, s["state_bytes"] // 64)
    for t in s["state"]:
        bar = "#" * max(1, round(t["bytes"] / unit))
        lines.append(f"{t['offset']:>7} {t['bytes']:>6} B  {t['tensor']:<16} {bar}")
    return [*lines, "```", ""]


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
