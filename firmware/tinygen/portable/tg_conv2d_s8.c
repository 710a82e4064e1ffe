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
 *
 * Walk: two output channels at a time; for each, the output pixels two at a time along x.
 * In NHWC/OHWI the taps of one filter row (kx, c) are contiguous in both the input and the
 * filter, so each filter row is one dot product (tg_dot.h, about 2.2 instructions per MAC
 * on a Cortex-M4 for long rows). Pixels whose window lies wholly inside the input take the
 * input offset through the filter's weight sum, computed once per channel; pixels on the
 * border sum the weights of the taps they use.
 */
#include <stddef.h>

#include "../tg_kernels.h"
#include "../tg_math.h"
#include "tg_dot.h"

/* One pixel, channels o and o + 1 (o + 1 only when two): the raw dot products of the
 * taps inside the input, plus input_offset times the weights of those taps. */
static void tg_conv2d_pixel(const int8_t *in_batch, const tg_conv_params_t *p, int32_t o,
                            int32_t two, int32_t out_y, int32_t out_x, int32_t acc[2])
{
    const int32_t in_c = p->in_c, kernel_w = p->kernel_w;
    const int32_t in_y0 = out_y * p->stride_h - p->pad_h;
    const int32_t in_x0 = out_x * p->stride_w - p->pad_w;
    const int32_t ky_start = tg_max_s32(0, -in_y0);
    const int32_t ky_end = tg_min_s32(p->kernel_h, p->in_h - in_y0);
    const int32_t kx_start = tg_max_s32(0, -in_x0);
    const int32_t kx_end = tg_min_s32(kernel_w, p->in_w - in_x0);
    const int32_t len = (kx_end - kx_start) * in_c;
    const size_t filter_size = (size_t)p->kernel_h * (size_t)kernel_w * (size_t)in_c;
    const int8_t *const w0 = p->weights + (size_t)o * filter_size;
    const int8_t *const w1 = two ? w0 + filter_size : w0;
    int32_t wsum0 = 0, wsum1 = 0;
    int32_t ky;

    acc[0] = 0;
    acc[1] = 0;
    for (ky = ky_start; ky < ky_end && len > 0; ++ky) {
        const int8_t *const in_px =
            in_batch + ((size_t)(in_y0 + ky) * (size_t)p->in_w + (size_t)(in_x0 + kx_start)) *
                           (size_t)in_c;
        const size_t w_off = ((size_t)ky * (size_t)kernel_w + (size_t)kx_start) * (size_t)in_c;

        tg_dot_1x2_s8(in_px, w0 + w_off, w1 + w_off, len, acc);
        wsum0 += tg_sum_s8(w0 + w_off, len);
        wsum1 += tg_sum_s8(w1 + w_off, len);
    }
    /* each term at most filter_size * 128 * 128 in magnitude; the sum is the plain
     * loop's accumulator, which fits (see above) */
    acc[0] += -p->input_zero_point * wsum0;
    acc[1] += -p->input_zero_point * wsum1;
}

void tg_conv2d_s8(const int8_t *input, int8_t *output, const tg_conv_params_t *p)
{
    /* Copied to locals: output stores may alias *p as far as the compiler knows. */
    const int8_t *const weights = p->weights;
    const int32_t *const bias = p->bias;
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
    const int32_t out_h = p->out_h, out_w = p->out_w, out_c = p->out_c;
    const int32_t kernel_h = p->kernel_h, kernel_w = p->kernel_w;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w;
    const int32_t pad_h = p->pad_h, pad_w = p->pad_w;
    const int32_t input_offset = -p->input_zero_point;
    const int32_t output_zero_point = p->output_zero_point;
    const int32_t act_min = p->act_min, act_max = p->act_max;
    const int32_t filter_size = kernel_h * kernel_w * in_c;
    const int32_t row_len = kernel_w * in_c; /* one filter row: contiguous taps */
    const size_t in_row = (size_t)in_w * (size_t)in_c;
    const size_t pixel_step = (size_t)stride_w * (size_t)in_c;
    int32_t b, o, out_y, out_x;

    for (b = 0; b < p->batches; ++b) {
        const int8_t *const in_batch = input + (size_t)b * (size_t)in_h * in_row;
        int8_t *const out_batch = output + (size_t)b * (size_t)out_h * (size_t)out_w *
                                               (size_t)out_c;
        for (o = 0; o < out_c; o += 2) {
            const int32_t two = o + 1 < out_c;
            const int8_t *const w0 = weights + (size_t)o * (size_t)filter_size;
            const int8_t *const w1 = two ? w0 + filter_size : w0;
            const int32_t m0 = p->multiplier[o], sh0 = p->shift[o];
            const int32_t m1 = p->multiplier[o + two], sh1 = p->shift[o + two];
            const int32_t b0 = bias != NULL ? bias[o] : 0;
            const int32_t b1 = bias != NULL ? bias[o + two] : 0;
            /* input offset times the whole filter's weight sum: for inside windows */
            const int32_t off0 = input_offset * tg_sum_s8(w0, filter_size);
            const int32_t off1 = input_offset * tg_sum_s8(w1, filter_size);

            for (out_y = 0; out_y < out_h; ++out_y) {
                const int32_t in_y0 = out_y * stride_h - pad_h;
                const int32_t rows_inside = in_y0 >= 0 && in_y0 + kernel_h <= in_h;
                int8_t *out_px = out_batch + (size_t)out_y * (size_t)out_w * (size_t)out_c +
                                 (size_t)o;
                for (out_x = 0; out_x < out_w; ++out_x, out_px += out_c) {
                    int32_t acc[4] = {0, 0, 0, 0};
                    /* windows wholly inside the input (no division: the lx106 has none) */
                    const int32_t in_x0 = out_x * stride_w - pad_w;
                    const int32_t inside =
                        rows_inside && in_x0 >= 0 && in_x0 + kernel_w <= in_w;
                    const int32_t pair = inside && out_x + 1 < out_w &&
                                         in_x0 + stride_w + kernel_w <= in_w;

                    if (pair) { /* pixels out_x and out_x + 1, both inside */
                        const int8_t *a0 =
                            in_batch + (size_t)in_y0 * in_row +
                            (size_t)in_x0 * (size_t)in_c;
                        const int8_t *f0 = w0, *f1 = w1;
                        int32_t ky;
                        for (ky = 0; ky < kernel_h; ++ky) {
                            tg_dot_2x2_s8(a0, a0 + pixel_step, f0, f1, row_len, acc);
                            a0 += in_row;
                            f0 += row_len;
                            f1 += row_len;
                        }
                        acc[0] += off0;
                        acc[1] += off1;
                        acc[2] += off0;
                        acc[3] += off1;
                    } else if (inside) {
                        const int8_t *a0 =
                            in_batch + (size_t)in_y0 * in_row +
                            (size_t)in_x0 * (size_t)in_c;
                        int32_t ky;
                        for (ky = 0; ky < kernel_h; ++ky) {
                            tg_dot_1x2_s8(a0, w0 + ky * row_len, w1 + ky * row_len, row_len,
                                          acc);
                            a0 += in_row;
                        }
                        acc[0] += off0;
                        acc[1] += off1;
                    } else {
                        tg_conv2d_pixel(in_batch, p, o, two, out_y, out_x, acc);
                    }
                    out_px[0] = tg_requantize_s8(tg_add_wrap_s32(acc[0], b0), m0, sh0,
                                                 output_zero_point, act_min, act_max);
                    if (two) {
                        out_px[1] = tg_requantize_s8(tg_add_wrap_s32(acc[1], b1), m1, sh1,
                                                     output_zero_point, act_min, act_max);
                    }
                    if (pair) {
                        out_px += out_c;
                        ++out_x;
                        out_px[0] = tg_requantize_s8(tg_add_wrap_s32(acc[2], b0), m0, sh0,
                                                     output_zero_point, act_min, act_max);
                        if (two) {
                            out_px[1] = tg_requantize_s8(tg_add_wrap_s32(acc[3], b1), m1,
                                                         sh1, output_zero_point, act_min,
                                                         act_max);
                        }
                    }
                }
            }
        }
    }
}
