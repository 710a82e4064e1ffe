/*
 * tg_depthwise_conv2d_s8 (CMSIS-NN): arm_depthwise_conv_wrapper_s8, which picks
 * arm_depthwise_conv_3x3_s8, arm_depthwise_conv_s8_opt or arm_depthwise_conv_s8 for the
 * shape, as TFLM's cmsis_nn/depthwise_conv.cc does. Same contract as
 * ../portable/tg_depthwise_conv2d_s8.c; bit-exact with TFLM's reference
 * DepthwiseConvPerChannel.
 *
 * input   [in]  int8 (batches, in_h, in_w, c), zero point p->input_zero_point.
 * output  [out] int8 (batches, out_h, out_w, c); must not overlap input.
 * p       [in]  tg_conv_params_t; weights (1, kernel_h, kernel_w, c); depth multiplier 1.
 *
 * CMSIS-NN layout: input_dims [1, H, W, C_IN] (the wrapper assumes one batch, so batches
 * are looped here), filter_dims [1, HK, WK, C_OUT], bias_dims [1, 1, 1, C_OUT],
 * output_dims [1, H, W, C_OUT]. dw_conv_params: input_offset = -zp_in,
 * output_offset = +zp_out, ch_mult = 1, stride/padding as {w, h} tiles, dilation {1, 1}.
 * Scratch: the shifts widened to int32 (tinygen stores them as int8; tg_nn_shifts), then
 * arm_depthwise_conv_wrapper_s8_get_buffer_size.
 * On little-endian cores with the DSP extension and without MVE (Cortex-M4, M7), a
 * convolution along the height only (kernel_w, in_w, out_w 1, stride 1, up to 64 taps:
 * a Conformer's time convolution) runs ../portable/tg_dw_dsp.h instead (scratch:
 * TG_DW_DSP_BYTES, planned by tinygen/targets/platformio.py): 5.9 instructions per MAC on
 * mcu-tiny against 10.5.
 * Note (arm_nnfunctions.h): with MVE, arm_depthwise_conv_s8_opt may read up to 3 elements
 * past the end of the kernel, bias, multiplier and shift arrays when the channel count is
 * not a multiple of 4. Those are const arrays in flash; the reads are harmless there.
 */
#include <stddef.h>

#include "arm_nnfunctions.h"
#include "tg_cmsis_nn_isa.h"

#include "../tg_kernels.h"
#include "../tg_nn_scratch.h"
#include "../portable/tg_dw_dsp.h"

#if defined(ARM_MATH_DSP) && !defined(ARM_MATH_MVEI) && TG_DW_DSP
/* 1 when done (or refused for want of scratch, counted by tg_nn_scratch), 0 when the
 * shape is left to CMSIS-NN. */
static int tg_depthwise_dsp(const int8_t *input, int8_t *output, const tg_conv_params_t *p)
{
    int16_t *u;

    if (!tg_dw_dsp_takes(p)) {
        return 0;
    }
    u = (int16_t *)(void *)tg_nn_scratch(TG_DW_DSP_BYTES(p->out_h, p->kernel_h));
    if (u != NULL) {
        tg_dw_dsp_s8(input, output, p, u);
    }
    return 1;
}
#define TG_DW_USE_DSP 1
#else
#define TG_DW_USE_DSP 0
#endif

static void tg_depthwise_cmsis(const int8_t *input, int8_t *output,
                               const tg_conv_params_t *p)
{
    const cmsis_nn_dims input_dims = {1, p->in_h, p->in_w, p->in_c};
    const cmsis_nn_dims filter_dims = {1, p->kernel_h, p->kernel_w, p->out_c};
    const cmsis_nn_dims bias_dims = {1, 1, 1, p->out_c};
    const cmsis_nn_dims output_dims = {1, p->out_h, p->out_w, p->out_c};
    const cmsis_nn_dw_conv_params dw_conv_params = {-p->input_zero_point,
                                                    p->output_zero_point,
                                                    1,
                                                    {p->stride_w, p->stride_h},
                                                    {p->pad_w, p->pad_h},
                                                    {1, 1},
                                                    {p->act_min, p->act_max}};
    const int32_t buf_size = arm_depthwise_conv_wrapper_s8_get_buffer_size(
        &dw_conv_params, &input_dims, &filter_dims, &output_dims);
    int8_t *buf = NULL;
    int32_t *const shift = tg_nn_shifts(p->shift, p->out_c, buf_size, &buf);
    /* CMSIS-NN takes non-const pointers here but only reads them. */
    const cmsis_nn_per_channel_quant_params quant_params = {(int32_t *)p->multiplier, shift};
    const size_t in_batch = (size_t)p->in_h * (size_t)p->in_w * (size_t)p->in_c;
    const size_t out_batch = (size_t)p->out_h * (size_t)p->out_w * (size_t)p->out_c;
    cmsis_nn_context ctx = {NULL, 0};
    int32_t b;

    if (shift == NULL) {
        return;
    }
    ctx.buf = buf;
    ctx.size = buf != NULL ? buf_size : 0;
    for (b = 0; b < p->batches; ++b) {
        if (arm_depthwise_conv_wrapper_s8(&ctx, &dw_conv_params, &quant_params, &input_dims,
                                          input + (size_t)b * in_batch, &filter_dims,
                                          p->weights, &bias_dims, p->bias, &output_dims,
                                          output + (size_t)b * out_batch) !=
            ARM_CMSIS_NN_SUCCESS) {
            tg_nn_fail();
        }
    }
}

void tg_depthwise_conv2d_s8(const int8_t *input, int8_t *output, const tg_conv_params_t *p)
{
#if TG_DW_USE_DSP
    if (tg_depthwise_dsp(input, output, p)) {
        return;
    }
#endif
    tg_depthwise_cmsis(input, output, p);
}
