/*
 * Bare-metal check, run under qemu-m55 by tests/test_nn_backends.py: the cmsis-nn
 * backend's Helium LayerNorm (firmware/tinygen/cmsis_nn/tg_layer_norm_s8.c) against the
 * portable kernel it compiles in as tg_layer_norm_s8_portable (which
 * tests/test_c_kernels.py checks against the golden reference), on pseudo-random rows:
 * depths 1..67 (every tail length after the 4-lane steps), zero points over the int8
 * range, inputs from flat to full-range, multipliers and shifts over the contract's range
 * ([-31, 7]), both gamma signs, biases beyond the clamp, and eps_q from 1 to just below
 * 2^62, so that some rows' roots pass 2^30 (the Helium code hands those rows to the
 * portable kernel) and some sums of squares pass 2^32 (the 64-bit root). In place too.
 * Exit status 0 when every output byte agrees; semihosting prints the counts.
 */
#include <stdint.h>
#include <string.h>

#include "tg_kernels.h"
#include "tg_semihost.h"

void tg_layer_norm_s8_portable(const int8_t *input, int8_t *output,
                               const tg_layer_norm_params_t *p);

#define MAX_ROWS 3
#define MAX_DEPTH 67
#define CASES 400

static uint32_t state = 12345u;

static uint32_t next(void)
{
    state = state * 1664525u + 1013904223u;
    return state >> 8;
}

static int32_t range(int32_t lo, int32_t hi) /* [lo, hi] */
{
    return lo + (int32_t)(next() % (uint32_t)(hi - lo + 1));
}

static void put_count(const char *label, int32_t n)
{
    char text[16];
    int32_t k = 15;

    text[k] = '\0';
    do {
        text[--k] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0 && k > 0);
    tg_sh_write0(label);
    tg_sh_write0(text + k);
    tg_sh_write0("\n");
}

int main(void)
{
    static int8_t input[MAX_ROWS * MAX_DEPTH], want[MAX_ROWS * MAX_DEPTH],
        got[MAX_ROWS * MAX_DEPTH];
    static int32_t multiplier[MAX_DEPTH], shift[MAX_DEPTH], bias[MAX_DEPTH];
    static int8_t sign[MAX_DEPTH];
    int32_t c, i, bad = 0, huge_eps = 0;

    for (c = 0; c < CASES; ++c) {
        tg_layer_norm_params_t p;
        const int32_t depth = 1 + c % MAX_DEPTH;
        const int32_t rows = 1 + c % MAX_ROWS;
        const int32_t spread = range(0, 255);
        const int32_t centre = range(-128, 127);
        const int32_t n = rows * depth;

        p.rows = rows;
        p.depth = depth;
        p.input_zero_point = range(-128, 127);
        switch (c % 4) {
        case 0: p.eps_q = 1; break;
        case 1: p.eps_q = range(1, 1 << 20); break;
        case 2: p.eps_q = ((int64_t)range(1, 1 << 30) << 24) + range(0, 1 << 20); break;
        default: /* roots from 2^30 to 2^31 */
            p.eps_q = ((int64_t)range(1 << 28, (1 << 30) - 1) << 32) | next();
            ++huge_eps;
            break;
        }
        for (i = 0; i < n; ++i) {
            int32_t x = centre + range(-spread / 2, spread / 2);
            input[i] = (int8_t)(x < -128 ? -128 : (x > 127 ? 127 : x));
        }
        for (i = 0; i < depth; ++i) {
            multiplier[i] = (int32_t)((uint32_t)range(1 << 22, (1 << 23) - 1) << 8) |
                            range(0, 255);
            shift[i] = range(-31, 7);
            sign[i] = (int8_t)(next() & 1u ? 1 : -1);
            bias[i] = range(-300, 300);
        }
        p.multiplier = multiplier;
        p.shift = shift;
        p.sign = sign;
        p.bias = bias;
        tg_layer_norm_s8_portable(input, want, &p);
        tg_layer_norm_s8(input, got, &p);
        if (memcmp(want, got, (size_t)n) != 0) {
            ++bad;
        }
        tg_layer_norm_s8(input, input, &p); /* in place */
        if (memcmp(want, input, (size_t)n) != 0) {
            ++bad;
        }
    }
    put_count("cases ", CASES);
    put_count("huge_eps ", huge_eps);
    put_count("bad ", bad);
    return bad == 0 ? 0 : 1;
}
