/*
 * tg_layer_norm_s8 (cmsis-nn backend): tinygen's integer LayerNorm with Helium (MVE) on
 * the Cortex-M55; CMSIS-NN has no LayerNorm. Same contract and result, bit for bit, as
 * ../portable/tg_layer_norm_s8.c (tinygen/reference/layernorm.py is the contract;
 * docs/quantization.md derives it), which this file compiles in under the name
 * tg_layer_norm_s8_portable: cores without MVE run it unchanged, and the M55 runs it for
 * a row whose root is 2^30 or more (see below).
 *
 * input   [in]  int8 (rows, depth), zero point p->input_zero_point.
 * output  [out] int8 (rows, depth); may equal input (each row's statistics are taken
 *               before it is written, and each group of 4 is read before it is written),
 *               otherwise must not overlap it.
 * p       [in]  tg_layer_norm_params_t (ranges as the portable kernel's).
 *
 * Per row, with xi = x - zp_x (as the portable kernel):
 *   S = sum xi, c_i = D * xi - S, Q = sum c_i^2 + eps_q, r = floor(sqrt(Q)),
 *   t_i = sign(c_i) * floor((|c_i| * 2^24 + floor(r / 2)) / r),
 *   out_i = clamp(MBQM(sign_i * t_i, M_i, sh_i) + bias_i, -128, 127).
 * MVE path, per row: sum x and sum x^2 by VADDVA / VMLADAVA over 16 bytes; Q as in the
 * portable kernel; r by the digit-by-digit root in 32-bit registers when Q < 2^32;
 * L = bit length of r and inv = floor((2^(L+31) - 1) / r) as in the portable kernel.
 * Then 4 elements per step in int32 lanes, without predication (a tail of 1..3 runs
 * through zero-padded copies):
 *   num = |c| * 2^24 + floor(r / 2) as two 32-bit halves (the carry out of the low half
 *   is bit 31 of VHADD), hi = floor(num / 2^(L-1)) < 2^26 from both halves (VSHL by
 *   register), q = (hi * inv) >> 32 (VMULH.U32), rem = num - q * r in [0, 3r): with
 *   r < 2^30 it fits 32 bits, so it is computed modulo 2^32, and two steps q += 1,
 *   rem -= r where rem >= r (read from the sign bit of rem - r) give the exact quotient
 *   (the portable kernel's argument);
 *   the sign: negate where (c XOR sign_i) < 0; MBQM by arm_requantize_mve_32x4 (TFLM's
 *   double rounding; left shifts wrap as the reference's do); + bias saturating; the
 *   clamp to [-128, 127] by a saturating shift up by 24 and back (both give what the
 *   portable 64-bit sum and clamp give); VSTRB.32.
 * Cost on the M55: about 15 instructions per element plus about 400 per row
 * (bench/bench_qemu.py, mcu-tiny: depth 96).
 */
#include <stddef.h>

#include "arm_nnfunctions.h"
#include "arm_nnsupportfunctions.h"
#include "tg_cmsis_nn_isa.h"

#include "../tg_kernels.h"
#include "../tg_math.h"

void tg_layer_norm_s8_portable(const int8_t *input, int8_t *output,
                               const tg_layer_norm_params_t *p);

#define tg_layer_norm_s8 tg_layer_norm_s8_portable
#include "../portable/tg_layer_norm_s8.c"
#undef tg_layer_norm_s8

#if defined(ARM_MATH_MVEI)

#define TG_LN_ROOT_LIMIT ((uint32_t)1 << 30) /* rem = num - q r < 3r fits 32 bits below it */

/* floor(sqrt(v)): the digit-by-digit root tg_isqrt_u64 takes, in 32-bit registers
 * when v fits them (about 4 times fewer instructions on a 32-bit core). */
static uint32_t tg_ln_isqrt(uint64_t v)
{
    uint32_t x, root = 0u, bit = (uint32_t)1 << 30;

    if (v >> 32 != 0u) {
        return (uint32_t)tg_isqrt_u64(v);
    }
    x = (uint32_t)v;
    while (bit > x) {
        bit >>= 2;
    }
    while (bit != 0u) {
        if (x >= root + bit) {
            x -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    return root;
}

/* A row's constants for the per-element steps. */
typedef struct {
    int32_t depth, offset;
    uint32_t half_root, root, inv;
    int32_t down, up; /* -(L - 1) and 33 - L: the shifts that take num / 2^(L-1) */
} tg_ln_row_t;

/* Four elements, without predication (GCC keeps several live predicates poorly): the
 * comparisons are sign bits of differences, valid because every difference involved lies
 * below 2^31 in magnitude (|c| < 2^19 * 2, rem < 3r < 2^32 with r < 2^30). */
static inline void tg_layer_norm_4_mve(const tg_ln_row_t *row, const int8_t *x,
                                       const int8_t *sign, const int32_t *multiplier,
                                       const int32_t *shift, const int32_t *bias,
                                       int8_t *out)
{
    const int32x4_t c = vsubq_n_s32(vmulq_n_s32(vldrbq_s32(x), row->depth), row->offset);
    const uint32x4_t mag = vreinterpretq_u32_s32(vabsq_s32(c));
    const uint32x4_t shifted = vshlq_n_u32(mag, 24);
    /* num = hi_half * 2^32 + lo; the carry out of the low half is bit 31 of the halving
     * sum (mag << 24 + floor(r / 2)) / 2 */
    const uint32x4_t lo = vaddq_n_u32(shifted, row->half_root);
    const uint32x4_t carry = vshrq_n_u32(vhaddq_n_u32(shifted, row->half_root), 31);
    const uint32x4_t hi_half = vaddq_u32(vshrq_n_u32(mag, 8), carry);
    const uint32x4_t hi = vorrq_u32(vshlq_r_u32(hi_half, row->up), vshlq_r_u32(lo, row->down));
    uint32x4_t q = vmulhq_u32(hi, vdupq_n_u32(row->inv));
    /* rem = num - q r in [0, 3r): d = rem - r is below 2^31 when rem >= r and wraps to
     * 2^32 - r or more when not, so its sign bit says rem < r */
    const uint32x4_t d = vsubq_n_u32(vsubq_u32(lo, vmulq_n_u32(q, row->root)), row->root);
    const int32x4_t below = vshrq_n_s32(vreinterpretq_s32_u32(d), 31); /* -1: rem < r */
    const uint32x4_t rem = vsubq_u32(d, vreinterpretq_u32_s32(
                                            vmulq_n_s32(below, (int32_t)row->root)));
    const int32x4_t below2 =
        vshrq_n_s32(vreinterpretq_s32_u32(vsubq_n_u32(rem, row->root)), 31);
    int32x4_t t, flip, y;

    q = vaddq_u32(q, vreinterpretq_u32_s32(vaddq_n_s32(below, 1)));
    q = vaddq_u32(q, vreinterpretq_u32_s32(vaddq_n_s32(below2, 1)));
    /* sign(c) * sign_i: negate where they differ (sign_i is +1 or -1) */
    flip = vshrq_n_s32(veorq_s32(c, vldrbq_s32(sign)), 31);
    t = vsubq_s32(veorq_s32(vreinterpretq_s32_u32(q), flip), flip);
    y = arm_requantize_mve_32x4(t, vldrwq_s32(multiplier), vldrwq_s32(shift));
    y = vqaddq_s32(y, vldrwq_s32(bias));
    /* clamp to [-128, 127]: a saturating shift up by 24 and back */
    vstrbq_s32(out, vshrq_n_s32(vqshlq_n_s32(y, 24), 24));
}

/* One row on Helium; 0 when the row's root is too large for the 32-bit remainder (the
 * caller then runs the portable kernel on it; nothing was written). */
static int32_t tg_layer_norm_row_mve(const int8_t *in_row, int8_t *out_row,
                                     const tg_layer_norm_params_t *p)
{
    const int32_t depth = p->depth;
    const int32_t zero_point = p->input_zero_point;
    int32_t sum_x = 0, sum_xx = 0;
    int32_t sum, offset, bits, i;
    int64_t sum_sq_xi;
    uint64_t sum_sq;
    uint32_t root, half_root, inv;

    for (i = 0; i < depth; i += 16) {
        const mve_pred16_t pred = vctp8q((uint32_t)(depth - i));
        const int8x16_t x = vldrbq_z_s8(in_row + i, pred);
        sum_x = vaddvaq_s8(sum_x, x);
        sum_xx = vmladavaq_s8(sum_xx, x, x);
    }
    sum = sum_x - depth * zero_point;
    sum_sq_xi = (int64_t)sum_xx - 2 * (int64_t)zero_point * sum_x +
                (int64_t)depth * zero_point * zero_point;
    sum_sq = (uint64_t)((int64_t)depth * depth * sum_sq_xi - (int64_t)depth * sum * sum) +
             (uint64_t)p->eps_q;
    root = tg_ln_isqrt(sum_sq);
    if (root >= TG_LN_ROOT_LIMIT) {
        return 0;
    }
    half_root = root >> 1;
    bits = 32 - tg_clz_u32(root);
    inv = (uint32_t)((((uint64_t)1 << (bits + 31)) - 1u) / root);
    offset = depth * zero_point + sum;

    {
        const tg_ln_row_t row = {depth, offset, half_root, root, inv, -(bits - 1),
                                 32 - (bits - 1)};
        const int32_t whole = depth & ~3;
        const int8_t *const sign = p->sign;
        const int32_t *const multiplier = p->multiplier;
        const int32_t *const shift = p->shift;
        const int32_t *const bias = p->bias;

        for (i = 0; i < whole; i += 4) {
            tg_layer_norm_4_mve(&row, in_row + i, sign + i, multiplier + i, shift + i,
                                bias + i, out_row + i);
        }
        if (i < depth) { /* 1..3 left: through zero-padded copies */
            const int32_t left = depth - i;
            int8_t x[4] = {0, 0, 0, 0}, sg[4] = {1, 1, 1, 1}, y[4];
            int32_t m[4] = {0, 0, 0, 0}, sh[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0};
            int32_t j;

            for (j = 0; j < left; ++j) {
                x[j] = in_row[i + j];
                sg[j] = p->sign[i + j];
                m[j] = p->multiplier[i + j];
                sh[j] = p->shift[i + j];
                b[j] = p->bias[i + j];
            }
            tg_layer_norm_4_mve(&row, x, sg, m, sh, b, y);
            for (j = 0; j < left; ++j) {
                out_row[i + j] = y[j];
            }
        }
    }
    return 1;
}

void tg_layer_norm_s8(const int8_t *input, int8_t *output, const tg_layer_norm_params_t *p)
{
    tg_layer_norm_params_t one = *p;
    int32_t r;

    one.rows = 1;
    for (r = 0; r < p->rows; ++r) {
        const int8_t *in_row = input + (size_t)r * (size_t)p->depth;
        int8_t *out_row = output + (size_t)r * (size_t)p->depth;
        if (!tg_layer_norm_row_mve(in_row, out_row, p)) {
            tg_layer_norm_s8_portable(in_row, out_row, &one);
        }
    }
}

#else /* no MVE: the portable kernel */

void tg_layer_norm_s8(const int8_t *input, int8_t *output, const tg_layer_norm_params_t *p)
{
    tg_layer_norm_s8_portable(input, output, p);
}

#endif /* ARM_MATH_MVEI */
