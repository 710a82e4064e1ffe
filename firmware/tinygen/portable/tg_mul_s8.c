/*
 * tg_mul_s8: int8 elementwise multiplication of two same-shape tensors.
 * Bit-exact with TFLM reference_integer_ops::Mul (the non-broadcast path).
 *
 * input1  [in]  int8 (size), zero point p->input1_zero_point.
 * input2  [in]  int8 (size), zero point p->input2_zero_point.
 * output  [out] int8 (size); may be input1 or input2 (each element is read before it is
 *               written), otherwise must not overlap them.
 * p       [in]  tg_mul_params_t:
 *   size >= 0.
 *   zero points in [-128, 127]; output_multiplier in [0, INT32_MAX], output_shift in
 *   [-31, 31]; act_min <= act_max in [-128, 127].
 *
 * out[i] = clamp(MBQM((a[i] - zp1) * (b[i] - zp2), m_out, s_out) + zp_out, act_min, act_max)
 */
#include "../tg_kernels.h"
#include "../tg_math.h"

void tg_mul_s8(const int8_t *input1, const int8_t *input2, int8_t *output,
               const tg_mul_params_t *p)
{
    const int32_t input1_offset = -p->input1_zero_point;
    const int32_t input2_offset = -p->input2_zero_point;
    int32_t i;

    for (i = 0; i < p->size; ++i) {
        const int32_t product = ((int32_t)input1[i] + input1_offset) *
                                ((int32_t)input2[i] + input2_offset);
        output[i] = tg_requantize_s8(product, p->output_multiplier, p->output_shift,
                                     p->output_zero_point, p->act_min, p->act_max);
    }
}
