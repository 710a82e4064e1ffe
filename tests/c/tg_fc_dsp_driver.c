/*
 * Test driver for the DSP fully connected kernel on a QEMU Cortex-M (test code, not
 * firmware). tests/test_fc_dsp.py builds it for qemu-m4 / qemu-m7 with the board support
 * of firmware/boards/qemu/ and runs it with semihosting.
 *
 * Reads the host file "fc_cases.bin" and writes "fc_out.bin": per case, the output of
 * tg_fc_dsp_s8 with the case's scratch size, then the output of tg_fully_connected_s8
 * (the portable kernel as this core builds it). All numbers little-endian; one case:
 *   int32 rows, in_features, out_features, zp_in, zp_out, act_min, act_max, has_bias,
 *         buf_words
 *   input   rows * in_features bytes, weights out_features * in_features bytes,
 *   bias    out_features int32 (when has_bias), multiplier out_features int32,
 *   shift   out_features bytes; each part padded to a multiple of 4 bytes.
 * The stream starts with the int32 number of cases. Exit status 0, or 2 on a bad stream.
 */
#include <stdint.h>
#include <string.h>

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

int main(void)
{
    const int8_t *pos = (const int8_t *)in_words;
    int32_t out_len = 0;
    int32_t n, k;
    long got;
    int h = tg_sh_open("fc_cases.bin", "rb");

    if (h < 0) {
        return 2;
    }
    got = tg_sh_read(h, in_words, IN_BYTES);
    tg_sh_close(h);
    if (got <= 0 || got >= IN_BYTES) {
        return 2;
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
    h = tg_sh_open("fc_out.bin", "wb");
    if (h < 0 || tg_sh_write(h, out_bytes, out_len) != out_len) {
        return 2;
    }
    tg_sh_close(h);
    return 0;
}
