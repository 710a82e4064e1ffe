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
 */
#include <stddef.h>

#include "arm_nnfunctions.h"
#include "tg_cmsis_nn_isa.h"

#include "../tg_kernels.h"
#include "../tg_nn_scratch.h"

void tg_conv2d_s8(const int8_t *input, int8_t *output, const tg_conv_params_t *p)
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
