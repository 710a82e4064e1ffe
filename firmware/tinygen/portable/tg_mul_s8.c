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
 *
 * With an output shift <= -2 the rescale is tg_requant_scale_fast (tg_math.h): one 64-bit
 * multiply-accumulate and a shift from constants prepared once per call.
 */
#include "tg_elementwise.h"

void tg_mul_s8(const int8_t *input1, const int8_t *input2, int8_t *output,
               const tg_mul_params_t *p)
{
    /* a local copy: output stores cannot change it, so its fields stay in registers */
    const tg_mul_params_t q = *p;
    const tg_requant_t out = tg_requant_prepare(q.output_multiplier, q.output_shift);
    int32_t i;

    if (out.fast) {
        const int32_t lo = q.act_min - q.output_zero_point;
        const int32_t hi = q.act_max - q.output_zero_point;
#if TG_ELEMENTWISE_SSAT
        if (q.act_min == INT8_MIN && q.act_max == INT8_MAX) {
            const int32_t zp1 = q.input1_zero_point, zp2 = q.input2_zero_point;
            const int32_t zp_out = q.output_zero_point;

            for (i = 0; i < q.size; ++i) {
                const int32_t product =
                    ((int32_t)input1[i] - zp1) * ((int32_t)input2[i] - zp2);
                output[i] = (int8_t)__ssat(
                    __ssat(tg_requant_scale_fast(product, &out), 9) + zp_out, 8);
            }
            return;
        }
#endif

        for (i = 0; i < q.size; ++i) {
            const int32_t product = ((int32_t)input1[i] - q.input1_zero_point) *
                                    ((int32_t)input2[i] - q.input2_zero_point);
            output[i] = (int8_t)(tg_clamp_s32(tg_requant_scale_fast(product, &out), lo, hi) +
                                 q.output_zero_point);
        }
        return;
    }
    for (i = 0; i < q.size; ++i) {
        output[i] = tg_mul_one_s8(input1[i], input2[i], &q);
    }
}
