/*
 * tg_dw_dsp.h: the int8 depthwise convolution along the height only (kernel_w, in_w and
 * out_w 1, stride 1, depth multiplier 1: a Conformer's depthwise time convolution) for
 * little-endian cores with the Arm DSP extension (SMLAD), in C with ACLE intrinsics. Used
 * by the CMSIS-NN adapter on cores without MVE (cmsis_nn/tg_depthwise_conv2d_s8.c), where
 * it beats arm_depthwise_conv_wrapper_s8: 5.8 instructions per MAC on mcu-tiny's 15-tap
 * convolution against 10.5 on a Cortex-M4. Elsewhere TG_DW_DSP is 0 and nothing here is
 * compiled. Bit-exact with TFLM reference_integer_ops::DepthwiseConvPerChannel, the same
 * contract as tg_depthwise_conv2d_s8 (tg_kernels.h).
 *
 * tg_dw_dsp_takes(p) -> 1 for the shapes it takes.
 * tg_dw_dsp_s8(input, output, p, u)
 *   input   [in]  int8 (batches, in_h, 1, c), zero point p->input_zero_point.
 *   output  [out] int8 (batches, out_h, 1, c); must not overlap input.
 *   p       [in]  tg_conv_params_t; weights (1, kernel_h, 1, c).
 *   u       [tmp] TG_DW_DSP_BYTES(out_h, kernel_h) bytes, 4-byte aligned.
 *
 * One channel at a time, two taps per SMLAD:
 *   u_j = x_(j - pad_h) - zp_in (0 outside the input: TFLM skips those taps),
 *   out_t = requant(sum_k u_(t + k) w_k + bias).
 * u is stored as int16, so the pair (u_j, u_j+1) is one (unaligned) word load, against
 * the weight pairs (w_2i, w_2i+1) (an odd kernel's last pair has weight 0 on its high
 * half; u has zeros past the end for it). Outputs go two at a time, sharing each weight
 * pair. The sums are TFLM's: each product is exact, and SMLAD's wrapping int32 total is
 * the same integer as TFLM's bias + sum.
 */
#ifndef TG_DW_DSP_H
#define TG_DW_DSP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../tg_kernels.h"
#include "../tg_math.h"

#if TG_ACLE_DSP && !defined(__ARM_BIG_ENDIAN)
#define TG_DW_DSP 1
#else
#define TG_DW_DSP 0
#endif

/* The longest kernel it takes (its packed weights live on the stack). */
#define TG_DW_DSP_MAX_TAPS 64

/* The scratch bytes it takes: one channel's int16 sequence u_0 .. u_(out_h + kernel_h),
 * padded (tinygen/targets/platformio.py mirrors it). */
#define TG_DW_DSP_BYTES(out_h, kernel_h) (4 * (((out_h) + (kernel_h) + 4) / 2))

#if TG_DW_DSP

static inline int tg_dw_dsp_takes(const tg_conv_params_t *p)
{
    return p->kernel_w == 1 && p->in_w == 1 && p->out_w == 1 && p->stride_h == 1 &&
           p->pad_w == 0 && p->kernel_h <= TG_DW_DSP_MAX_TAPS && p->out_c == p->in_c;
}

/* Two int16 values from p (any alignment; little-endian: p[0] in the low half). */
static inline int32_t tg_dw_dsp_pair(const int16_t *p)
{
    int32_t v;

    memcpy(&v, p, sizeof v);
    return v;
}

static inline void tg_dw_dsp_s8(const int8_t *input, int8_t *output,
                                const tg_conv_params_t *p, int16_t *u)
{
    const int32_t c_n = p->in_c, kh = p->kernel_h, out_h = p->out_h, in_h = p->in_h;
    const int32_t n_u = 2 * ((out_h + kh + 4) / 2); /* u_0 .. u_(out_h + kh), padded */
    const int32_t n_pairs = (kh + 1) / 2;
    const int32_t zp_out = p->output_zero_point;
    const int32_t lo = p->act_min - zp_out, hi = p->act_max - zp_out;
    int32_t b, c, t, i;

    for (b = 0; b < p->batches; ++b) {
        const int8_t *const in_b = input + (size_t)b * (size_t)in_h * (size_t)c_n;
        int8_t *const out_b = output + (size_t)b * (size_t)out_h * (size_t)c_n;
        for (c = 0; c < c_n; ++c) {
            const tg_requant_t q = tg_requant_prepare(p->multiplier[c], p->shift[c]);
            const int32_t bias = p->bias != NULL ? p->bias[c] : 0;
            int32_t w[TG_DW_DSP_MAX_TAPS / 2];
            const int8_t *x = in_b + c;

            for (i = 0; i < n_pairs; ++i) { /* (w_2i, w_2i+1) */
                const int32_t w0 = p->weights[(size_t)(2 * i) * (size_t)c_n + (size_t)c];
                const int32_t w1 = 2 * i + 1 < kh
                                       ? p->weights[(size_t)(2 * i + 1) * (size_t)c_n +
                                                    (size_t)c]
                                       : 0;
                w[i] = tg_s32_from_u32(((uint32_t)w0 & 0xFFFFu) | ((uint32_t)w1 << 16));
            }
            for (i = 0; i < n_u; ++i) {
                const int32_t src = i - p->pad_h;
                if (src >= 0 && src < in_h) {
                    u[i] = (int16_t)(*x - p->input_zero_point);
                    x += c_n;
                } else {
                    u[i] = 0;
                }
            }
#define TG_DW_OUT(acc)                                                                   \
    (int8_t)(tg_clamp_s32(q.fast ? tg_requant_scale_fast((acc), &q)                      \
                                 : tg_multiply_by_quantized_multiplier((acc), q.multiplier, \
                                                                       q.shift),         \
                          lo, hi) + zp_out)
            for (t = 0; t < out_h; t += 2) {
                const int16_t *s0 = u + t;
                const int32_t *wp = w;
                const int32_t *const w_end = w + n_pairs;
                int8_t *const out = out_b + (size_t)t * (size_t)c_n + (size_t)c;
                int32_t a0 = bias, a1 = bias;

                for (; wp + 2 <= w_end; wp += 2, s0 += 4) { /* two weight pairs a turn */
                    a0 = __smlad(tg_dw_dsp_pair(s0), wp[0], a0);
                    a1 = __smlad(tg_dw_dsp_pair(s0 + 1), wp[0], a1);
                    a0 = __smlad(tg_dw_dsp_pair(s0 + 2), wp[1], a0);
                    a1 = __smlad(tg_dw_dsp_pair(s0 + 3), wp[1], a1);
                }
                if (wp != w_end) {
                    a0 = __smlad(tg_dw_dsp_pair(s0), wp[0], a0);
                    a1 = __smlad(tg_dw_dsp_pair(s0 + 1), wp[0], a1);
                }
                out[0] = TG_DW_OUT(a0);
                if (t + 1 < out_h) {
                    out[c_n] = TG_DW_OUT(a1);
                }
            }
#undef TG_DW_OUT
        }
    }
}

#endif /* TG_DW_DSP */

#endif /* TG_DW_DSP_H */
