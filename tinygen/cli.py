"""The ``tinygen`` command line (argparse + rich).

Every user mistake surfaces as one line on stderr, ``tinygen: error: ...``, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from tinygen import __version__
from tinygen.errors import TinygenError, float_arg, int_arg
from tinygen.speech.config import MAX_INPUTS, MAX_WINDOW_MS

MODEL_HELP = ("a checkpoint path, preset:NAME (random init, fixed seed), or a torch.export "
              ".pt2; or use --module")


def importer_arguments(p: argparse.ArgumentParser) -> None:
    from tinygen.importer import add_arguments

    add_arguments(p)


def _console():  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console()


def cmd_presets(args: argparse.Namespace) -> int:
    from rich.table import Table

    from tinygen.speech.checkpoint import load_model
    from tinygen.speech.config import preset_names
    from tinygen.speech.summary import macs_per_second_of_audio, unique_params, virtual_params

    rows = []
    for name in preset_names():
        model = load_model(f"preset:{name}")
        cfg = model.cfg
        rows.append({
            "name": name,
            "unique_params": unique_params(model),
            "virtual_params": virtual_params(model),
            "virtual_layers": cfg.virtual_layers,
            "unique_blocks": cfg.unique_blocks,
            "d_model": cfg.d_model,
            "macs_per_second_of_audio": macs_per_second_of_audio(model),
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="tinygen presets (use as preset:NAME)",
                  caption="unique/virtual: parameters stored / applied per inference; "
                          "MMAC/s: per second of audio")
    for col in ("preset", "unique", "virtual", "reuse", "V/U", "d", "MMAC/s"):
        table.add_column(col, justify="left" if col == "preset" else "right", no_wrap=True)
    for r in rows:
        table.add_row(r["name"], f"{r['unique_params']:,}", f"{r['virtual_params']:,}",
                      f"{r['virtual_params'] / r['unique_params']:.2f}x",
                      f"{r['virtual_layers']}/{r['unique_blocks']}", str(r["d_model"]),
                      f"{r['macs_per_second_of_audio'] / 1e6:.1f}")
    _console().print(table)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from rich.table import Table

    from tinygen import importer
    from tinygen.speech.summary import describe

    src = importer.load(args)
    if src.cfg is None or not hasattr(src.model, "block_order"):  # a foreign model
        return importer.print_info(src, args.json)
    info = describe(src.model)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    console = _console()
    console.print(f"[bold]{info['name']}[/bold]  ({args.model})")
    console.print(
        f"unique params  {info['unique_params']:>12,}   (int8 flash ≈ "
        f"{info['int8_weight_bytes_estimate'] / 1024:.0f} KiB)\n"
        f"virtual params {info['virtual_params']:>12,}   ({info['sharing_ratio']}x reuse)\n"
        f"layers         {info['virtual_layers']:>12} virtual over "
        f"{info['unique_blocks']} unique blocks\n"
        f"compute        {info['macs_per_second_of_audio'] / 1e6:>12.1f} MMAC per second "
        "of audio")
    table = Table(title="virtual layer -> parameter group")
    for col in ("layer", "block", "ffn1", "attn", "conv", "ffn2", "norm", "shared factors"):
        table.add_column(col)
    for row in info["sharing"]["layers"]:
        table.add_row(str(row["layer"]), str(row["block"]), row["ffn1"], row["attn"],
                      row["conv"], row["ffn2"], row["norm"], ", ".join(row["factors"]) or "-")
    console.print(table)
    groups = Table(title="parameter groups")
    for col in ("group", "params", "uses"):
        groups.add_column(col, justify="left" if col == "group" else "right")
    for name, g in info["sharing"]["groups"].items():
        groups.add_row(name, f"{g['params']:,}", str(g["uses"]))
    console.print(groups)
    return 0


def _progress(label: str, total: int, quiet: bool):  # type: ignore[no-untyped-def]
    """A rich progress bar on stderr; a no-op when quiet or not a terminal."""
    from contextlib import nullcontext

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        return nullcontext(lambda done: None)

    class _Bar:
        def __enter__(self):  # type: ignore[no-untyped-def]
            self.p = Progress("[progress.description]{task.description}", BarColumn(),
                              MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                              transient=True)
            self.p.__enter__()
            self.task = self.p.add_task(label, total=total)
            return lambda done: self.p.update(self.task, completed=done)

        def __exit__(self, *exc: object) -> None:
            self.p.__exit__(None, None, None)

    return _Bar()


def cmd_export_tflite(args: argparse.Namespace) -> int:
    from tinygen import importer
    from tinygen.audio_build import audio_input_range
    from tinygen.tflite.export import export_file

    src = importer.load(args)
    frames = src.frames(args.window_ms)
    calib = src.inputs(frames, args.calib, 0, args.data, "train")
    held_out = src.inputs(frames, args.eval, 1, args.data, "dev" if args.data else "train")
    cfg = getattr(src.model, "cfg", None)
    with _progress("calibrating", len(calib), args.json) as tick:
        if cfg is not None and cfg.streaming:  # the .tflite is the step, state in and out
            from tinygen.speech.streaming import chunks_of, compile_streaming
            from tinygen.tflite.export import export_step_file

            step = compile_streaming(src.model, calib, tick)
            summary = export_step_file(step, args.output,
                                       [chunks_of(x, cfg) for x in held_out], args.verify)
        else:
            summary = export_file(src.model, args.output, calib, held_out,
                                  verify=args.verify, progress=tick,
                                  input_range=audio_input_range(src.model))
    summary["calibration_source"] = str(args.data) if args.data else "synthetic speech-like"
    uniq, virt = summary["unique_params"], summary["virtual_params"]
    summary.update(unique_over_virtual=round(uniq / max(1, virt), 4))
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    b, u = summary["buffer_bytes"], summary["unshared_buffer_bytes"]
    _console().print(
        f"wrote {args.output} ({summary['file_bytes']:,} bytes, "
        f"{sum(summary['ops'].values())} ops)\n"
        f"constant buffers {b['total']:,} B (weights {b['weights']:,}, biases "
        f"{b['biases']:,}, other {b['other']:,}); the unshared model needs "
        f"{u['total']:,} B: weights {summary['weight_bytes_ratio']:.3f}x "
        f"(unique/virtual params {summary['unique_over_virtual']:.3f})\n"
        f"float vs int8 SNR {summary['snr_db']} dB over {summary['eval_inputs']} held-out "
        f"inputs (native LayerNorm: {summary['snr_db_native']} dB)\n"
        f"TFLite Micro on {summary['tflm_vectors']} inputs: bit-exact with the golden "
        f"reference: {'yes' if summary['tflm_bit_exact'] else 'NO'}; the native graph "
        f"differs by at most {summary['native_vs_tflm_max_diff']} int8 steps (its "
        "LayerNorm is tinygen's integer scheme)")
    st = summary.get("streaming")
    if st is not None:
        _console().print(
            f"streaming step: the chunk and {len(st['state'])} int8 state tensors in, the "
            f"logits and the new state out; a stream starts from the {st['state_bytes']:,}-"
            f"byte state in metadata '{st['state_init_metadata']}'; "
            f"{st['steps_checked']} steps checked on TFLite Micro")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from tinygen import importer
    from tinygen.build import BuildOptions, build, check_app, check_out
    from tinygen.targets import boards, check_target

    # cheap checks first: nothing is computed for a bad call
    target = args.target or (boards.target_of(args.board) if args.board else "host")
    check_target(target)
    if args.board:
        boards.resolve(target, args.board)
    backend = args.backend or boards.default_backend(target, args.board)
    boards.check_backend(target, backend, args.board)
    # the list's entries are read once the model's vocabulary is known (below); here only
    # whether there is one matters
    check_app(BuildOptions(target=target, backend=backend, app=args.app, board=args.board,
                           words=(str(args.words),) if args.words is not None else ()))
    given = [Path(p) for p in (args.model, args.data, getattr(args, "weights", None))
             if p is not None and not str(p).startswith("preset:")]
    check_out(args.output, args.force, given)
    src = importer.load(args)  # MODEL (preset, checkpoint, .pt2) or --module
    words: tuple[str, ...] = ()
    if args.words is not None:
        from tinygen.audio.words import WordsError, read_word_list

        vocab = getattr(getattr(src.model, "cfg", None), "vocab", None)
        if not isinstance(vocab, str):
            raise WordsError("--words needs a speech model (one with a vocabulary)",
                             "build a tinygen speech checkpoint or preset")
        words = read_word_list(args.words, vocab).texts
    frames = src.frames(args.window_ms)
    calib = src.inputs(frames, args.calib, 0, args.data, "train")
    vecs = src.inputs(frames, args.vectors, 1, args.data, "test" if args.data else "train")
    source = None  # how to compile a tinygen speech model again (verify --audio)
    if args.model is not None and not str(args.model).endswith(".pt2") and \
            getattr(args, "module", None) is None:
        spec = str(args.model) if str(args.model).startswith("preset:") else \
            str(Path(args.model).resolve())
        source = {"model": spec, "window_ms": args.window_ms, "calib": args.calib,
                  "data": str(args.data.resolve()) if args.data else None}
    opts = BuildOptions(target=target, backend=backend, force=args.force,
                        vectors=args.vectors, board=args.board, inputs=tuple(given),
                        source=source, app=args.app, words=words)
    with _progress("calibrating", len(calib), args.json) as tick:
        report = build(src.model, args.output, calib, vecs, opts, src.name, progress=tick)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    f = report["flash"]
    _console().print(
        f"built {args.output} for {report['target']}: flash {f['total_bytes']:,} B "
        f"(weights {f['weights_bytes']:,}, quantization data {f['quant_bytes']:,}, "
        f"schedule {f['schedule_bytes']:,}), arena {report['arena_bytes']:,} B, "
        f"{report['macs_per_inference']:,} MACs per inference, "
        f"{report['test_vectors']} test vectors")
    for group in importer.untied_duplicates(src.model):
        _console().print(f"note: {', '.join(group)} hold identical values in separate "
                         "storage: stored once each; tie them to store one")
    if "board" in report:  # a PlatformIO project
        fit = report["fit"]
        _console().print(
            f"{report['board']}, backend {report['backend']}: flash ~{fit['flash_needed_bytes']:,}"
            f" of {fit['flash_available_bytes']:,} B, arena in {report['arena_placement']}; "
            f"next: cd {args.output} && pio run -t upload && pio device monitor")
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    import torch

    from tinygen.errors import CheckpointError
    from tinygen.fsutil import OutputError
    from tinygen.speech.checkpoint import (
        check_finite,
        model_from_checkpoint,
        read_checkpoint,
        save_checkpoint,
    )

    src, out = Path(args.checkpoint), Path(args.output)
    if out.resolve() == src.resolve():
        raise CheckpointError(f"-o {out} is the checkpoint itself", "write to another path")
    if out.is_dir():
        raise CheckpointError(f"-o {out} is a folder", "give the path of a .pt file")
    if out.exists() and not args.force:
        raise CheckpointError(f"{out} already exists", "pass --force to replace it")
    data = read_checkpoint(src)
    meta = dict(data["meta"])
    model = model_from_checkpoint(data, src)
    check_finite(model)
    storage = torch.float16 if args.fp16 else None
    if storage is not None:
        for name, t in model.state_dict().items():
            if t.is_floating_point() and bool((t.abs() > torch.finfo(storage).max).any()):
                raise CheckpointError(f"tensor {name} holds values beyond float16's range",
                                      "pack it without --fp16")
    meta.update(packed_from=src.name, storage="float16" if args.fp16 else "float32")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(model, out, meta, storage=storage)
    except OSError as err:
        raise OutputError(f"cannot write {out}: {err.strerror}",
                          "choose a writable location") from None
    print(f"wrote {out} ({out.stat().st_size:,} bytes; weights and config, no optimizer "
          "state)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from tinygen.verify import verify

    if args.audio is not None:
        from tinygen.verify_audio import print_result

        return print_result(args.out, args.audio, args.json)

    result = verify(args.out, sanitize=args.sanitize)
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False))
    else:
        verdict = ("bit-exact with the golden reference" if result["bit_exact"]
                   else f"MISMATCH on vectors {result['mismatched']}")
        snr = "n/a" if result["snr_db"] is None else f"{result['snr_db']} dB"
        _console().print(f"{result['vectors']} test vectors on {result['target']}: {verdict}"
                         f"; float vs C SNR {snr}")
        if result.get("instructions_per_inference"):  # qemu-* targets
            counts = result["instructions_per_inference"]
            _console().print(f"{sum(counts) // len(counts):,} instructions per inference "
                             f"(mean of {len(counts)}; per step: verify --json)")
    return 0 if result["bit_exact"] else 1


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line too (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"tinygen: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tinygen",
        description="Compile weight-shared, low-rank Conformer speech encoders to "
                    "microcontroller firmware.")
    parser.add_argument("--version", action="version", version=f"tinygen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("presets", help="list the named model presets")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("info", help="parameter counts, compute and weight sharing of a model")
    p.add_argument("model", metavar="MODEL", nargs="?", help=MODEL_HELP)
    importer_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("export-tflite", help="quantize to int8 and write a .tflite file with "
                       "each shared weight stored once")
    p.add_argument("model", metavar="MODEL", nargs="?", help=MODEL_HELP)
    importer_arguments(p)
    p.add_argument("-o", "--output", required=True, type=Path, help="the .tflite file")
    _add_calibration_args(p)
    p.add_argument("--verify", type=int_arg(0, MAX_INPUTS), default=4, metavar="N",
                   help="held-out inputs run through TFLite Micro and compared (default 4)")
    p.add_argument("--json", action="store_true", help="print one JSON summary")
    p.set_defaults(func=cmd_export_tflite)

    p = sub.add_parser("build", help="compile a model to C for a target")
    p.add_argument("model", metavar="MODEL", nargs="?", help=MODEL_HELP)
    importer_arguments(p)
    p.add_argument("--target", default=None,
                   help="host, qemu-m4|m7|m55|xtensa, esp32s3 or cortex-m4|m7|m55 "
                        "(PlatformIO projects); default: the --board's target, else host")
    p.add_argument("--board", default=None, metavar="NAME",
                   help="PlatformIO board for esp32s3 / cortex-m targets (default: the "
                        "target's; see README)")
    p.add_argument("--backend", default=None,
                   choices=("portable", "cmsis-nn", "esp-nn", "tflm"),
                   help="kernels: portable C, CMSIS-NN, ESP-NN or TFLite Micro (default: "
                        "the board's; portable for host and qemu; esp-nn on host and "
                        "qemu-xtensa needs $TINYGEN_ESP_NN, cmsis-nn on qemu-m4|m7|m55 "
                        "$TINYGEN_CMSIS_NN, tflm on host and qemu-m4|m7|m55 $TINYGEN_TFLM)")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT",
                   help="output folder (written completely or not at all)")
    p.add_argument("--force", action="store_true",
                   help="replace an OUT that an earlier tinygen build wrote (never a folder "
                        "holding the input, ., .., ~ or /)")
    p.add_argument("--vectors", type=int_arg(1, MAX_INPUTS), default=16, metavar="K",
                   help="test vectors written to OUT/test_vectors (default 16)")
    p.add_argument("--app", default="selftest", choices=("selftest", "listen"),
                   help="firmware: selftest runs the test vectors (default); listen hears "
                        "a microphone and prints `tg_text <start_ms> <end_ms> <word>` "
                        "lines (speech models; docs/listen.md)")
    p.add_argument("--words", type=Path, default=None, metavar="FILE",
                   help="with --app listen: a command list (one word or phrase per line); "
                        "the firmware prints the entry each utterance fits best")
    _add_calibration_args(p, held_out=False)
    p.add_argument("--json", action="store_true", help="print report.json")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("pack", help="a checkpoint ready to ship: weights, config and "
                       "training meta, no optimizer state; --fp16 halves it")
    p.add_argument("checkpoint", metavar="CKPT", help="a checkpoint from `tinygen train`")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT",
                   help="the packed checkpoint to write")
    p.add_argument("--fp16", action="store_true",
                   help="store weights as float16 (loading widens them back to float32; "
                        "evaluate the packed file, it is the model you ship)")
    p.add_argument("--force", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=cmd_pack)

    p = sub.add_parser("verify", help="run a build's C on its test vectors and compare")
    p.add_argument("out", metavar="OUT", type=Path, help="a folder from `tinygen build`")
    p.add_argument("--sanitize", action="store_true",
                   help="compile with -fsanitize=address,undefined")
    p.add_argument("--audio", type=Path, default=None, metavar="WAV",
                   help="qemu-m4|m7|m55 builds of a speech model: transcribe WAV on the "
                        "firmware and compare features, logits and text with Python")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_verify)

    from tinygen import transcribe  # audio in, text out on a host build
    from tinygen.speech import (
        data,
        evaluate,
        train,  # speech data, CTC training, accuracy
    )

    for module in (data, train, evaluate, transcribe):
        module.register(sub)
    return parser


def _add_calibration_args(p: argparse.ArgumentParser, held_out: bool = True) -> None:
    p.add_argument("--calib", type=int_arg(1, MAX_INPUTS), default=32, metavar="N",
                   help="calibration inputs (default 32)")
    if held_out:
        p.add_argument("--eval", type=int_arg(1, MAX_INPUTS), default=32, metavar="N",
                       help="held-out inputs for the float-vs-int8 SNR (default 32)")
    p.add_argument("--data", type=Path, default=None, metavar="DIR",
                   help="corpus for calibration (train split) and evaluation (dev split); "
                        "default: synthetic speech-like signals")
    p.add_argument("--window-ms", type=float_arg(1.0, MAX_WINDOW_MS), default=1000.0, metavar="MS",
                   help="input window the compiled model takes (default 1000 ms)")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every cleanup (build's temp folder) runs."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    import signal
    import threading

    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        return func(args)
    except TinygenError as err:
        print(f"tinygen: error: {err.line()}", file=sys.stderr)
        return err.exit_code
    except Terminated:
        print("tinygen: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("tinygen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
