/*
 * tg_layer_norm_s8: tinygen's integer LayerNorm over the last axis (TFLM has no such op;
 * docs/quantization.md derives it, tinygen/reference/layernorm.py is the contract).
 *
 * input   [in]  int8 (rows, depth), zero point p->input_zero_point.
 * output  [out] int8 (rows, depth); may equal input (in place: each row is read in full
 *               before it is written), otherwise must not overlap it.
 * p       [in]  tg_layer_norm_params_t:
 *   rows >= 0; depth (D) in [1, 1024].
 *   input_zero_point  in [-128, 127].
 *   eps_q             >= 1 and below 2^62: eps * D^3 / input_scale^2, rounded.
 *   multiplier, shift int32 (D): |gamma_i| * sqrt(D) / (output_scale * 2^24) as a TFLM
 *                     quantized multiplier; multiplier in [0, INT32_MAX], shift in [-31, 7]
 *                     (a larger shift wraps, exactly as the reference does).
 *   sign              int8 (D), +1 or -1: the sign of gamma_i.
 *   bias              int32 (D): round(beta_i / output_scale) + output_zero_point.
 *
 * Per row, with xi = x - zp_x:
 *   S = sum xi, c_i = D * xi - S, Q = sum c_i^2 + eps_q, r = floor(sqrt(Q)),
 *   t_i = sign(c_i) * floor((|c_i| * 2^24 + floor(r / 2)) / r),
 *   out_i = clamp(MBQM(sign_i * t_i, M_i, sh_i) + bias_i, -128, 127).
 * |c_i| < 2^19 and |t_i| <= 2^24 fit int32; Q and |c_i| * 2^24 need 64 bits.
 *
 * Cost: one pass sums x and x^2 (Q = D^2 sum xi^2 - D S^2, the same integer as
 * sum c_i^2); per row one square root and one 64-bit division for a reciprocal of r; per
 * element one 32x32->64 multiply by that reciprocal and at most two correction steps
 * give the exact quotient (no per-element division; 32-bit arithmetic when r < 2^24, i.e.
 * unless eps_q dominates), then the requantization (tg_requant_t, prepared once per
 * column and block of 8 rows).
 */
#include <stddef.h>

#include "../tg_kernels.h"
#include "../tg_math.h"

#define TG_LAYER_NORM_FRAC_BITS 24
#define TG_LAYER_NORM_BLOCK 8

/* floor(num / r) for 1 <= r < 2^31 and num < r * 2^25, given bits = the bit length L of r
 * and inv = floor((2^(L+31) - 1) / r), which lies in [2^31 - 1, 2^32).
 * With num = hi * 2^(L-1) + e (0 <= e < 2^(L-1) <= r) and inv = 2^(L+31)/r - delta
 * (0 < delta <= 1), hi * inv / 2^32 = (num - e)/r - hi * delta / 2^32 falls short of num/r
 * by less than 1 + 2^26/2^32, so the estimate is the quotient or one or two below it. */
static inline uint32_t tg_layer_norm_div(uint64_t num, uint32_t r, int32_t bits, uint32_t inv)
{
    const uint32_t hi = (uint32_t)(num >> (bits - 1)); /* < 2^26 */
    uint32_t q = (uint32_t)(((uint64_t)hi * inv) >> 32);
    uint64_t rem = num - (uint64_t)q * r; /* < 3r */

    while (rem >= r) {
        rem -= r;
        ++q;
    }
    return q;
}

/* One row's statistics: c_i = depth * x_i - offset; r = root, bits its bit length, inv
 * as tg_layer_norm_div wants it. short_root: r < 2^24, so that floor(num / 2^(bits - 1))
 * for num = |c| * 2^24 + floor(r / 2) is |c| * 2^(25 - bits) + floor(floor(r / 2) /
 * 2^(bits - 1)) exactly (2^24 is a multiple of 2^(bits - 1)) and every remainder below
 * 3r fits 32 bits: the quotient needs no 64-bit arithmetic. */
typedef struct {
    int32_t offset;
    uint32_t root, half_root, inv;
    int32_t bits;
    int32_t short_root;
    uint32_t half_high; /* floor(half_root / 2^(bits - 1)) */
} tg_layer_norm_row_t;

static void tg_layer_norm_row(const int8_t *in_row, const tg_layer_norm_params_t *p,
                              tg_layer_norm_row_t *st)
{
    const int32_t depth = p->depth;
    const int32_t zero_point = p->input_zero_point;
    int32_t sum_x = 0, sum_xx = 0; /* |x| <= 128, D <= 1024: both fit */
    int32_t sum, i;
    int64_t sum_sq_xi;
    uint64_t sum_sq;

    for (i = 0; i < depth; ++i) {
        const int32_t x = in_row[i];
        sum_x += x;
        sum_xx += x * x;
    }
    /* S = sum xi; sum xi^2 = sum x^2 - 2 zp sum x + D zp^2 (< 2^26) */
    sum = sum_x - depth * zero_point;
    sum_sq_xi = (int64_t)sum_xx - 2 * (int64_t)zero_point * sum_x +
                (int64_t)depth * zero_point * zero_point;
    /* sum_i (D xi - S)^2 = D^2 sum xi^2 - 2 D S sum xi + D S^2 = D^2 sum xi^2 - D S^2 */
    sum_sq = (uint64_t)((int64_t)depth * depth * sum_sq_xi -
                        (int64_t)depth * sum * sum) + (uint64_t)p->eps_q;
    st->root = (uint32_t)tg_isqrt_u64(sum_sq); /* in [1, 2^31) since 1 <= eps_q < 2^62 */
    st->half_root = st->root >> 1;
    st->bits = 32 - tg_clz_u32(st->root);
    st->inv = (uint32_t)((((uint64_t)1 << (st->bits + 31)) - 1u) / st->root);
    st->short_root = st->bits <= 24;
    st->half_high = st->half_root >> (st->bits - 1);
    /* c_i = D * xi - S = D * x - (D * zp + S) */
    st->offset = depth * zero_point + sum;
}

/* floor((|c| * 2^24 + floor(r / 2)) / r) for |c| <= r: at most 2^24. */
static inline int32_t tg_layer_norm_t(int32_t c, const tg_layer_norm_row_t *st)
{
    const uint32_t magnitude = (uint32_t)(c < 0 ? -c : c); /* <= root */
    uint32_t q;

    if (st->short_root) {
        const uint32_t num_low = (magnitude << TG_LAYER_NORM_FRAC_BITS) + st->half_root;
        const uint32_t hi = (magnitude << (25 - st->bits)) + st->half_high;
        uint32_t rem;

        q = (uint32_t)(((uint64_t)hi * st->inv) >> 32);
        rem = num_low - q * st->root; /* the remainder, below 3r < 2^26: exact mod 2^32 */
        while (rem >= st->root) {
            rem -= st->root;
            ++q;
        }
    } else {
        q = tg_layer_norm_div(((uint64_t)magnitude << TG_LAYER_NORM_FRAC_BITS) +
                                  st->half_root, st->root, st->bits, st->inv);
    }
    return (int32_t)q;
}

/* clamp(m + bias, -128, 127), the sum taken exactly (a saturating add on DSP cores). */
static inline int8_t tg_layer_norm_out(int32_t m, int32_t bias)
{
#if TG_ACLE_DSP
    return (int8_t)__ssat(__qadd(m, bias), 8);
#else
    const int64_t y = (int64_t)m + bias;
    return (int8_t)(y < INT8_MIN ? INT8_MIN : (y > INT8_MAX ? INT8_MAX : y));
#endif
}

void tg_layer_norm_s8(const int8_t *input, int8_t *output, const tg_layer_norm_params_t *p)
{
    const int32_t depth = p->depth;
    int32_t r0, i, b;

    /* Blocks of TG_LAYER_NORM_BLOCK rows: their statistics first, then column by column,
     * so that each column's constants (requantization, sign, bias) are prepared once per
     * block. Each element is read just before it is written: in place is fine. */
    for (r0 = 0; r0 < p->rows; r0 += TG_LAYER_NORM_BLOCK) {
        const int32_t n = tg_min_s32(TG_LAYER_NORM_BLOCK, p->rows - r0);
        const int8_t *const in_block = input + (size_t)r0 * (size_t)depth;
        int8_t *const out_block = output + (size_t)r0 * (size_t)depth;
        tg_layer_norm_row_t st[TG_LAYER_NORM_BLOCK];

        for (b = 0; b < n; ++b) {
            tg_layer_norm_row(in_block + (size_t)b * (size_t)depth, p, &st[b]);
        }
        for (i = 0; i < depth; ++i) {
            const tg_requant_t q = tg_requant_prepare(p->multiplier[i], p->shift[i]);
            const int32_t bias = p->bias[i];
            const int32_t flip = p->sign[i] < 0 ? -1 : 0;

            for (b = 0; b < n; ++b) {
                const size_t at = (size_t)b * (size_t)depth + (size_t)i;
                const int32_t c = depth * (int32_t)in_block[at] - st[b].offset;
                /* sign_i * sign(c) * quotient: negate (x ^ -1) + 1 when exactly one is < 0 */
                const int32_t neg = tg_asr_s32(c, 31) ^ flip;
                const int32_t t = (tg_layer_norm_t(c, &st[b]) ^ neg) - neg;
                out_block[at] = tg_layer_norm_out(tg_requant_scale(t, &q), bias);
            }
        }
    }
}
