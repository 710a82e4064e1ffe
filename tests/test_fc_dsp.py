"""The DSP fully connected kernel and matrix product (firmware/tinygen/portable/
tg_fc_dsp.h) on QEMU's Cortex-M4 and M7 against the numpy reference, byte for byte.

The host cannot run SMLAD / SXTB16, so tests/c/tg_fc_dsp_driver.c is built with the
boards' startup and semihosting (firmware/boards/qemu/) and run under qemu-system-arm:
it reads the cases from a host file and writes, per case, tg_fc_dsp_s8's output with the
case's scratch size and tg_fully_connected_s8's (the portable kernel as built for that
core, which takes the DSP tiles up to 168 features). The cases aim at the tile's edges:
row counts that are odd or not a multiple of the block, channel counts not a multiple of
4, depths not a multiple of 8 (zero padded) and of 4 (the byte tail), scratch that holds
one row pair or all of them, depths of every count of 8-column steps modulo 4 (where the
tile's loop is entered), shifts on both sides of the fast requantization (-2) and past the
folded one (-22), ReLU clamps and biases at the int32 limits.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.test_c_kernels import INT32_MAX, INT32_MIN, acc_quant, activation, log_scale, zp
from tinygen.reference import kernels as K
from tinygen.targets import qemu

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"
DRIVER = REPO / "tests" / "c" / "tg_fc_dsp_driver.c"


def depth(d_in: int) -> int:
    return (d_in + 7) // 8 * 8


def cases() -> list[dict]:
    rng = np.random.default_rng(1717)
    shapes = [(1, 1, 1), (2, 8, 4), (3, 5, 3), (5, 7, 5), (7, 9, 6), (24, 64, 29),
              (24, 96, 10), (13, 63, 7), (4, 65, 9), (9, 3, 11), (6, 12, 2), (2, 200, 5),
              (11, 168, 4), (3, 169, 3), (24, 384, 6), (17, 31, 17), (5, 24, 8),
              (6, 88, 12), (9, 56, 5), (24, 64, 16)]
    out = []
    for case, (rows, d_in, d_out) in enumerate(shapes * 3):
        s_in, zp_in = log_scale(rng, -3, 0.5), zp(rng)
        s_w = [log_scale(rng, -3, -0.5) for _ in range(d_out)]
        x = rng.integers(-128, 128, size=(rows, d_in)).astype(np.int8)
        w = rng.integers(-127, 128, size=(d_out, d_in)).astype(np.int8)
        bias = rng.integers(-40000, 40000, size=d_out)
        if case % 7 == 3:  # int32 limits: the sum wraps as TFLM's does
            near = rng.integers(0, 1 << 17, size=d_out)
            bias = np.where(rng.random(d_out) < 0.5, INT32_MAX - near, INT32_MIN + near)
        s_out, zp_out = acc_quant(rng, x, zp_in, w, d_in, s_in * float(np.median(s_w)), case)
        if case % 5 == 2:  # multiplier > 1 for some: shifts >= -1 take the generic path
            s_out = float(np.float32(s_in * min(s_w) * 10 ** rng.uniform(-1.5, 0.5)))
        if case % 11 == 6:  # right shifts past 22: the fast path without the folded zp
            s_out = float(np.float32(s_in * max(s_w) * 2.0 ** rng.uniform(22.5, 26)))
        act = activation(rng)
        p = K.prepare_fully_connected(s_in, zp_in, s_w, s_out, zp_out, act)
        has_bias = case % 4 != 1
        b = bias.astype(np.int32) if has_bias else None
        # scratch: one row pair, two, or every pair (tg_fc_dsp_words)
        pairs = [1, 2, (rows + 1) // 2][case % 3]
        out.append({"rows": rows, "d_in": d_in, "d_out": d_out, "zp_in": zp_in,
                    "zp_out": zp_out, "p": p, "x": x, "w": w, "bias": b,
                    "buf_words": 2 * depth(d_in) + pairs * (depth(d_in) + 8),
                    "want": K.fully_connected_s8(x, w, b, p)})
    return out


def pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def encode(cs: list[dict]) -> bytes:
    parts = [struct.pack("<i", len(cs))]
    for c in cs:
        p = c["p"]
        mult = np.broadcast_to(np.asarray(p.output_multiplier), (c["d_out"],))
        shift = np.broadcast_to(np.asarray(p.output_shift), (c["d_out"],))
        parts.append(struct.pack("<9i", c["rows"], c["d_in"], c["d_out"], c["zp_in"],
                                 c["zp_out"], p.act_min, p.act_max, c["bias"] is not None,
                                 c["buf_words"]))
        parts += [pad4(c["x"].tobytes()), pad4(c["w"].tobytes())]
        if c["bias"] is not None:
            parts.append(c["bias"].astype("<i4").tobytes())
        parts += [mult.astype("<i4").tobytes(), pad4(shift.astype(np.int8).tobytes())]
    return b"".join(parts)


def run_driver(target: str, tmp_path: Path, cases_file: str, data: bytes,
               out_file: str) -> bytes:
    """Build tests/c/tg_fc_dsp_driver.c (with the portable fully connected kernel) for
    target, run it on ``data`` written to ``cases_file``, return ``out_file``'s bytes."""
    board = qemu.BOARDS[target]
    gcc, emu = shutil.which(board.arch.cc), shutil.which(board.arch.qemu)
    assert gcc and emu, "needs gcc-arm-none-eabi and qemu-system-arm (scripts/setup.sh)"
    boards = FIRMWARE / "boards" / "qemu"
    tiny = FIRMWARE / "tinygen"
    elf = tmp_path / "fc.elf"
    subprocess.run(
        [gcc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", *board.arch.cflags,
         *board.cflags, "-I", str(tiny), "-I", str(boards), str(DRIVER),
         str(tiny / "portable" / "tg_fully_connected_s8.c"),
         *(str(boards / f) for f in board.arch.sources if (boards / f).is_file()),
         *board.arch.ldflags, "-L", str(boards), "-T", board.linker_script, "-o", str(elf)],
        check=True, capture_output=True, text=True, timeout=300)
    (tmp_path / cases_file).write_bytes(data)
    proc = subprocess.run([emu, *board.qemu_args(), "-kernel", str(elf)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return (tmp_path / out_file).read_bytes()


def assert_outputs(got: bytes, cs: list[dict], label: Callable[[dict], str]) -> None:
    """got is every case's output, one after the other: each must be its "want"."""
    assert len(got) == sum(c["want"].size for c in cs)
    pos, bad = 0, []
    for i, c in enumerate(cs):
        want = c["want"].tobytes()
        if got[pos:pos + len(want)] != want:
            bad.append(f"case {i} {label(c)}")
        pos += len(want)
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("target", ["qemu-m4", "qemu-m7"])
def test_fc_dsp_on_qemu_is_bit_exact(target: str, tmp_path: Path) -> None:
    cs = cases()
    got = run_driver(target, tmp_path, "fc_cases.bin", encode(cs), "fc_out.bin")
    assert len(got) == sum(2 * c["want"].size for c in cs)
    pos, bad = 0, []
    for i, c in enumerate(cs):
        want = c["want"].tobytes()
        for name in ("tg_fc_dsp_s8", "tg_fully_connected_s8"):
            if got[pos:pos + len(want)] != want:
                bad.append(f"case {i} {name} ({c['rows']},{c['d_in']})x({c['d_out']}) "
                           f"scratch {c['buf_words']} words")
            pos += len(want)
    assert not bad, "\n".join(bad)
    shifts = np.concatenate([np.broadcast_to(c["p"].output_shift, (c["d_out"],))
                             for c in cs])
    assert shifts.min() <= -2 and shifts.max() >= -1  # both requantization paths ran


# ---- tg_fc_dsp_matmul_s8: the CMSIS-NN batch matmul adapter's kernel on DSP cores --------

def matmul_cases() -> list[dict]:
    """Random products at the tile's edges: m odd or past a block, n not a multiple of
    4, k not a multiple of 8 or 4, both operands transposed or at a row stride longer
    than the row (attention's heads), every zero point, scratch from one row pair to
    all, and both requantization paths."""
    rng = np.random.default_rng(2323)
    shapes = [(1, 1, 1), (24, 24, 24), (3, 5, 7), (24, 24, 24), (9, 13, 6), (2, 8, 4),
              (17, 31, 5), (4, 3, 9), (24, 96, 24), (7, 40, 11)]
    out = []
    for case, (m, k, n) in enumerate(shapes * 4):
        adj_x, adj_y = case % 4 == 3, case % 2 == 0
        za, zb, zo = zp(rng), zp(rng), zp(rng)
        if case % 5 == 4:
            zb = 0
        s_a, s_b = log_scale(rng, -3, 0.5), log_scale(rng, -3, 0.5)
        a_shape = (k, m) if adj_x else (m, k)
        b_shape = (n, k) if adj_y else (k, n)
        a_stride = a_shape[1] + int(rng.integers(0, 3)) * 8
        b_stride = b_shape[1] + int(rng.integers(0, 3)) * 8
        a_buf = rng.integers(-128, 128, size=(a_shape[0], a_stride)).astype(np.int8)
        b_buf = rng.integers(-128, 128, size=(b_shape[0], b_stride)).astype(np.int8)
        a_mat, b_mat = a_buf[:, :a_shape[1]], b_buf[:, :b_shape[1]]
        ref = (a_mat.T if adj_x else a_mat).astype(np.int64) - za
        w = ((b_mat if adj_y else b_mat.T).astype(np.int64) - zb)  # (n, k)
        acc = ref @ w.T
        spread = float(np.std(acc)) + 1.0
        s_out = float(np.float32(s_a * s_b * spread / 40 * 10 ** rng.uniform(-0.3, 0.3)))
        if case % 6 == 5:  # a multiplier above 1/4: the generic requantization path
            s_out = float(np.float32(s_a * s_b * 10 ** rng.uniform(-0.5, 0.5)))
        p = K.prepare_batch_matmul(s_a, za, s_b, zb, s_out, zo, adj_x=adj_x, adj_y=adj_y)
        want = K.batch_matmul_s8(a_mat, b_mat, p)
        d = depth(k)
        pairs = [1, 2, (m + 1) // 2][case % 3]
        out.append({"m": m, "k": k, "n": n, "za": za, "zb": zb, "zo": zo, "p": p,
                    "adj_x": adj_x, "adj_y": adj_y, "a": a_buf, "b": b_buf,
                    "a_stride": a_stride, "b_stride": b_stride,
                    "buf_words": 2 * d + pairs * (d + 10), "want": want})
    return out


def encode_matmul(cs: list[dict]) -> bytes:
    parts = [struct.pack("<i", len(cs))]
    for c in cs:
        p = c["p"]
        parts.append(struct.pack("<13i", c["m"], c["k"], c["n"], c["za"], c["zb"], c["zo"],
                                 p.output_multiplier, p.output_shift, c["adj_x"],
                                 c["adj_y"], c["a_stride"], c["b_stride"], c["buf_words"]))
        parts += [pad4(c["a"].tobytes()), pad4(c["b"].tobytes())]
    return b"".join(parts)


@pytest.mark.parametrize("target", ["qemu-m4"])
def test_fc_dsp_matmul_on_qemu_is_bit_exact(target: str, tmp_path: Path) -> None:
    cs = matmul_cases()
    got = run_driver(target, tmp_path, "mm_cases.bin", encode_matmul(cs), "mm_out.bin")
    assert_outputs(got, cs, lambda c: f"({c['m']},{c['k']})x({c['k']},{c['n']}) adj "
                                      f"{c['adj_x']:d}{c['adj_y']:d} scratch "
                                      f"{c['buf_words']} words")
    shifts = [c["p"].output_shift for c in cs]
    assert min(shifts) <= -2 < max(shifts)  # both requantization paths ran
    outs = np.concatenate([c["want"].ravel() for c in cs]).astype(np.int64)
    assert np.mean((outs > -128) & (outs < 127)) > 0.5  # the arithmetic, not the clamps


# ---- tg_dw_dsp_s8: the CMSIS-NN depthwise adapter's time convolution on DSP cores ------


def depthwise_cases() -> list[dict]:
    """Random time convolutions: odd and even kernels from 1 tap to 31, paddings from
    none to past the kernel, odd output lengths, one to 40 channels, two batches, no
    bias, fused clamps, and both requantization paths."""
    rng = np.random.default_rng(4545)
    out = []
    for case in range(60):
        n = 1 + (case % 7 == 3)
        c = int(rng.integers(1, 41))
        h = int(rng.integers(1, 40))
        kh = int(rng.integers(1, 32)) if case % 3 else 15
        padding = K.PADDINGS[case % 2]
        if padding == "VALID":
            kh = min(kh, h)
        s_in, zp_in = log_scale(rng, -3, 0.5), zp(rng)
        s_w = [log_scale(rng, -3, -0.5) for _ in range(c)]
        x = rng.integers(-128, 128, size=(n, h, 1, c)).astype(np.int8)
        w = rng.integers(-127, 128, size=(1, kh, 1, c)).astype(np.int8)
        bias = None if case % 5 == 4 else rng.integers(-40000, 40000, size=c).astype(np.int32)
        s_out, zp_out = acc_quant(rng, x, zp_in, w, kh, s_in * float(np.median(s_w)), case)
        if case % 6 == 5:  # multipliers above 1/4: the generic requantization path
            s_out = float(np.float32(s_in * min(s_w) * 10 ** rng.uniform(-0.5, 0.5)))
        p = K.prepare_depthwise_conv2d(s_in, zp_in, s_w, s_out, zp_out, input_shape=x.shape,
                                       filter_shape=w.shape, padding=padding,
                                       activation=activation(rng))
        if case % 10 == 9:  # padding wider than the kernel
            _, out_h, out_w, oc = p.output_shape
            p = replace(p, pad_h=p.pad_h + kh + 1, output_shape=(n, out_h + 2 * (kh + 1),
                                                                 out_w, oc))
        out.append({"n": n, "h": h, "c": c, "kh": kh, "p": p, "zp_in": zp_in,
                    "zp_out": zp_out, "x": x, "w": w, "bias": bias,
                    "want": K.depthwise_conv2d_s8(x, w, bias, p)})
    return out


def encode_depthwise(cs: list[dict]) -> bytes:
    parts = [struct.pack("<i", len(cs))]
    for c in cs:
        p = c["p"]
        mult = np.broadcast_to(np.asarray(p.output_multiplier), (c["c"],))
        shift = np.broadcast_to(np.asarray(p.output_shift), (c["c"],))
        parts.append(struct.pack("<11i", c["n"], c["h"], c["c"], p.output_shape[1], c["kh"],
                                 p.pad_h, c["zp_in"], c["zp_out"], p.act_min, p.act_max,
                                 c["bias"] is not None))
        parts += [pad4(c["x"].tobytes()), pad4(c["w"].tobytes())]
        if c["bias"] is not None:
            parts.append(c["bias"].astype("<i4").tobytes())
        parts += [mult.astype("<i4").tobytes(), pad4(shift.astype(np.int8).tobytes())]
    return b"".join(parts)


@pytest.mark.parametrize("target", ["qemu-m4"])
def test_dw_dsp_on_qemu_is_bit_exact(target: str, tmp_path: Path) -> None:
    cs = depthwise_cases()
    got = run_driver(target, tmp_path, "dw_cases.bin", encode_depthwise(cs), "dw_out.bin")
    assert_outputs(got, cs, lambda c: f"n{c['n']} h{c['h']} c{c['c']} k{c['kh']} "
                                      f"pad {c['p'].pad_h} out {c['p'].output_shape}")
    shifts = np.concatenate([np.broadcast_to(c["p"].output_shift, (c["c"],)) for c in cs])
    assert shifts.min() <= -2 < shifts.max()  # both requantization paths ran
    assert any(c["p"].act_min > -128 for c in cs) and any(c["bias"] is None for c in cs)
    outs = np.concatenate([c["want"].ravel() for c in cs]).astype(np.int64)
    assert np.mean((outs > -128) & (outs < 127)) > 0.5  # the arithmetic, not the clamps
