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
 *
 * From TG_ADD_TABLE_MIN elements on, the two input rescales are tabulated per call (256
 * values each) and the output rescale is tg_requant_scale_fast (tg_math.h) when its shift
 * is <= -2: about 20 instructions an element on a Cortex-M4, against 81 for CMSIS-NN's
 * arm_elementwise_add_s8 (which rescales both inputs per element).
 */
#include "tg_elementwise.h"

#define TG_ADD_TABLE_MIN 512

void tg_add_s8(const int8_t *input1, const int8_t *input2, int8_t *output,
               const tg_add_params_t *p)
{
    /* a local copy: output stores cannot change it, so its fields stay in registers */
    const tg_add_params_t q = *p;
    int32_t i;

    if (q.size >= TG_ADD_TABLE_MIN) {
        const int32_t left_multiplier = (int32_t)1 << q.left_shift;
        const tg_requant_t in1 = tg_requant_prepare(q.input1_multiplier, q.input1_shift);
        const tg_requant_t in2 = tg_requant_prepare(q.input2_multiplier, q.input2_shift);
        const tg_requant_t out = tg_requant_prepare(q.output_multiplier, q.output_shift);
        const int32_t lo = q.act_min - q.output_zero_point;
        const int32_t hi = q.act_max - q.output_zero_point;
        int32_t scaled1[256], scaled2[256]; /* [v + 128]: the rescale of the int8 value v */

        for (i = 0; i < 256; ++i) {
            scaled1[i] = tg_requant_scale((i - 128 - q.input1_zero_point) * left_multiplier,
                                          &in1);
            scaled2[i] = tg_requant_scale((i - 128 - q.input2_zero_point) * left_multiplier,
                                          &in2);
        }
#if TG_ELEMENTWISE_SSAT
        if (out.fast && q.act_min == INT8_MIN && q.act_max == INT8_MAX) {
            const int32_t zp_out = q.output_zero_point;

            for (i = 0; i < q.size; ++i) {
                const int32_t sum =
                    tg_add_wrap_s32(scaled1[input1[i] + 128], scaled2[input2[i] + 128]);
                output[i] = (int8_t)__ssat(__ssat(tg_requant_scale_fast(sum, &out), 9) +
                                           zp_out, 8);
            }
            return;
        }
#endif
        if (out.fast) {
            for (i = 0; i < q.size; ++i) {
                const int32_t sum =
                    tg_add_wrap_s32(scaled1[input1[i] + 128], scaled2[input2[i] + 128]);
                output[i] = (int8_t)(tg_clamp_s32(tg_requant_scale_fast(sum, &out), lo, hi) +
                                     q.output_zero_point);
            }
            return;
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
