/*
 * tg_add_s8: int8 elementwise addition of two same-shape tensors.
 * Bit-exact with TFLM reference_integer_ops::Add (the non-broadcast path).
 *
 * input1  [in]  int8 (size), zero point p->input1_zero_point.
 * input2  [in]  int8 (size), zero point p->input2_zero_point.
 * output  [out] int8 (size); may be input1 or input2 (each element is read before it is
 *               written), otherwise must not overlap them.
 * p       [in]  tg_add_params_t:
 *   size >= 0.
 *   left_shift        in [0, 22] (TFLM uses 20): headroom before the input rescale.
 *   input1/2_multiplier, output_multiplier in [0, INT32_MAX]; their shifts in [-31, 0]
 *                     (TFLM's multipliers here are all below one).
 *   zero points in [-128, 127]; act_min <= act_max in [-128, 127].
 *
 * out[i] = clamp(MBQM(MBQM((a[i] - zp1) << ls, m1, s1) + MBQM((b[i] - zp2) << ls, m2, s2),
 *                     m_out, s_out) + zp_out, act_min, act_max)
 */
#include "tg_elementwise.h"

#define TG_ADD_TABLE_MIN 1024

void tg_add_s8(const int8_t *input1, const int8_t *input2, int8_t *output,
               const tg_add_params_t *p)
{
    /* a local copy: output stores cannot change it, so its fields stay in registers */
    const tg_add_params_t q = *p;
    int32_t i;

    if (q.size >= TG_ADD_TABLE_MIN) {
        const int32_t left_multiplier = (int32_t)1 << p->left_shift;
        int32_t scaled1[256], scaled2[256]; /* [v + 128]: the rescale of the int8 value v */
        for (i = 0; i < 256; ++i) {
            scaled1[i] = tg_multiply_by_quantized_multiplier(
                (i - 128 - p->input1_zero_point) * left_multiplier, p->input1_multiplier,
                p->input1_shift);
            scaled2[i] = tg_multiply_by_quantized_multiplier(
                (i - 128 - p->input2_zero_point) * left_multiplier, p->input2_multiplier,
                p->input2_shift);
        }
        for (i = 0; i < q.size; ++i) {
            output[i] = tg_requantize_s8(
                tg_add_wrap_s32(scaled1[input1[i] + 128], scaled2[input2[i] + 128]),
                q.output_multiplier, q.output_shift, q.output_zero_point, q.act_min,
                q.act_max);
        }
        return;
    }
    for (i = 0; i < q.size; ++i) {
        output[i] = tg_add_one_s8(input1[i], input2[i], &q);
    }
}
