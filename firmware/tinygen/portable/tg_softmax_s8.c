/*
 * tg_softmax_s8: int8 softmax over the last axis, int8 output with scale 1/256 and zero
 * point -128. Bit-exact with TFLM reference_ops::Softmax for int8 in and out: differences
 * to the row maximum are rescaled to Q5.26, exponentiated with gemmlowp's fixed-point
 * exp_on_negative_values, summed in Q12.19 and normalised by a fixed-point reciprocal.
 *
 * input   [in]  int8 (rows, depth). Its zero point does not matter (only differences do).
 * output  [out] int8 (rows, depth); must not overlap input.
 * p       [in]  tg_softmax_params_t:
 *   rows >= 0; depth in [1, 512] (TFLM's int8 softmax needs the sum of exps, at most
 *                     depth * 2^19 in Q12.19, below 2^28).
 *   input_multiplier  in [2^30, INT32_MAX]; input_left_shift in [0, 31]: the rescale of
 *                     beta * input_scale to Q5.26 (TFLM PreprocessSoftmaxScaling).
 *   diff_min          <= 0: differences below it give an output of -128.
 *
 * A difference to the row maximum is one of 256 values (0 down to -255), so the kernel
 * first tabulates exp for the differences the input can hold (one pass for its minimum
 * and maximum; a 1 KiB table on the stack), then each row costs a pass for its maximum,
 * one for the sum and one for the outputs, with no exp per element.
 */
#include <stddef.h>

#include "../tg_kernels.h"
#include "../tg_math.h"

enum {
    TG_SOFTMAX_DIFF_INTEGER_BITS = 5,   /* rescaled differences: Q5.26 */
    TG_SOFTMAX_ACCUM_INTEGER_BITS = 12  /* sum of exps: Q12.19 */
};

/* exp(beta * scale * diff) in Q0.31 for one difference diff <= 0. */
static int32_t tg_softmax_exp(int32_t diff, const tg_softmax_params_t *p)
{
    const int32_t rescaled = tg_sat_rounding_doubling_high_mul(
        tg_shl_wrap_s32(diff, p->input_left_shift), p->input_multiplier);
    return tg_exp_on_negative_values(rescaled, TG_SOFTMAX_DIFF_INTEGER_BITS);
}

void tg_softmax_s8(const int8_t *input, int8_t *output, const tg_softmax_params_t *p)
{
    const int32_t depth = p->depth;
    const int32_t diff_min = p->diff_min;
    const size_t size = (size_t)p->rows * (size_t)depth;
    int32_t exp_of[256]; /* exp_of[-diff] for diff in [lowest, 0] */
    int32_t in_min = INT8_MAX, in_max = INT8_MIN, lowest;
    int32_t r, c;
    size_t e;

    for (e = 0; e < size; ++e) {
        in_min = tg_min_s32(in_min, input[e]);
        in_max = tg_max_s32(in_max, input[e]);
    }
    /* differences that occur and are not cut off: [max(in_min - in_max, diff_min), 0] */
    lowest = tg_max_s32(in_min - in_max, diff_min);
    for (c = 0; c >= lowest; --c) {
        exp_of[-c] = tg_softmax_exp(c, p);
    }

    for (r = 0; r < p->rows; ++r) {
        const int8_t *in_row = input + (size_t)r * (size_t)depth;
        int8_t *out_row = output + (size_t)r * (size_t)depth;
        int32_t max_in_row = INT8_MIN;
        int32_t sum_of_exps = 0;
        int32_t headroom_plus_one, exponent, shifted_scale;

        for (c = 0; c < depth; ++c) {
            max_in_row = tg_max_s32(max_in_row, in_row[c]);
        }
        for (c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)in_row[c] - max_in_row;
            if (diff >= diff_min) {
                sum_of_exps = tg_add_wrap_s32(
                    sum_of_exps,
                    tg_rounding_divide_by_pot(exp_of[-diff], TG_SOFTMAX_ACCUM_INTEGER_BITS));
            }
        }
        /* TFLM GetReciprocal: the row maximum contributes exp(0), so sum_of_exps >= 2^19
         * and headroom_plus_one <= 12. 1 / sum = shifted_scale * 2^-num_bits_over_unit. */
        headroom_plus_one = tg_clz_u32((uint32_t)sum_of_exps);
        shifted_scale = tg_one_over_one_plus_x_for_x_in_0_1(tg_s32_from_u32(
            ((uint32_t)sum_of_exps << headroom_plus_one) - 0x80000000u));
        /* num_bits_over_unit + 31 - 8 */
        exponent = (TG_SOFTMAX_ACCUM_INTEGER_BITS - headroom_plus_one) + 31 - 8;

        for (c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)in_row[c] - max_in_row;
            int32_t out = INT8_MIN;
            if (diff >= diff_min) {
                const int32_t unsat = tg_rounding_divide_by_pot(
                    tg_sat_rounding_doubling_high_mul(shifted_scale, exp_of[-diff]), exponent);
                out = tg_clamp_s32(unsat + INT8_MIN, INT8_MIN, INT8_MAX);
            }
            out_row[c] = (int8_t)out;
        }
    }
}
