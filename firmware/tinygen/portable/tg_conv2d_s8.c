/*
 * tg_conv2d_s8: int8 2-D convolution, NHWC, per-channel requantization, dilation 1.
 * Bit-exact with TFLM reference_integer_ops::ConvPerChannel.
 *
 * input   [in]  int8 (batches, in_h, in_w, in_c), zero point p->input_zero_point.
 * output  [out] int8 (batches, out_h, out_w, out_c); must not overlap input.
 * p       [in]  tg_conv_params_t:
 *   weights           int8 (out_c, kernel_h, kernel_w, in_c) (OHWI), zero point 0.
 *   bias              int32 (out_c), or NULL for none.
 *   multiplier int32, shift int8 (out_c): multiplier in [0, INT32_MAX], shift in [-31, 30].
 *   batches >= 0; in_h, in_w, in_c, out_h, out_w, out_c, kernel_h, kernel_w >= 1.
 *   stride_h, stride_w >= 1; pad_h, pad_w >= 0: top/left padding (TFLite SAME or VALID
 *                     resolved by the compiler). Taps outside the input are skipped, which
 *                     is the same as padding with the input zero point.
 *   kernel_h * kernel_w * in_c <= 65793 (no int32 accumulator overflow).
 *   input_zero_point, output_zero_point in [-128, 127]; act_min <= act_max in [-128, 127].
 *
 * out[b][y][x][o] = clamp(MBQM(sum_{ky,kx,c inside} (in[b][y*sh-ph+ky][x*sw-pw+kx][c] - zp_in)
 *                              * w[o][ky][kx][c] + bias[o], mult[o], shift[o]) + zp_out,
 *                         act_min, act_max)
 */
#include <stddef.h>

#include "../tg_kernels.h"
#include "../tg_math.h"

void tg_conv2d_s8(const int8_t *input, int8_t *output, const tg_conv_params_t *p)
{
    /* Copied to locals: output stores may alias *p as far as the compiler knows. */
    const int8_t *const weights = p->weights;
    const int32_t *const bias = p->bias;
    const int32_t *const multiplier = p->multiplier;
    const int8_t *const shift = p->shift;
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
    const int32_t out_h = p->out_h, out_w = p->out_w, out_c = p->out_c;
    const int32_t kernel_h = p->kernel_h, kernel_w = p->kernel_w;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w;
    const int32_t pad_h = p->pad_h, pad_w = p->pad_w;
    const int32_t input_offset = -p->input_zero_point;
    const int32_t output_zero_point = p->output_zero_point;
    const int32_t act_min = p->act_min, act_max = p->act_max;
    const size_t filter_size = (size_t)kernel_h * (size_t)kernel_w * (size_t)in_c;
    int32_t b, out_y, out_x, oc;

    for (b = 0; b < p->batches; ++b) {
        const int8_t *in_batch = input + (size_t)b * (size_t)in_h * (size_t)in_w * (size_t)in_c;
        for (out_y = 0; out_y < out_h; ++out_y) {
            const int32_t in_y0 = out_y * stride_h - pad_h;
            /* filter rows that land inside the input: ky in [ky_start, ky_end) */
            const int32_t ky_start = tg_max_s32(0, -in_y0);
            const int32_t ky_end = tg_min_s32(kernel_h, in_h - in_y0);
            for (out_x = 0; out_x < out_w; ++out_x) {
                const int32_t in_x0 = out_x * stride_w - pad_w;
                const int32_t kx_start = tg_max_s32(0, -in_x0);
                const int32_t kx_end = tg_min_s32(kernel_w, in_w - in_x0);
                const int8_t *filter = weights;
                for (oc = 0; oc < out_c; ++oc) {
                    int32_t acc = 0;
                    int32_t ky, kx, c;
                    for (ky = ky_start; ky < ky_end; ++ky) {
                        for (kx = kx_start; kx < kx_end; ++kx) {
                            const int8_t *in_px =
                                in_batch +
                                ((size_t)(in_y0 + ky) * (size_t)in_w + (size_t)(in_x0 + kx)) *
                                    (size_t)in_c;
                            const int8_t *w_px =
                                filter + ((size_t)ky * (size_t)kernel_w + (size_t)kx) * (size_t)in_c;
                            for (c = 0; c < in_c; ++c) {
                                acc += ((int32_t)in_px[c] + input_offset) * (int32_t)w_px[c];
                            }
                        }
                    }
                    if (bias != NULL) {
                        acc = tg_add_wrap_s32(acc, bias[oc]);
                    }
                    *output++ = tg_requantize_s8(acc, multiplier[oc], shift[oc],
                                                 output_zero_point, act_min, act_max);
                    filter += filter_size;
                }
            }
        }
    }
}
