/*
 * tg_depthwise_conv2d_s8: int8 depthwise 2-D convolution, NHWC, depth multiplier 1,
 * dilation 1, per-channel requantization. Bit-exact with TFLM
 * reference_integer_ops::DepthwiseConvPerChannel.
 *
 * input   [in]  int8 (batches, in_h, in_w, in_c), zero point p->input_zero_point.
 * output  [out] int8 (batches, out_h, out_w, out_c); must not overlap input.
 * p       [in]  tg_conv_params_t:
 *   weights           int8 (1, kernel_h, kernel_w, in_c), zero point 0.
 *   bias              int32 (in_c), or NULL for none.
 *   multiplier int32, shift int8 (in_c): multiplier in [0, INT32_MAX], shift in [-31, 30].
 *   out_c == in_c (depth multiplier 1).
 *   batches >= 0; in_h, in_w, in_c, out_h, out_w, kernel_h, kernel_w >= 1.
 *   stride_h, stride_w >= 1; pad_h, pad_w >= 0 (top/left); taps outside the input are
 *                     skipped (padding with the input zero point).
 *   input_zero_point, output_zero_point in [-128, 127]; act_min <= act_max in [-128, 127].
 *
 * out[b][y][x][c] = clamp(MBQM(sum_{ky,kx inside} (in[b][y*sh-ph+ky][x*sw-pw+kx][c] - zp_in)
 *                              * w[0][ky][kx][c] + bias[c], mult[c], shift[c]) + zp_out,
 *                         act_min, act_max)
 *
 * Walk: output pixels in order, and within a pixel four channels at a time, so each tap
 * reads four adjacent input and weight bytes (NHWC keeps the channels of a pixel
 * together) and memory is read in order; the remaining 0-3 channels one at a time.
 */
#include <stddef.h>

#include "../tg_kernels.h"
#include "../tg_math.h"

void tg_depthwise_conv2d_s8(const int8_t *input, int8_t *output, const tg_conv_params_t *p)
{
    /* Copied to locals: output stores may alias *p as far as the compiler knows. */
    const int8_t *const weights = p->weights;
    const int32_t *const bias = p->bias;
    const int32_t *const multiplier = p->multiplier;
    const int8_t *const shift = p->shift;
    const int32_t in_h = p->in_h, in_w = p->in_w, channels = p->in_c;
    const int32_t out_h = p->out_h, out_w = p->out_w;
    const int32_t kernel_h = p->kernel_h, kernel_w = p->kernel_w;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w;
    const int32_t pad_h = p->pad_h, pad_w = p->pad_w;
    const int32_t input_offset = -p->input_zero_point;
    const int32_t output_zero_point = p->output_zero_point;
    const int32_t act_min = p->act_min, act_max = p->act_max;
    const size_t row_stride = (size_t)in_w * (size_t)channels;
    int32_t b, out_y, out_x, c;

#define TG_DW_OUT(acc, ch)                                                               \
    tg_requantize_s8(bias != NULL ? tg_add_wrap_s32((acc), bias[ch]) : (acc),           \
                     multiplier[ch], shift[ch], output_zero_point, act_min, act_max)

    for (b = 0; b < p->batches; ++b) {
        const int8_t *in_batch = input + (size_t)b * (size_t)in_h * row_stride;
        for (out_y = 0; out_y < out_h; ++out_y) {
            const int32_t in_y0 = out_y * stride_h - pad_h;
            /* filter rows that land inside the input: ky in [ky_start, ky_end) */
            const int32_t ky_start = tg_max_s32(0, -in_y0);
            const int32_t ky_end = tg_min_s32(kernel_h, in_h - in_y0);
            for (out_x = 0; out_x < out_w; ++out_x) {
                const int32_t in_x0 = out_x * stride_w - pad_w;
                const int32_t kx_start = tg_max_s32(0, -in_x0);
                const int32_t kx_end = tg_min_s32(kernel_w, in_w - in_x0);
                /* (a window wholly left or right of the input has no taps) */
                const int32_t taps_w = kx_end > kx_start ? kx_end - kx_start : 0;
                /* the first tap's column and filter column (0, 0 when there is none, so
                 * that no pointer leaves the tensors) */
                const size_t col = taps_w > 0 ? (size_t)(in_x0 + kx_start) : 0u;
                const size_t first = taps_w > 0 ? (size_t)kx_start : 0u;
                const int8_t *const in_px0 = in_batch + col * (size_t)channels;
                const int8_t *const w_px0 = weights + first * (size_t)channels;
                for (c = 0; c + 4 <= channels; c += 4) {
                    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                    int32_t ky, kx;
                    for (ky = ky_start; ky < ky_end; ++ky) {
                        const int8_t *in_px = in_px0 + (size_t)(in_y0 + ky) * row_stride +
                                              (size_t)c;
                        const int8_t *w_px = w_px0 + (size_t)ky * (size_t)kernel_w *
                                                         (size_t)channels + (size_t)c;
                        for (kx = 0; kx < taps_w; ++kx) {
                            a0 += ((int32_t)in_px[0] + input_offset) * (int32_t)w_px[0];
                            a1 += ((int32_t)in_px[1] + input_offset) * (int32_t)w_px[1];
                            a2 += ((int32_t)in_px[2] + input_offset) * (int32_t)w_px[2];
                            a3 += ((int32_t)in_px[3] + input_offset) * (int32_t)w_px[3];
                            in_px += channels;
                            w_px += channels;
                        }
                    }
                    output[0] = TG_DW_OUT(a0, c);
                    output[1] = TG_DW_OUT(a1, c + 1);
                    output[2] = TG_DW_OUT(a2, c + 2);
                    output[3] = TG_DW_OUT(a3, c + 3);
                    output += 4;
                }
                for (; c < channels; ++c) {
                    int32_t acc = 0;
                    int32_t ky, kx;
                    for (ky = ky_start; ky < ky_end; ++ky) {
                        const int8_t *in_px = in_px0 + (size_t)(in_y0 + ky) * row_stride +
                                              (size_t)c;
                        const int8_t *w_px = w_px0 + (size_t)ky * (size_t)kernel_w *
                                                         (size_t)channels + (size_t)c;
                        for (kx = 0; kx < taps_w; ++kx) {
                            acc += ((int32_t)*in_px + input_offset) * (int32_t)*w_px;
                            in_px += channels;
                            w_px += channels;
                        }
                    }
                    *output++ = TG_DW_OUT(acc, c);
                }
            }
        }
    }
#undef TG_DW_OUT
}
