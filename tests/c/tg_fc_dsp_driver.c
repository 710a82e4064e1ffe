/*
 * Test driver for the DSP kernels of firmware/tinygen/portable/tg_fc_dsp.h on a QEMU
 * Cortex-M (test code, not firmware). tests/test_fc_dsp.py builds it for qemu-m4 /
 * qemu-m7 with the board support of firmware/boards/qemu/ and runs it with semihosting.
 *
 * Fully connected: reads the host file "fc_cases.bin" (when there is one) and writes
 * "fc_out.bin": per case, the output of tg_fc_dsp_s8 with the case's scratch size, then
 * the output of tg_fully_connected_s8 (the portable kernel as this core builds it). One
 * case:
 *   int32 rows, in_features, out_features, zp_in, zp_out, act_min, act_max, has_bias,
 *         buf_words
 *   input   rows * in_features bytes, weights out_features * in_features bytes,
 *   bias    out_features int32 (when has_bias), multiplier out_features int32,
 *   shift   out_features bytes.
 * Matrix product: reads "mm_cases.bin" (when there is one) and writes "mm_out.bin": per
 * case, tg_fc_dsp_matmul_s8's (m, n) output rows, contiguous. One case:
 *   int32 m, k, n, za, zb, zo, multiplier, shift, adj_x, adj_y, a_stride, b_stride,
 *         buf_words
 *   a  (adj_x ? k rows : m rows) * a_stride bytes: element (i, t) at t * a_stride + i
 *      when adj_x, else at i * a_stride + t;
 *   b  (adj_y ? n rows : k rows) * b_stride bytes: element (t, j) at j * b_stride + t
 *      when adj_y, else at t * b_stride + j.
 * Depthwise along the height (tg_dw_dsp.h): reads "dw_cases.bin" (when there is one) and
 * writes "dw_out.bin": per case, tg_dw_dsp_s8's (batches, out_h, c) output. One case:
 *   int32 batches, in_h, c, out_h, kernel_h, pad_h, zp_in, zp_out, act_min, act_max,
 *         has_bias
 *   input   batches * in_h * c bytes, weights kernel_h * c bytes,
 *   bias    c int32 (when has_bias), multiplier c int32, shift c bytes.
 * All numbers little-endian, each part padded to a multiple of 4 bytes; each stream
 * starts with the int32 number of cases. Exit status 0, 2 on a bad stream, 3 when a
 * kernel refuses its scratch.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "portable/tg_dw_dsp.h"
#include "portable/tg_fc_dsp.h"
#include "tg_kernels.h"
#include "tg_semihost.h"

#define IN_BYTES (1 << 20)
#define OUT_BYTES (1 << 18)
#define BUF_WORDS 8192

static int32_t in_words[IN_BYTES / 4];
static int8_t out_bytes[OUT_BYTES];
static int32_t scratch[BUF_WORDS];

static const int8_t *take(const int8_t **pos, int32_t bytes)
{
    const int8_t *p = *pos;
    *pos += (bytes + 3) & ~3;
    return p;
}

static int32_t take_i32(const int8_t **pos)
{
    int32_t v;
    memcpy(&v, take(pos, 4), 4);
    return v;
}

/* Reads the host file name into in_words: 1 when read, 0 when there is no such file,
 * -1 when it is empty or too long. */
static int read_cases(const char *name)
{
    long got;
    int h = tg_sh_open(name, "rb");

    if (h < 0) {
        return 0;
    }
    got = tg_sh_read(h, in_words, IN_BYTES);
    tg_sh_close(h);
    return got > 0 && got < IN_BYTES ? 1 : -1;
}

/* Writes out_bytes[0, len) to the host file name: 0, or 2 when that fails. */
static int write_out(const char *name, int32_t len)
{
    int h = tg_sh_open(name, "wb");

    if (h < 0 || tg_sh_write(h, out_bytes, len) != len) {
        return 2;
    }
    tg_sh_close(h);
    return 0;
}

static int run_fc(void)
{
    const int8_t *pos = (const int8_t *)in_words;
    int32_t out_len = 0;
    int32_t n, k;
    const int read = read_cases("fc_cases.bin");

    if (read <= 0) {
        return read < 0 ? 2 : 0; /* bad, or no cases */
    }
    n = take_i32(&pos);
    for (k = 0; k < n; ++k) {
        tg_fc_params_t p;
        int32_t has_bias, buf_words, size;

        p.rows = take_i32(&pos);
        p.in_features = take_i32(&pos);
        p.out_features = take_i32(&pos);
        p.input_zero_point = take_i32(&pos);
        p.output_zero_point = take_i32(&pos);
        p.act_min = take_i32(&pos);
        p.act_max = take_i32(&pos);
        has_bias = take_i32(&pos);
        buf_words = take_i32(&pos);
        {
            const int8_t *x = take(&pos, p.rows * p.in_features);
            p.weights = take(&pos, p.out_features * p.in_features);
            p.bias = has_bias ? (const int32_t *)(const void *)take(&pos, 4 * p.out_features)
                              : NULL;
            p.multiplier = (const int32_t *)(const void *)take(&pos, 4 * p.out_features);
            p.shift = take(&pos, p.out_features);
            size = p.rows * p.out_features;
            if (buf_words > BUF_WORDS || out_len + 2 * size > OUT_BYTES) {
                return 2;
            }
#if TG_FC_DSP
            if (!tg_fc_dsp_s8(x, out_bytes + out_len, &p, scratch, buf_words)) {
                return 3;
            }
#else
            return 4; /* built for a core without the DSP extension */
#endif
            tg_fully_connected_s8(x, out_bytes + out_len + size, &p);
            out_len += 2 * size;
        }
    }
    return write_out("fc_out.bin", out_len);
}

static int run_mm(void)
{
    const int8_t *pos = (const int8_t *)in_words;
    int32_t out_len = 0;
    int32_t count, c;
    const int read = read_cases("mm_cases.bin");

    if (read <= 0) {
        return read < 0 ? 2 : 0; /* bad, or no cases */
    }
    count = take_i32(&pos);
    for (c = 0; c < count; ++c) {
        int32_t v[13], i;

        for (i = 0; i < 13; ++i) {
            v[i] = take_i32(&pos);
        }
        {
            const int32_t m = v[0], k = v[1], n = v[2], adj_x = v[8], adj_y = v[9];
            const int32_t a_stride = v[10], b_stride = v[11], buf_words = v[12];
            const int8_t *const a = take(&pos, (adj_x ? k : m) * a_stride);
            const int8_t *const b = take(&pos, (adj_y ? n : k) * b_stride);

            if (buf_words > BUF_WORDS || out_len + m * n > OUT_BYTES) {
                return 2;
            }
#if TG_FC_DSP
            if (!tg_fc_dsp_matmul_s8(a, adj_x ? 1u : (size_t)a_stride,
                                     adj_x ? (size_t)a_stride : 1u, b,
                                     adj_y ? (size_t)b_stride : 1u,
                                     adj_y ? 1u : (size_t)b_stride, out_bytes + out_len,
                                     (size_t)n, m, k, n, v[3], v[4], v[5], v[6], v[7],
                                     scratch, buf_words)) {
                return 3;
            }
#else
            (void)a;
            (void)b;
            return 4; /* built for a core without the DSP extension */
#endif
            out_len += m * n;
        }
    }
    return write_out("mm_out.bin", out_len);
}

static int run_dw(void)
{
    const int8_t *pos = (const int8_t *)in_words;
    int32_t out_len = 0;
    int32_t count, c;
    const int read = read_cases("dw_cases.bin");

    if (read <= 0) {
        return read < 0 ? 2 : 0; /* bad, or no cases */
    }
    count = take_i32(&pos);
    for (c = 0; c < count; ++c) {
        tg_conv_params_t p;
        int32_t has_bias, size;
        const int8_t *x;

        memset(&p, 0, sizeof p);
        p.batches = take_i32(&pos);
        p.in_h = take_i32(&pos);
        p.in_c = p.out_c = take_i32(&pos);
        p.out_h = take_i32(&pos);
        p.kernel_h = take_i32(&pos);
        p.pad_h = take_i32(&pos);
        p.input_zero_point = take_i32(&pos);
        p.output_zero_point = take_i32(&pos);
        p.act_min = take_i32(&pos);
        p.act_max = take_i32(&pos);
        has_bias = take_i32(&pos);
        p.in_w = p.out_w = p.kernel_w = p.stride_h = p.stride_w = 1;
        x = take(&pos, p.batches * p.in_h * p.in_c);
        p.weights = take(&pos, p.kernel_h * p.in_c);
        p.bias = has_bias ? (const int32_t *)(const void *)take(&pos, 4 * p.in_c) : NULL;
        p.multiplier = (const int32_t *)(const void *)take(&pos, 4 * p.in_c);
        p.shift = take(&pos, p.in_c);
        size = p.batches * p.out_h * p.in_c;
        if (4 * BUF_WORDS < TG_DW_DSP_BYTES(p.out_h, p.kernel_h) ||
            out_len + size > OUT_BYTES) {
            return 2;
        }
#if TG_DW_DSP
        if (!tg_dw_dsp_takes(&p)) {
            return 3;
        }
        tg_dw_dsp_s8(x, out_bytes + out_len, &p, (int16_t *)(void *)scratch);
#else
        (void)x;
        return 4; /* built for a core without the DSP extension */
#endif
        out_len += size;
    }
    return write_out("dw_out.bin", out_len);
}

int main(void)
{
    int rc = run_fc();

    if (rc == 0) {
        rc = run_mm();
    }
    return rc != 0 ? rc : run_dw();
}
