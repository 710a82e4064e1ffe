/*
 * tg_log_softmax_s8: int8 log-softmax over the last axis, int8 output with scale 16/256
 * and zero point 127 (log-probabilities in [-255/16, 0]). Bit-exact with TFLM
 * reference_ops::LogSoftmaxQuantized for int8: differences to the row maximum are
 * rescaled to Q5.26, exponentiated with gemmlowp's exp_on_negative_values, summed in
 * Q12.19, and the sum's log (TFLM log_x_for_x_greater_than_or_equal_to_1, Q5.26) is
 * subtracted from each rescaled difference.
 *
 * input   [in]  int8 (rows, depth). Its zero point does not matter (only differences do).
 * output  [out] int8 (rows, depth); must not overlap input.
 * p       [in]  tg_log_softmax_params_t:
 *   rows >= 0; depth in [1, 2048] (the Q12.19 sum of exps, at most depth * 2^19, stays
 *                     below 2^31).
 *   input_multiplier  in [2^30, INT32_MAX], input_left_shift in [0, 31]: input_scale
 *                     rescaled to Q5.26 (TFLM PreprocessLogSoftmaxScalingExp).
 *   reverse_scaling_divisor in [0, INT32_MAX], reverse_scaling_right_shift in [0, 31]:
 *                     the inverse rescale, for the cut-off below.
 *   diff_min          <= 0 (-CalculateInputRadius(5, input_left_shift)).
 *
 * out = clamp(RDPOT(d_q5 - log(sum exp)_q5, 22) + 127) where d > adjusted_diff_min,
 * else -128. Cost per row: 2 * depth exps' worth of fixed-point work plus one log.
 */
#include <stddef.h>

#include "../tg_kernels.h"
#include "../tg_math.h"

enum {
    TG_LOG_SOFTMAX_IN_BITS = 5,      /* rescaled differences: Q5.26 */
    TG_LOG_SOFTMAX_ACCUM_BITS = 12,  /* sum of exps: Q12.19 */
    TG_LOG_SOFTMAX_OUT_BITS = 4,     /* output Q4 before the int8 downcast */
    TG_LOG_X_ACCUM_BITS = TG_LOG_SOFTMAX_IN_BITS + 1  /* log's accumulator, Q6.25 */
};

/* TFLM SaturatingRoundingMultiplyByPOTParam for an exponent in [0, 30]. */
static int32_t tg_sat_pot(int32_t x, int32_t exponent)
{
    return exponent == 0 ? x : tg_sat_mul_by_pot(x, exponent);
}

static int32_t tg_sat_add_s32(int32_t a, int32_t b)
{
    const int64_t s = (int64_t)a + (int64_t)b;
    return (int32_t)(s > INT32_MAX ? INT32_MAX : (s < INT32_MIN ? INT32_MIN : s));
}

/* gemmlowp RoundingHalfSum. */
static int32_t tg_rounding_half_sum(int32_t a, int32_t b)
{
    const int64_t s = (int64_t)a + (int64_t)b;
    return (int32_t)((s + (s >= 0 ? 1 : -1)) / 2);
}

/* TFLM log_x_for_x_greater_than_or_equal_to_1_impl<5, 12>: x in Q12.19 (x >= 1),
 * log(x) in Q5.26. */
static int32_t tg_log_q12_to_q5(int32_t x)
{
    const int32_t log_2 = 1488522236, sqrt_sqrt_half = 1805811301, sqrt_half = 1518500250;
    const int32_t alpha_n = 117049297, alpha_d = 127690142, alpha_i = 1057819769;
    const int32_t alpha_f = 638450708;
    const int32_t shifted_quarter = tg_rounding_divide_by_pot(536870912, TG_LOG_X_ACCUM_BITS);
    const int32_t z_a_headroom_plus_1 = tg_clz_u32((uint32_t)x);
    const int32_t r_a_tmp = tg_sat_pot(x, z_a_headroom_plus_1 - 1);
    const int32_t r_a_raw = tg_sat_pot(tg_sat_rounding_doubling_high_mul(r_a_tmp, sqrt_half), 1);
    const int32_t z_a_pow_2_adj = tg_sat_add_s32(
        tg_sat_pot(TG_LOG_SOFTMAX_ACCUM_BITS - z_a_headroom_plus_1, 31 - TG_LOG_X_ACCUM_BITS),
        shifted_quarter);
    const int32_t z_b = tg_sat_rounding_doubling_high_mul(x, sqrt_half);
    const int32_t z_b_headroom = tg_clz_u32((uint32_t)z_b) - 1;
    const int32_t r_b_raw = tg_sat_pot(x, z_b_headroom);
    const int32_t z_b_pow_2_adj = tg_sat_add_s32(
        tg_sat_pot(TG_LOG_SOFTMAX_ACCUM_BITS - z_b_headroom, 31 - TG_LOG_X_ACCUM_BITS),
        -shifted_quarter);
    const int32_t r = tg_min_s32(r_a_raw, r_b_raw);
    const int32_t z_pow_2_adj = tg_max_s32(z_a_pow_2_adj, z_b_pow_2_adj);
    const int32_t p = tg_rounding_half_sum(r, sqrt_sqrt_half);
    int32_t q = tg_sub_wrap_s32(r, sqrt_sqrt_half);
    int32_t common_sq, num, denom_minus_one, recip_denom, total;

    q = tg_add_wrap_s32(q, q);
    common_sq = tg_sat_rounding_doubling_high_mul(q, q);
    num = tg_add_wrap_s32(tg_sat_rounding_doubling_high_mul(q, r),
                          tg_sat_rounding_doubling_high_mul(
                              tg_sat_rounding_doubling_high_mul(q, common_sq), alpha_n));
    denom_minus_one = tg_add_wrap_s32(
        tg_sat_rounding_doubling_high_mul(
            p, tg_add_wrap_s32(tg_add_wrap_s32(alpha_i, q),
                               tg_sat_rounding_doubling_high_mul(alpha_d, common_sq))),
        tg_sat_rounding_doubling_high_mul(alpha_f, q));
    recip_denom = tg_one_over_one_plus_x_for_x_in_0_1(denom_minus_one);
    total = tg_add_wrap_s32(
        tg_sat_rounding_doubling_high_mul(z_pow_2_adj, log_2),
        tg_sat_rounding_doubling_high_mul(
            tg_rounding_divide_by_pot(num, TG_LOG_X_ACCUM_BITS), recip_denom));
    return tg_sat_pot(total, TG_LOG_X_ACCUM_BITS - TG_LOG_SOFTMAX_IN_BITS);
}

void tg_log_softmax_s8(const int8_t *input, int8_t *output, const tg_log_softmax_params_t *p)
{
    const int32_t depth = p->depth;
    int32_t r, c;

    for (r = 0; r < p->rows; ++r) {
        const int8_t *in_row = input + (size_t)r * (size_t)depth;
        int8_t *out_row = output + (size_t)r * (size_t)depth;
        int32_t max_in_row = INT8_MIN;
        int32_t sum_of_exps = 0;
        int32_t log_sum, adjusted_diff_min;

        for (c = 0; c < depth; ++c) {
            max_in_row = tg_max_s32(max_in_row, in_row[c]);
        }
        for (c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)in_row[c] - max_in_row;
            if (diff >= p->diff_min) {
                const int32_t d_q5 = tg_multiply_by_quantized_multiplier(
                    diff, p->input_multiplier, p->input_left_shift);
                sum_of_exps = tg_add_wrap_s32(
                    sum_of_exps,
                    tg_rounding_divide_by_pot(
                        tg_exp_on_negative_values(d_q5, TG_LOG_SOFTMAX_IN_BITS),
                        TG_LOG_SOFTMAX_ACCUM_BITS));
            }
        }
        log_sum = tg_log_q12_to_q5(sum_of_exps);
        adjusted_diff_min = tg_max_s32(
            p->diff_min - 1,
            tg_multiply_by_quantized_multiplier(tg_add_wrap_s32(log_sum, INT32_MIN),
                                                p->reverse_scaling_divisor,
                                                -p->reverse_scaling_right_shift));
        for (c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)in_row[c] - max_in_row;
            int32_t out = INT8_MIN;
            if (diff > adjusted_diff_min) {
                const int32_t d_q5 = tg_multiply_by_quantized_multiplier(
                    diff, p->input_multiplier, p->input_left_shift);
                out = tg_rounding_divide_by_pot(
                          tg_sub_wrap_s32(d_q5, log_sum),
                          31 - TG_LOG_SOFTMAX_IN_BITS - TG_LOG_SOFTMAX_OUT_BITS) + INT8_MAX;
                out = tg_clamp_s32(out, INT8_MIN, INT8_MAX);
            }
            out_row[c] = (int8_t)out;
        }
    }
}
