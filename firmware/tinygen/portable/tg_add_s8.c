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
#include "../tg_kernels.h"
#include "../tg_math.h"

void tg_add_s8(const int8_t *input1, const int8_t *input2, int8_t *output,
               const tg_add_params_t *p)
{
    const int32_t input1_offset = -p->input1_zero_point;
    const int32_t input2_offset = -p->input2_zero_point;
    const int32_t left_multiplier = (int32_t)1 << p->left_shift;
    int32_t i;

    for (i = 0; i < p->size; ++i) {
        const int32_t shifted1 = ((int32_t)input1[i] + input1_offset) * left_multiplier;
        const int32_t shifted2 = ((int32_t)input2[i] + input2_offset) * left_multiplier;
        const int32_t scaled1 = tg_multiply_by_quantized_multiplier(
            shifted1, p->input1_multiplier, p->input1_shift);
        const int32_t scaled2 = tg_multiply_by_quantized_multiplier(
            shifted2, p->input2_multiplier, p->input2_shift);
        output[i] = tg_requantize_s8(tg_add_wrap_s32(scaled1, scaled2), p->output_multiplier,
                                     p->output_shift, p->output_zero_point, p->act_min,
                                     p->act_max);
    }
}
