/*
 * tg_conv2d_s8 (CMSIS-NN): arm_convolve_wrapper_s8, which picks CMSIS-NN's fastest
 * convolution for the shape (1x1, 1xN or im2col), as TFLM's cmsis_nn/conv.cc does.
 * Same contract as ../portable/tg_conv2d_s8.c; bit-exact with TFLM's reference
 * ConvPerChannel.
 *
 * input   [in]  int8 (batches, in_h, in_w, in_c), zero point p->input_zero_point.
 * output  [out] int8 (batches, out_h, out_w, out_c); must not overlap input.
 * p       [in]  tg_conv_params_t; weights OHWI (out_c, kernel_h, kernel_w, in_c).
 *
 * CMSIS-NN layout: input_dims [N, H, W, C_IN], filter_dims [C_OUT, HK, WK, C_IN],
 * bias_dims [1, 1, 1, C_OUT], output_dims [N, H, W, C_OUT]. conv_params:
 * input_offset = -zp_in, output_offset = +zp_out, stride/padding as {w, h} tiles
 * (padding is top/left; taps outside the input are skipped, as in TFLM), dilation {1, 1}.
 * Scratch: the shifts widened to int32 (tinygen stores them as int8; tg_nn_shifts), then
 * arm_convolve_wrapper_s8_get_buffer_size (the im2col buffer).
 *
 * On cores with the DSP extension and without MVE, convolutions with at least
 * TG_CONV_DSP_MIN_DEPTH taps per output (kernel_h * kernel_w * in_c) run as a fully
 * connected layer instead: TG_CONV_DSP_ROWS output positions at a time are copied into
 * im2col rows (taps outside the input hold the input zero point, so they add nothing, as
 * TFLM's skipped taps), then ../portable/tg_fc_dsp.h multiplies them with the OHWI weights,
 * which are the (out_c, kernel_h * kernel_w * in_c) matrix it wants: about 1 instruction
 * per MAC on a Cortex-M4 against 2.7 for arm_convolve_wrapper_s8 with 288 taps, 5.7
 * against 8.6 with 9 (a 3 x 3 kernel on one channel, zero padded to 16 taps). Scratch: the im2col rows
 * (TG_CONV_DSP_ROWS * taps bytes, rounded up to 16), then tg_fc_dsp_words(TG_CONV_DSP_ROWS,
 * taps) words (tinygen/targets/platformio.py plans both).
 */
#include <stddef.h>

#include "arm_nnfunctions.h"
#include "tg_cmsis_nn_isa.h"

#include "../tg_kernels.h"
#include "../tg_nn_scratch.h"
#include "../portable/tg_fc_dsp.h"

#if defined(ARM_MATH_DSP) && !defined(ARM_MATH_MVEI) && TG_FC_DSP
#include <string.h>

#define TG_CONV_DSP_ROWS 24
#define TG_CONV_DSP_MIN_DEPTH 8

/* The im2col rows of the output positions [first, first + n) of batch b. */
static void tg_conv2d_im2col(const int8_t *input, const tg_conv_params_t *p, int32_t b,
                             int32_t first, int32_t n, int8_t *col)
{
    const size_t in_c = (size_t)p->in_c;
    int32_t k;

    for (k = 0; k < n; ++k) {
        const int32_t oy = (first + k) / p->out_w, ox = (first + k) % p->out_w;
        int32_t ky, kx;

        for (ky = 0; ky < p->kernel_h; ++ky) {
            const int32_t iy = oy * p->stride_h - p->pad_h + ky;
            for (kx = 0; kx < p->kernel_w; ++kx) {
                const int32_t ix = ox * p->stride_w - p->pad_w + kx;
                const int inside = iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w;
                const int8_t *const src =
                    input + (((size_t)b * (size_t)p->in_h + (size_t)(inside ? iy : 0)) *
                                 (size_t)p->in_w + (size_t)(inside ? ix : 0)) * in_c;
                if (in_c == 1u) { /* one byte a tap (the first convolution of a speech
                                   * model): no library call per tap */
                    col[0] = inside ? src[0] : (int8_t)p->input_zero_point;
                } else if (inside) {
                    memcpy(col, src, in_c);
                } else {
                    memset(col, p->input_zero_point, in_c);
                }
                col += in_c;
            }
        }
    }
}

/* 1 when done (or refused for want of scratch, counted by tg_nn_scratch), 0 when the
 * shape is left to CMSIS-NN. */
static int tg_conv2d_dsp(const int8_t *input, int8_t *output, const tg_conv_params_t *p)
{
    const int32_t depth = p->kernel_h * p->kernel_w * p->in_c;
    const int32_t positions = p->out_h * p->out_w;
    const int32_t col_bytes = (TG_CONV_DSP_ROWS * depth + 15) / 16 * 16;
    const int32_t words = tg_fc_dsp_words(TG_CONV_DSP_ROWS, depth);
    tg_fc_params_t fc;
    int8_t *buf;
    int32_t b, first;

    if (depth < TG_CONV_DSP_MIN_DEPTH) {
        return 0;
    }
    buf = tg_nn_scratch(col_bytes + 4 * words);
    if (buf == NULL) {
        return 1;
    }
    fc.weights = p->weights;
    fc.bias = p->bias;
    fc.multiplier = p->multiplier;
    fc.shift = p->shift;
    fc.in_features = depth;
    fc.out_features = p->out_c;
    fc.input_zero_point = p->input_zero_point;
    fc.output_zero_point = p->output_zero_point;
    fc.act_min = p->act_min;
    fc.act_max = p->act_max;
    for (b = 0; b < p->batches; ++b) {
        for (first = 0; first < positions; first += TG_CONV_DSP_ROWS) {
            fc.rows = positions - first < TG_CONV_DSP_ROWS ? positions - first
                                                           : TG_CONV_DSP_ROWS;
            tg_conv2d_im2col(input, p, b, first, fc.rows, buf);
            (void)tg_fc_dsp_s8(buf, output + ((size_t)b * (size_t)positions +
                                              (size_t)first) * (size_t)p->out_c,
                               &fc, (int32_t *)(void *)(buf + col_bytes), words);
        }
    }
    return 1;
}
#define TG_CONV_USE_DSP_TILES 1
#else
#define TG_CONV_USE_DSP_TILES 0
#endif

static void tg_conv2d_cmsis(const int8_t *input, int8_t *output, const tg_conv_params_t *p)
{
    const cmsis_nn_dims input_dims = {p->batches, p->in_h, p->in_w, p->in_c};
    const cmsis_nn_dims filter_dims = {p->out_c, p->kernel_h, p->kernel_w, p->in_c};
    const cmsis_nn_dims bias_dims = {1, 1, 1, p->out_c};
    const cmsis_nn_dims output_dims = {p->batches, p->out_h, p->out_w, p->out_c};
    const cmsis_nn_conv_params conv_params = {-p->input_zero_point,
                                              p->output_zero_point,
                                              {p->stride_w, p->stride_h},
                                              {p->pad_w, p->pad_h},
                                              {1, 1},
                                              {p->act_min, p->act_max}};
    const int32_t buf_size = arm_convolve_wrapper_s8_get_buffer_size(&conv_params, &input_dims,
                                                                     &filter_dims, &output_dims);
    int8_t *buf = NULL;
    int32_t *const shift = tg_nn_shifts(p->shift, p->out_c, buf_size, &buf);
    /* CMSIS-NN takes non-const pointers here but only reads them. */
    const cmsis_nn_per_channel_quant_params quant_params = {(int32_t *)p->multiplier, shift};
    cmsis_nn_context ctx = {NULL, 0};

    if (shift == NULL) {
        return;
    }
    ctx.buf = buf;
    ctx.size = buf != NULL ? buf_size : 0;
    if (arm_convolve_wrapper_s8(&ctx, &conv_params, &quant_params, &input_dims, input,
                                &filter_dims, p->weights, &bias_dims, p->bias, &output_dims,
                                output) != ARM_CMSIS_NN_SUCCESS) {
        tg_nn_fail();
    }
}

void tg_conv2d_s8(const int8_t *input, int8_t *output, const tg_conv_params_t *p)
{
#if TG_CONV_USE_DSP_TILES
    if (tg_conv2d_dsp(input, output, p)) {
        return;
    }
#endif
    tg_conv2d_cmsis(input, output, p);
}
