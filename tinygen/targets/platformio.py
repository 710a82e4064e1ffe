"""PlatformIO targets: a complete project for an ESP32-S3 (ESP-IDF) or a Cortex-M board
(Zephyr), so that ``pio run -t upload`` is the only step left.

OUT holds, besides the common ``model/``, ``lib/tinygen`` and ``test_vectors/``:

    platformio.ini             the board's env (platform, board, framework, lib_deps, flags)
    src/                       main, the model (copied from model/), embedded test vectors
    lib/tinygen/library.json   the runtime as a PlatformIO library, for this backend
    lib/cmsis-nn/library.json  cmsis-nn: build config for the CMSIS-NN that lib_deps fetches
    lib/tflite-micro/...       tflm on Cortex-M: build config for the TFLM tree lib_deps fetches
    CMakeLists.txt, src/CMakeLists.txt, src/idf_component.yml, sdkconfig.defaults,
    partitions.csv             ESP-IDF (esp32s3)
    zephyr/CMakeLists.txt, zephyr/prj.conf   Zephyr (Cortex-M)
    boards/<id>.json           a custom board manifest (the Cortex-M55 system)

Frameworks: ESP-IDF for the ESP32-S3 (app_main in C, ESP-NN and esp-tflite-micro through
the component manager). Zephyr for every Cortex-M board: PlatformIO supports it on all of
them (STM32 Nucleo/Discovery and nRF52840-DK alike), its main is a plain C ``int main``,
and printk reaches the debug probe's serial port with no board code: the board's
devicetree configures clocks and the console UART. stm32cube would need clock and UART
code per board and has no nRF52; arduino's entry point is C++ setup()/loop().

Backends: a backend folder of the runtime (``cmsis_nn/``, ``esp_nn/``) replaces the
portable kernels of the same name: ``lib/tinygen/library.json`` builds ``portable/`` minus
those files plus the adapters, and the other backend folders are left out of OUT. ``tflm``
runs the .tflite export with TensorFlow Lite Micro instead of tinygen's runtime.

``write`` runs the fit check before it writes anything; ``build`` compiles every C file
of the project that needs no framework header with arm-none-eabi-gcc for the board's CPU
(-Wall -Wextra -Werror, -c) as a check, the CMSIS-NN adapters too when $TINYGEN_CMSIS_NN
has CMSIS-NN's headers; report.json's "platformio" lists the files compiled and names
each one not compiled, with why. An esp32s3 project's go through clang-22 and llc-22
-mcpu=esp32 (targets/xtensa.py), whose sizes report.json keeps under "xtensa".
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tinygen.compiler.codegen import c_ident, int8_literal, render
from tinygen.resources import firmware_dir
from tinygen.targets import TargetContext, TargetError, boards, listen, tflm

EMBEDDED_VECTORS = 4  # test vectors compiled into the firmware (flash is precious)
# --app listen: the microphone's default pins on the ESP32-S3-DevKitC-1 (free GPIOs, no
# strapping pin) and the 32-bit slot -> int16 shift; build_flags -DTG_MIC_* change them
ESP_MIC = {"bclk": 4, "ws": 5, "din": 6, "shift": 14}
# ... and the nRF52840-DK's PDM pins (P0.30 / P0.31, free on the DK's Arduino header A4/A5:
# Zephyr's own DMIC sample uses them)
NRF_PDM = {"clk_pin": 30, "din_pin": 31}
AUDIO_CODE_ESTIMATE = 8 * 1024  # the audio C (front end, CTC, gate, ring, listen loop)
GLUE_CODE_ESTIMATE = 2 * 1024  # the listen glue: I2S/DMIC setup, two tasks, printf

CMSIS_NN_URL, CMSIS_NN_TAG = "https://github.com/ARM-software/CMSIS-NN.git", "v7.0.0"
ESP_NN = ("espressif/esp-nn", "~1.1.2")  # esp_nn_fully_connected_per_ch_s8 is from 1.1.2
ESP_TFLM = ("espressif/esp-tflite-micro", "~1.3.8")  # TFLM with BATCH_MATMUL
TFLM_URL, TFLM_TAG = "https://github.com/espressif/esp-tflite-micro.git", "v1.3.8"

BACKEND_DIRS = {"cmsis-nn": "cmsis_nn", "esp-nn": "esp_nn"}
BACKEND_DOC = {
    "portable": "tinygen's portable C kernels (bit-exact with TFLM's reference kernels)",
    "cmsis-nn": f"CMSIS-NN {CMSIS_NN_TAG} (lib_deps) for {{kernels}}; portable C for the rest",
    "esp-nn": f"ESP-NN {ESP_NN[1]} (component manager) for {{kernels}}; portable C for the "
              "rest",
    "tflm": "TensorFlow Lite Micro running the .tflite export (src/tinygen_tflite.c)",
}

# TFLM's resolver methods, and the sources the lib/tflite-micro build config compiles:
# tinygen.targets.tflm's, which the host and QEMU tflm builds compile (one list, one set
# of flags).
TFLM_RESOLVER = tflm.RESOLVER
TFLM_SRC_FILTER = [f"+<{src}>" for src in tflm.sources()]
TFLM_THIRD_PARTY = tuple(d for d in tflm.INCLUDES if d != ".")
ARM_CHECK_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-mthumb")
# lib/cmsis-nn's own flags, which PlatformIO appends after the framework's: CMSIS-NN's
# README asks for builtins (Zephyr's -ffreestanding implies -fno-builtin; a later
# -fbuiltin turns memcpy/memset back into inline code) and for no frame pointer (its MVE
# inline assembly runs out of registers with one: ARM-software/CMSIS-NN#183).
CMSIS_NN_FLAGS = ("-O2", "-fomit-frame-pointer", "-fbuiltin")

# ------------------------------------------------------------------- build-file flags
# Options whose argument is the next command-line token. platform-espressif32 6.13.0
# builder/frameworks/espidf.py, get_app_flags(): every compile fragment CMake reports
# for the main component is split with click's split_arg_string, the -D ones are
# dropped (defines travel separately), and the rest are *sorted* ("because CMake
# randomly populates build flags in code model") and applied to src/ and lib/. A
# two-token option is torn from its argument (platform-espressif32#1730). So a
# generated build file may only carry flags that are one self-contained token.
SEPARATE_ARG_OPTIONS = frozenset({
    "-include", "-imacros", "-isystem", "-iquote", "-idirafter", "-iprefix",
    "-iwithprefix", "-iwithprefixbefore", "-isysroot", "-I", "-D", "-U", "-L", "-l", "-o",
    "-x", "-MF", "-MT", "-MQ", "-Xlinker", "-Xassembler", "-Xpreprocessor", "-T", "-u",
    "-z", "-e", "--param", "-aux-info", "-specs"})


def flag_problems(flags: list[str]) -> list[str]:
    """Why each of ``flags`` (one build-file entry each) would not survive a framework
    that splits entries into tokens and reorders them: an entry of several tokens, or an
    option that takes its argument from the next token."""
    problems = []
    for flag in flags:
        tokens = shlex.split(flag)
        if len(tokens) != 1:
            problems.append(f"{flag!r} is {len(tokens)} tokens")
        elif tokens[0] in SEPARATE_ARG_OPTIONS:
            problems.append(f"{flag!r} takes its argument from the next token")
    return problems



# ------------------------------------------------------------------------- backends
def adapters(backend: str, steps: list[Any]) -> tuple[list[str], dict[str, str]]:
    """The adapter files that replace portable kernels, and those left out (with why)."""
    folder = BACKEND_DIRS.get(backend)
    if folder is None:
        return [], {}
    root = firmware_dir() / "tinygen"
    files = sorted(p.name for p in (root / folder).glob("*.c")
                   if (root / "portable" / p.name).is_file())
    dropped: dict[str, str] = {}
    if backend == "esp-nn":
        for st in steps:
            p, name = st.params, f"tg_{st.kind}_s8.c"
            if st.kind == "add" and max(p["input1_shift"], p["input2_shift"],
                                        p["output_shift"]) > 0:
                dropped[name] = "ESP-NN's add needs shifts <= 0"
            elif st.kind == "mul" and p["output_shift"] > 0:
                dropped[name] = "ESP-NN's mul needs an output shift <= 0"
            elif st.kind == "fully_connected" and max(p["in_features"],
                                                      p["out_features"]) > 0xFFFF:
                dropped[name] = "ESP-NN takes uint16_t feature counts"
            elif st.kind in ("conv2d", "depthwise_conv2d") and max(
                    p[k] for k in ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c")) > 0xFFFF:
                dropped[name] = "ESP-NN takes uint16_t dimensions"
    return [f for f in files if f not in dropped], dropped


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _cmsis_scratch(kind: str, p: dict[str, Any], family: str) -> int:
    """CMSIS-NN v7.0.0's *_get_buffer_size for the call the adapter makes (GCC build)."""
    if kind == "fully_connected":
        if family == "dsp":  # tinygen's DSP tiles (portable/tg_fc_dsp.h)
            return 4 * fc_dsp_words(p["rows"], p["in_features"])
        return 0  # MVE: arm_nn_mat_mult_nt_t_s8 sums the weights in its loop
    if kind == "batch_matmul":  # cmsis_nn/tg_batch_matmul_s8.c: sums, rhs, lhs copies
        m, k, n = p["m"], p["k"], p["n"]
        if family == "dsp":  # tinygen's DSP tiles (tg_fc_dsp_matmul_s8)
            return 4 * fc_dsp_matmul_words(m, k)
        sums = 16 * _ceil(4 * n, 16) if family == "mve" else 0
        in_place = p["adj_y"] and p["rhs_row_stride"] == k
        return sums + (0 if in_place else 16 * _ceil(n * k, 16)) + (m * k if p["adj_x"] else 0)
    if kind == "depthwise_conv2d":  # arm_depthwise_conv_wrapper_s8_get_buffer_size
        kh, kw = p["kernel_h"], p["kernel_w"]
        if family == "dsp" and dw_dsp_takes(p):  # tinygen's time convolution (SMLAD)
            return 4 * ((p["out_h"] + kh + 4) // 2)  # TG_DW_DSP_BYTES
        if family == "mve":
            return 4 * 124 * kw * kh  # arm_depthwise_conv_s8_opt: CH_IN_BLOCK_MVE = 124
        if kh == 3 and kw == 3 and p["pad_h"] <= 1 and p["pad_w"] <= 1:
            return 0  # arm_depthwise_conv_3x3_s8
        return p["in_c"] * kw * kh * 2  # arm_depthwise_conv_s8_opt (DSP): int16 im2col
    if kind != "conv2d":
        return 0
    c, kh, kw = p["in_c"], p["kernel_h"], p["kernel_w"]
    if family == "dsp" and kh * kw * c >= CONV_DSP_MIN_DEPTH:  # im2col + DSP tiles
        return _ceil(CONV_DSP_ROWS * kh * kw * c, 16) * 16 + \
            4 * fc_dsp_words(CONV_DSP_ROWS, kh * kw * c)
    if p["pad_w"] == 0 and p["pad_h"] == 0 and kh == 1 and kw == 1:
        return 0  # arm_convolve_1x1_s8(_fast): no buffer with GCC
    if family == "mve":
        im2col = 4 * 16 * _ceil(c * kh * kw, 16)  # arm_convolve_s8_get_buffer_size_mve
        if p["in_h"] == 1 and kh == 1 and (p["stride_w"] * c) % 4 == 0:
            return _conv_1xn_mve(p, im2col)
        return im2col
    return 2 * 2 * _ceil(kw * kh * c, 4) * 4  # arm_convolve_s8: two int16 columns


FC_DSP_MAX_WORDS = 6144  # TG_FC_DSP_MAX_WORDS
# cmsis_nn/tg_conv2d_s8.c: TG_CONV_DSP_ROWS, TG_CONV_DSP_MIN_DEPTH
CONV_DSP_ROWS, CONV_DSP_MIN_DEPTH = 24, 8


def dw_dsp_takes(p: dict[str, Any]) -> bool:
    """The shapes cmsis_nn/tg_depthwise_conv2d_s8.c's DSP path takes (tg_depthwise_dsp):
    a convolution along the height only, stride 1, at most TG_DW_DSP_MAX_TAPS (64) taps."""
    return bool(p["kernel_w"] == 1 and p["in_w"] == 1 and p["out_w"] == 1 and
                p["stride_h"] == 1 and p["pad_w"] == 0 and p["kernel_h"] <= 64 and
                p["out_c"] == p["in_c"])


def fc_dsp_words(rows: int, in_features: int) -> int:
    """tg_fc_dsp_words (firmware/tinygen/portable/tg_fc_dsp.h): the scratch words the
    CMSIS-NN fully connected adapter takes on a DSP core without MVE."""
    depth = (in_features + 7) // 8 * 8
    pairs = max(1, min((rows + 1) // 2, (FC_DSP_MAX_WORDS - 2 * depth) // (depth + 8)))
    return 2 * depth + pairs * (depth + 8)


def fc_dsp_matmul_words(m: int, k: int) -> int:
    """tg_fc_dsp_matmul_words (firmware/tinygen/portable/tg_fc_dsp.h): the scratch words
    the CMSIS-NN batch matmul adapter takes on a DSP core without MVE."""
    words = fc_dsp_words(m, k)
    depth = (k + 7) // 8 * 8
    return words + 2 * ((words - 2 * depth) // (depth + 8))


def _conv_1xn_mve(p: dict[str, Any], im2col: int) -> int:
    """arm_convolve_1_x_n_s8_get_buffer_size_mve."""
    c, kw, pad, stride = p["in_c"], p["kernel_w"], p["pad_w"], p["stride_w"]
    out_x, in_x = p["out_w"], p["in_w"]
    asym = ((out_x - 1) * stride + kw - in_x) % 2
    right = max(1, (pad + asym + stride - 1) // stride) if pad + asym != 0 else 0
    left = max(1, (pad + stride - 1) // stride) if pad != 0 else 0
    if right + max(out_x - (right + left), 0) + left != out_x:
        return im2col
    pad_left = pad * c
    pad_right = right * c if asym else pad_left
    return max(kw * c + pad_left, kw * c - c + pad_right)


def _esp_scratch(kind: str, p: dict[str, Any]) -> int:
    """ESP-NN 1.1.2's ESP32-S3 scratch sizes (the ANSI versions need none)."""
    if kind == "softmax":
        return 4 * p["depth"]  # esp_nn_get_softmax_scratch_size_opt
    if kind == "conv2d":  # esp_nn_get_conv_scratch_size_esp32s3
        w, h, c, kw, kh = p["in_w"], p["in_h"], p["in_c"], p["kernel_w"], p["kernel_h"]
        pw, ph, out_c = p["pad_w"], p["pad_h"], p["out_c"]
        if kw == 1 and kh == 1 and pw == 0 and ph == 0 and p["stride_w"] == 1 \
                and p["stride_h"] == 1:
            ch8 = (c + 7) & ~7
            transpose = 0 if w * h < 8 else 2 * 8 * ch8
            return (w * h * ch8 if c % 8 else 0) + ch8 * out_c + transpose + 32
        ch16 = (c + 15) & ~15
        padded = 0 if pw == 0 and ph == 0 else (w + 2 * pw) * (h + 2 * ph) * c
        return padded + kw * kh * ch16 * out_c + 32 + 4 * out_c
    if kind == "depthwise_conv2d":  # esp_nn_get_depthwise_conv_scratch_size_esp32s3
        w, h, c, kw, kh = p["in_w"], p["in_h"], p["in_c"], p["kernel_w"], p["kernel_h"]
        filt = kw * kh * c
        if c % 8 == 0 and kw == 3 and kh == 3:
            if c % 16 == 0:
                if p["pad_w"] or p["pad_h"]:
                    pad_w, pad_h = 2 * p["pad_w"], 2 * p["pad_h"]
                else:
                    pad_w = p["out_w"] * p["stride_w"] + kw - 1 - w
                    pad_h = p["out_h"] * p["stride_h"] + kh - 1 - h
                if pad_w or pad_h:
                    return filt + (w + pad_w) * (h + pad_h) * c + 16
                return filt + 16
            return 2 * (filt + w * h * c) + 16
        return 32
    return 0


def scratch_bytes(backend: str, board: boards.Board, steps: list[Any],
                  files: list[str]) -> int:
    """The scratch the largest accelerated step asks for (0 for portable and tflm). The
    adapters check it again at run time with the library's own size function."""
    need = 0
    for st in steps:
        if f"tg_{st.kind}_s8.c" not in files:
            continue
        lib = 0
        if backend == "cmsis-nn":
            lib = _cmsis_scratch(st.kind, st.params, board.cpu_family)
        elif backend == "esp-nn":
            lib = _esp_scratch(st.kind, st.params)
        need = max(need, shift_bytes(st.kind, st.params) + lib)
    return need


def shift_bytes(kind: str, p: dict[str, Any]) -> int:
    """TG_NN_SHIFT_BYTES (tg_nn_scratch.h): the int32 shifts an adapter widens tinygen's
    int8 shifts to, at the start of the scratch, rounded up to 16 bytes."""
    channels = {"fully_connected": "out_features", "conv2d": "out_c",
                "depthwise_conv2d": "out_c"}.get(kind)
    return 0 if channels is None else (4 * p[channels] + 15) // 16 * 16


# ----------------------------------------------------------------------------- write
def write(out: Path, ctx: TargetContext) -> None:
    board = boards.resolve(ctx.target, ctx.options.get("board"))
    backend = ctx.backend
    boards.check_backend(ctx.target, backend, ctx.options.get("board"))
    report = ctx.report
    plan = ctx.options.get("plan")
    steps = list(plan.steps) if plan is not None else []
    files, dropped = adapters(backend, steps)
    scratch = scratch_bytes(backend, board, steps, files)
    listening = listen.app_option(ctx.options) == "listen"
    lplan = _check_listen(board, report) if listening else None
    vectors = [] if listening else ctx.vectors[:EMBEDDED_VECTORS]
    if not vectors and not listening:
        raise TargetError("a PlatformIO project needs at least one test vector",
                          "build with --vectors 1 or more")
    expected = [e for _, e in vectors]
    tflm_info: dict[str, Any] | None = None
    blob = b""
    if backend == "tflm":
        blob, tflm_info = tflm.export(ctx)
        expected = tflm.expected(ctx, [x for x, _ in vectors])
        report["tflm"] = tflm_info
    report["scratch_bytes"] = scratch
    report["vectors_bytes"] = sum(len(x) + len(e) for x, e in vectors)
    estimate = boards.code_estimate(out / "lib" / "tinygen", board, backend)
    figures = boards.fit(report, board, estimate)  # raises before anything is written
    report.update(board=board.name, arena_placement=figures["arena_placement"],
                  fit=figures, platformio=_summary(board, backend, files, dropped))
    if lplan is not None:
        report["listen"] = _listen_fit(out, board, report, lplan, figures)

    env = board.name
    src = out / "src"
    src.mkdir(parents=True, exist_ok=True)
    common = {"version": ctx.version, "model_name": ctx.model_name, "board": board,
              "backend": backend, "env": env, "project": c_ident(f"tinygen_{ctx.model_name}")}
    nn = backend in BACKEND_DIRS
    if tflm_info is None:
        for name in ("tinygen_model.h", "tinygen_weights.c", "tinygen_weights.h"):
            shutil.copyfile(out / "model" / name, src / name)
        # The model source with the board header in front (TG_ARENA_ATTR places the
        # arena): included by the source, never forced in by a framework flag.
        (src / "tinygen_model.c").write_text(render(
            "platformio/tinygen_model.c.j2", **common,
            body=(out / "model" / "tinygen_model.c").read_text()))
    else:
        data = np.frombuffer(blob, dtype=np.int8)
        (src / "tinygen_tflite.h").write_text(render(
            "platformio/tinygen_tflite.h.j2", **common, model_bytes=len(blob),
            measured=tflm_info["measured_arena_bytes"], arena_bytes=tflm_info["arena_bytes"]))
        (src / "tinygen_tflite.c").write_text(render(
            "platformio/tinygen_tflite.c.j2", **common, model_bytes=len(blob),
            body=int8_literal(data)))
    (src / "tinygen_board.h").write_text(render(
        "platformio/tinygen_board.h.j2", **common, flash=report["flash"],
        scratch_bytes=scratch, placement=figures["arena_placement"]))
    main_ctx = {**common, "nn": nn,
                "resolver": tflm.resolver(tflm_info["ops"]) if tflm_info is not None else []}
    fw = "espidf" if board.framework == "espidf" else "zephyr"
    if lplan is not None:  # the listen glue and loop instead of main and the vectors
        _write_listen(out, common, lplan, fw)
    elif tflm_info is None:
        _write_vectors(src, common, vectors, expected, len(ctx.vectors), backend)
        (src / "main.c").write_text(render(f"platformio/{fw}/main.c.j2", **main_ctx))
    else:
        _write_vectors(src, common, vectors, expected, len(ctx.vectors), backend)
        (src / "main.cc").write_text(render(f"platformio/{fw}/main_tflm.cc.j2", **main_ctx))

    _write_library(out, common, backend, files, scratch)
    # lib/tinygen is tinygen's runtime; the tflm backend runs the .tflite instead.
    lib_deps = [] if backend == "tflm" else ["tinygen"]
    wrappers: list[str] = []  # lib/<name>/library.json: a build config for a download
    lib_ignore: list[str] = []  # the downloads themselves, which those configs compile
    build_flags: list[str] = []
    if board.framework == "espidf":
        _write_espidf(out, common, backend, figures["arena_placement"] == "PSRAM")
    else:
        _write_zephyr(out, common, backend == "tflm", board.fpu_flags, lplan is not None)
        if backend == "cmsis-nn":
            wrappers, lib_ignore = ["cmsis-nn"], ["cmsis-nn-src"]
            lib_deps += [*wrappers, f"cmsis-nn-src={CMSIS_NN_URL}#{CMSIS_NN_TAG}"]
            _write_wrapper(out, "cmsis-nn", "platformio/lib/cmsis-nn.json.j2",
                           {**common, "cmsis_nn_version": CMSIS_NN_TAG.lstrip("v"),
                            "source_name": "cmsis-nn-src", "flags": CMSIS_NN_FLAGS})
        elif backend == "tflm":
            wrappers, lib_ignore = ["tflite-micro"], ["tflite-micro-src"]
            lib_deps += [*wrappers, f"tflite-micro-src={TFLM_URL}#{TFLM_TAG}"]
            build_flags += ["-DTF_LITE_STATIC_MEMORY"] + [
                f"-I.pio/libdeps/{env}/tflite-micro-src/{d}" for d in TFLM_THIRD_PARTY]
            _write_wrapper(out, "tflite-micro", "platformio/lib/tflm.json.j2",
                           {**common, "tflm_version": TFLM_TAG.lstrip("v"),
                            "source_name": "tflite-micro-src",
                            "src_filter": TFLM_SRC_FILTER,
                            "flags": tflm.FLAGS})
    if board.custom_board:
        (out / "boards").mkdir(exist_ok=True)
        (out / "boards" / f"{board.pio_board}.json").write_text(
            render("platformio/board.json.j2", **common))
    if lplan is not None and board.framework == "espidf":
        build_flags += [f"-DTG_MIC_{k.upper()}={v}" for k, v in ESP_MIC.items()]
    (out / "platformio.ini").write_text(render(
        "platformio/platformio.ini.j2", **common, lib_deps=lib_deps, lib_ignore=lib_ignore,
        wrappers=wrappers, build_flags=build_flags, listening=lplan is not None))
    kernels = ", ".join(f[3:-5] for f in files) or "no kernel"
    (out / "README.md").write_text(render(
        "platformio/README.md.j2", **common, fit=figures, vectors=len(vectors),
        checked=bool(board.cpu and shutil.which("arm-none-eabi-gcc")),
        listen=report.get("listen"), mic=ESP_MIC, pdm=NRF_PDM,
        backend_doc=BACKEND_DOC[backend].format(kernels=kernels)))


def _check_listen(board: boards.Board, report: dict[str, Any]) -> listen.ListenPlan:
    """The listen loop's sizes, or a refusal (no front end, no microphone driver)."""
    listen.check_board(board)
    return listen.plan(report)  # refuses a model without the audio front end


def _listen_fit(out: Path, board: boards.Board, report: dict[str, Any],
                p: listen.ListenPlan, figures: dict[str, Any]) -> dict[str, Any]:
    """report.json's ``listen`` for a board: RAM with the glue's buffers and stacks, flash
    with the code estimate (the audio C measured like the runtime where a compiler for the
    CPU is here); refuse a loop that does not fit the RAM left beside the framework."""
    estimate = figures["code_estimate"]
    audio = AUDIO_CODE_ESTIMATE
    if estimate["runtime_measured_with"].startswith("arm-none-eabi-gcc"):
        measured = boards._measure(board.cpu, sorted((out / "lib" / "tinygen" / "audio")
                                                     .glob("*.c")))
        audio = measured if measured >= 0 else audio
    elif "esp32" in estimate["runtime_measured_with"]:
        audio = 0  # xtensa.runtime_bytes compiled lib/tinygen/audio with the runtime
    code = estimate["total_bytes"] - estimate["main_bytes"] + GLUE_CODE_ESTIMATE + audio
    info = listen.ram_flash(report, p, board.framework, code)
    ram = info["ram"]
    # what the framework reserve holds already: Zephyr's main stack (the loop runs in main)
    held = listen.ZEPHYR_MAIN_STACK if board.framework == "zephyr" else 0
    psram = figures["arena_placement"] == "PSRAM"
    need = ram["total_bytes"] - held - (ram["model_ram_bytes"] if psram else 0) + \
        figures["scratch_bytes"]
    available = board.ram_bytes - board.ram_reserved
    info.update(audio_code_bytes=audio, ram_needed_internal_bytes=need,
                ram_available_bytes=available)
    if need > available:
        raise boards.FitError(
            f"the listen app does not fit {board.name}: RAM needs {need:,} B (ring "
            f"{ram['ring_bytes']:,} + loop {ram['state_bytes']:,} + model "
            f"{0 if psram else ram['model_ram_bytes']:,} + stacks {ram['stack_bytes']:,} + "
            f"microphone buffers {ram['dma_bytes'] + ram['mic_buffer_bytes']:,} + other) "
            f"of {available:,} B", "use a smaller model or window, or a bigger board")
    return info


def _write_listen(out: Path, common: dict[str, Any], p: listen.ListenPlan, fw: str) -> None:
    """src/: the loop's app, the audio tables and the framework's glue file."""
    src = out / "src"
    for name in ("tg_audio_tables.h", "tg_audio_tables.c"):
        shutil.copyfile(out / "model" / name, src / name)
    listen.render_app(src, p, common["version"], common["model_name"])
    if fw == "espidf":
        (src / "listen_espidf.c").write_text(render(
            "platformio/espidf/listen_espidf.c.j2", **common, pins=ESP_MIC,
            listen_stack=listen.ESPIDF["listen_stack"], mic_stack=listen.ESPIDF["mic_stack"],
            dma_desc_num=listen.ESPIDF["dma_desc_num"],
            dma_frame_num=listen.ESPIDF["dma_frame_num"]))
    else:
        (src / "listen_zephyr.c").write_text(render(
            "platformio/zephyr/listen_zephyr.c.j2", **common,
            block_ms=listen.ZEPHYR["block_ms"], block_count=listen.ZEPHYR["block_count"],
            mic_stack=listen.ZEPHYR["mic_stack"]))
        (out / "zephyr").mkdir(exist_ok=True)
        (out / "zephyr" / "app.overlay").write_text(render(
            "platformio/zephyr/app.overlay.j2", **common, **NRF_PDM))


def _summary(board: boards.Board, backend: str, files: list[str],
             dropped: dict[str, str]) -> dict[str, Any]:
    return {"platform": board.platform, "board": board.pio_board,
            "framework": board.framework, "mcu": board.mcu, "cpu": board.cpu or board.mcu,
            "clock_mhz": board.clock_mhz, "flash_bytes": board.flash_bytes,
            "ram_bytes": board.ram_bytes, "psram_bytes": board.psram_bytes,
            "board_source": board.source, "note": board.note,
            "accelerated_kernels": [f[3:-5] for f in files],
            "portable_kept": dropped, "embedded_vectors": EMBEDDED_VECTORS,
            "checked": "not yet"}


def _write_vectors(src: Path, common: dict[str, Any], vectors: list[tuple[bytes, bytes]],
                   expected: list[bytes], total: int, backend: str) -> None:
    def body(b: bytes) -> str:
        return int8_literal(np.frombuffer(b, np.int8))

    doc = ("golden outputs of the .tflite graph (TFLM's LayerNorm is decomposed into "
           "builtins)" if backend == "tflm" else "OUT/test_vectors/expected_K.bin")
    ctx = {**common, "count": len(vectors), "total": total,
           "input_bytes": len(vectors[0][0]), "output_bytes": len(expected[0]),
           "expected_doc": doc}
    (src / "tinygen_vectors.h").write_text(render("platformio/tinygen_vectors.h.j2", **ctx))
    (src / "tinygen_vectors.c").write_text(render(
        "platformio/tinygen_vectors.c.j2", **ctx, inputs=[body(x) for x, _ in vectors],
        expected=[body(e) for e in expected]))


def library_src_filter(backend: str, files: list[str]) -> list[str]:
    """lib/tinygen/library.json's srcFilter: the runtime, the portable kernels minus those
    the backend overrides, plus the backend's same-named adapters."""
    folder = BACKEND_DIRS.get(backend)
    items = ["+<*.c>", "+<portable/*.c>", "+<audio/*.c>"]
    if folder:
        items += [f"-<portable/{f}>" for f in files] + [f"+<{folder}/{f}>" for f in files]
    return items


def library_flags(backend: str, board: boards.Board, scratch: int) -> list[str]:
    """lib/tinygen/library.json's build flags: the library scratch size, and for CMSIS-NN
    the ISA feature the board's CPU has (cmsis_nn/tg_cmsis_nn_isa.h stops the build with
    #error when the compiler flags leave it off: CMSIS-NN would fall back to a slower
    path without a word)."""
    if backend not in BACKEND_DIRS:
        return []
    flags = [f"-DTG_NN_SCRATCH_BYTES={scratch}"]
    if backend == "cmsis-nn" and board.cpu_family in ("mve", "dsp"):
        flags.append(f"-DTG_CMSIS_NN_REQUIRE_{board.cpu_family.upper()}=1")
    return flags


def _write_library(out: Path, common: dict[str, Any], backend: str, files: list[str],
                   scratch: int) -> None:
    lib = out / "lib" / "tinygen"
    for folder in BACKEND_DIRS.values():  # only the active backend's adapters ship
        if folder != BACKEND_DIRS.get(backend) and (lib / folder).is_dir():
            shutil.rmtree(lib / folder)
    flags = library_flags(backend, common["board"], scratch)
    (lib / "library.json").write_text(render(
        "platformio/library.json.j2", **common, src_filter=library_src_filter(backend, files),
        flags=flags))


def _write_wrapper(out: Path, name: str, template: str, ctx: dict[str, Any]) -> None:
    folder = out / "lib" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "library.json").write_text(render(template, **ctx))


def _write_espidf(out: Path, common: dict[str, Any], backend: str, psram: bool) -> None:
    components = {"esp-nn": [ESP_NN], "tflm": [ESP_TFLM]}.get(backend, [])
    (out / "CMakeLists.txt").write_text(render("platformio/espidf/CMakeLists.txt.j2", **common))
    (out / "src" / "CMakeLists.txt").write_text(
        render("platformio/espidf/src_CMakeLists.txt.j2", **common))
    (out / "src" / "idf_component.yml").write_text(
        render("platformio/espidf/idf_component.yml.j2", **common, components=components))
    (out / "sdkconfig.defaults").write_text(render(
        "platformio/espidf/sdkconfig.defaults.j2", **common, esp_nn=backend == "esp-nn",
        psram=psram))
    (out / "partitions.csv").write_text(render("platformio/espidf/partitions.csv.j2",
                                               **common))


def _write_zephyr(out: Path, common: dict[str, Any], tflm: bool,
                  fpu: tuple[str, ...], listening: bool = False) -> None:
    (out / "zephyr").mkdir(exist_ok=True)
    (out / "zephyr" / "CMakeLists.txt").write_text(
        render("platformio/zephyr/CMakeLists.txt.j2", **common))
    (out / "zephyr" / "prj.conf").write_text(
        render("platformio/zephyr/prj.conf.j2", **common, tflm=tflm, fpu=fpu,
               listening=listening))


# ----------------------------------------------------------------------------- build
CMSIS_NN_ENV = "TINYGEN_CMSIS_NN"
ZEPHYR_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]zephyr[/.]', re.M)
CMSIS_NN_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]arm_nn', re.M)
ESP_NN_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]esp_nn', re.M)


def cmsis_nn_include() -> Path | None:
    """CMSIS-NN's Include/ folder under $TINYGEN_CMSIS_NN, if it is there."""
    inc = Path(os.environ.get(CMSIS_NN_ENV, "") or "/nonexistent") / "Include"
    return inc if (inc / "arm_nnfunctions.h").is_file() else None


def project_sources(out: Path) -> list[tuple[Path, str]]:
    """Every source file the project's build compiles, with its path in the project:
    src/ (C and C++) and what lib/tinygen's library.json srcFilter picks."""
    from tinygen.targets.xtensa import library_sources

    src, lib = out / "src", out / "lib" / "tinygen"
    units = [(p, f"src/{p.name}") for p in sorted(src.iterdir())
             if p.suffix in (".c", ".cc", ".cpp")]
    if lib.is_dir():
        units += [(lib / rel, f"lib/tinygen/{rel}") for rel in library_sources(lib)]
    return units


def check_sources(out: Path, arm: bool = True) -> tuple[list[Path], dict[str, str]]:
    """The project's sources that the compile check compiles (for an Arm ``-mcpu``, or
    for the host with ``arm`` False), and each one it cannot compile here, with why."""
    from tinygen.targets.xtensa import IDF_INCLUDE, header_via

    dirs = [out / "src", out / "lib" / "tinygen"]
    cmsis = cmsis_nn_include()
    compiled: list[Path] = []
    skipped: dict[str, str] = {}
    for path, rel in project_sources(out):
        if path.suffix != ".c":
            skipped[rel] = "C++ against TensorFlow Lite Micro, which the build fetches"
        elif header_via(path, dirs, ZEPHYR_INCLUDE) is not None:
            skipped[rel] = "includes Zephyr headers"
        elif header_via(path, dirs, IDF_INCLUDE) is not None:
            skipped[rel] = "includes ESP-IDF headers"
        elif header_via(path, dirs, ESP_NN_INCLUDE) is not None:
            skipped[rel] = "includes ESP-NN headers (an ESP32 project)"
        elif header_via(path, dirs, CMSIS_NN_INCLUDE) is not None and not arm:
            skipped[rel] = "a CMSIS-NN adapter: compiled for Arm only"
        elif header_via(path, dirs, CMSIS_NN_INCLUDE) is not None and cmsis is None:
            skipped[rel] = (f"needs CMSIS-NN's headers: ${CMSIS_NN_ENV} is not set or has "
                            "no Include/arm_nnfunctions.h")
        else:
            compiled.append(path)
    return compiled, skipped


def compile_check(out: Path, cpu: str, gcc: str = "arm-none-eabi-gcc",
                  extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Compile ``check_sources`` with -Wall -Wextra -Werror (-c) for ``cpu`` (or for the
    host when cpu is empty), lib/tinygen's files with its library.json flags as
    PlatformIO does; raise TargetError on the first diagnostic. Returns the files
    compiled and those not compiled, with why (project paths)."""
    flags = [*ARM_CHECK_FLAGS, f"-mcpu={cpu}"] if cpu else ["-std=c99", "-O2", "-Wall",
                                                            "-Wextra", "-Werror"]
    out = out.resolve()  # the compiler runs in a temporary folder
    lib = out / "lib" / "tinygen"
    includes = [f"-I{out / 'src'}", f"-I{lib}"]
    cmsis = cmsis_nn_include()
    if cmsis is not None and cpu:
        includes.append(f"-I{cmsis}")
    compiled, skipped = check_sources(out, arm=bool(cpu))
    manifest = lib / "library.json"
    lib_flags = (json.loads(manifest.read_text()).get("build", {}).get("flags", [])
                 if manifest.is_file() else [])
    groups = [([p for p in compiled if lib not in p.parents], []),
              ([p for p in compiled if lib in p.parents], lib_flags)]
    for files, own in groups:
        if not files:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [gcc, *flags, *extra, *own, *includes, "-c", *[str(s) for s in files]]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                                      cwd=tmp)
            except FileNotFoundError:
                raise TargetError(f"{gcc} not found",
                                  "install it (gcc-arm-none-eabi)") from None
        if proc.returncode != 0 or proc.stderr.strip():
            first = (proc.stderr.strip().splitlines() or ["no output"])[0]
            raise TargetError(f"{gcc} -mcpu={cpu}: {first[:300]}",
                              "this is a tinygen bug; please report it with the model")
    return {"compiled": [str(p.relative_to(out)) for p in compiled], "not_compiled": skipped}


def build(out: Path, ctx: TargetContext) -> None:
    board = boards.resolve(ctx.target, ctx.options.get("board"))
    summary = ctx.report["platformio"]
    if not board.cpu:  # the ESP32-S3: the esp32 compile check (targets/xtensa.py)
        from tinygen.targets import xtensa

        ctx.report["xtensa"] = check = xtensa.check_project(out)
        summary["checked"] = (f"{check['files_compiled']} C files without ESP-IDF headers "
                              f"compiled with {check['compiler']}" if check["checked"] else
                              f"platformio.ini generated; nothing compiled: {check['reason']}")
        return
    if shutil.which("arm-none-eabi-gcc") is None:
        summary["checked"] = "not compiled: arm-none-eabi-gcc not found"
        return
    check = compile_check(out, board.cpu, extra=board.framework_cflags)
    summary["compiled"], summary["not_compiled"] = check["compiled"], check["not_compiled"]
    left = "; ".join(f"{rel} ({why})" for rel, why in check["not_compiled"].items())
    summary["checked"] = (f"{len(check['compiled'])} C files compiled with arm-none-eabi-gcc "
                          f"{' '.join(board.framework_cflags)} -Wall -Wextra -Werror"
                          + (f"; not compiled: {left}" if left else ""))


def describe() -> dict[str, Any]:
    return {"runs_here": False}
