/*
 * tinygen portable kernels: the per-element arithmetic of ADD and MUL, shared by the
 * same-shape kernels (tg_add_s8.c, tg_mul_s8.c) and the broadcasting ones
 * (tg_add_bcast_s8.c, tg_mul_bcast_s8.c), so that both paths are one formula.
 * Bit-exact with TFLM reference_integer_ops::Add / Mul per element.
 */
#ifndef TG_ELEMENTWISE_H
#define TG_ELEMENTWISE_H

#include "../tg_kernels.h"
#include "../tg_math.h"

/* TG_ELEMENTWISE_SSAT: 1 where the same-shape loops below clamp a full int8 range with
 * two saturations (Arm DSP: SSAT), as tg_fc_dsp.h does:
 *   clamp(s, -128 - zp, 127 - zp) + zp = ssat8(ssat9(s) + zp) for zp in [-128, 127]
 * (ssat9 keeps every s the clamp does not change; past it, the sum still saturates to
 * the same rail). */
#define TG_ELEMENTWISE_SSAT TG_ACLE_DSP

/* clamp(MBQM(MBQM((a - zp1) << ls, m1, s1) + MBQM((b - zp2) << ls, m2, s2), m_out, s_out)
 *       + zp_out, act_min, act_max) */
static inline int8_t tg_add_one_s8(int8_t a, int8_t b, const tg_add_params_t *p)
{
    const int32_t left_multiplier = (int32_t)1 << p->left_shift;
    const int32_t shifted1 = ((int32_t)a - p->input1_zero_point) * left_multiplier;
    const int32_t shifted2 = ((int32_t)b - p->input2_zero_point) * left_multiplier;
    const int32_t scaled1 = tg_multiply_by_quantized_multiplier(
        shifted1, p->input1_multiplier, p->input1_shift);
    const int32_t scaled2 = tg_multiply_by_quantized_multiplier(
        shifted2, p->input2_multiplier, p->input2_shift);
    return tg_requantize_s8(tg_add_wrap_s32(scaled1, scaled2), p->output_multiplier,
                            p->output_shift, p->output_zero_point, p->act_min, p->act_max);
}

/* clamp(MBQM((a - zp1) * (b - zp2), m_out, s_out) + zp_out, act_min, act_max) */
static inline int8_t tg_mul_one_s8(int8_t a, int8_t b, const tg_mul_params_t *p)
{
    const int32_t product = ((int32_t)a - p->input1_zero_point) *
                            ((int32_t)b - p->input2_zero_point);
    return tg_requantize_s8(product, p->output_multiplier, p->output_shift,
                            p->output_zero_point, p->act_min, p->act_max);
}

/* The broadcasting walk of tg_add_bcast_s8 / tg_mul_bcast_s8: ONE(a, b, &p->op) for every
 * output element in row-major order, inputs read through p->stride1 / p->stride2. */
#define TG_BROADCAST_LOOP(input1, input2, output, p, ONE)                                 \
    do {                                                                                  \
        const int32_t *n_ = (p)->out_shape;                                               \
        int8_t *o_ = (output);                                                            \
        int32_t i0, i1, i2, i3;                                                           \
        for (i0 = 0; i0 < n_[0]; ++i0) {                                                  \
            for (i1 = 0; i1 < n_[1]; ++i1) {                                              \
                for (i2 = 0; i2 < n_[2]; ++i2) {                                          \
                    const int8_t *a_ = (input1) + i0 * (p)->stride1[0] +                  \
                                       i1 * (p)->stride1[1] + i2 * (p)->stride1[2];       \
                    const int8_t *b_ = (input2) + i0 * (p)->stride2[0] +                  \
                                       i1 * (p)->stride2[1] + i2 * (p)->stride2[2];       \
                    for (i3 = 0; i3 < n_[3]; ++i3) {                                      \
                        *o_++ = ONE(a_[i3 * (p)->stride1[3]], b_[i3 * (p)->stride2[3]],   \
                                    &(p)->op);                                            \
                    }                                                                     \
                }                                                                         \
            }                                                                             \
        }                                                                                 \
    } while (0)

#endif /* TG_ELEMENTWISE_H */
