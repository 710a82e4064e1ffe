/*
 * tg_depthwise_conv2d_s8 (ESP-NN): esp_nn_depthwise_conv_s8, one call per batch, as
 * TFLM's esp_nn/depthwise_conv.cc does. Same contract as
 * ../portable/tg_depthwise_conv2d_s8.c.
 *
 * input   [in]  int8 (batches, in_h, in_w, c), zero point p->input_zero_point.
 * output  [out] int8 (batches, out_h, out_w, c); must not overlap input.
 * p       [in]  tg_conv_params_t; weights (1, kernel_h, kernel_w, c); depth multiplier 1;
 *               every dimension < 65536.
 *
 * ESP-NN layout: input {in_w, in_h, c, 1}, filter {kernel_w, kernel_h, c, 0}, output
 * {out_w, out_h, c, 1}. dw_conv_params_t: in_offset = -zp_in, out_offset = +zp_out,
 * ch_mult = 1, stride/padding {width, height}, dilation {0, 0}, activation
 * [act_min, act_max]. quant_data_t {shift, mult} per channel.
 * Scratch: the shifts widened to int32 (tinygen stores them as int8; tg_nn_shifts), then
 * esp_nn_get_depthwise_conv_scratch_size, handed over with
 * esp_nn_set_depthwise_conv_scratch_buf.
 */
#include <stddef.h>

#include "sdkconfig.h"

#include "esp_nn.h"

#include "../tg_kernels.h"
#include "../tg_nn_scratch.h"

void tg_depthwise_conv2d_s8(const int8_t *input, int8_t *output, const tg_conv_params_t *p)
{
    const data_dims_t input_dims = {p->in_w, p->in_h, p->in_c, 1};
    const data_dims_t filter_dims = {p->kernel_w, p->kernel_h, p->in_c, 0};
    const data_dims_t output_dims = {p->out_w, p->out_h, p->out_c, 1};
    const dw_conv_params_t conv_params = {-p->input_zero_point,
                                          p->output_zero_point,
                                          1,
                                          {p->stride_w, p->stride_h},
                                          {p->pad_w, p->pad_h},
                                          {0, 0},
                                          {p->act_min, p->act_max}};
    const int32_t scratch_size = esp_nn_get_depthwise_conv_scratch_size(
        &input_dims, &filter_dims, &output_dims, &conv_params);
    const size_t in_batch = (size_t)p->in_h * (size_t)p->in_w * (size_t)p->in_c;
    const size_t out_batch = (size_t)p->out_h * (size_t)p->out_w * (size_t)p->out_c;
    int8_t *scratch = NULL;
    int32_t *const shift = tg_nn_shifts(p->shift, p->out_c, scratch_size, &scratch);
    /* ESP-NN takes non-const pointers here but only reads them. */
    const quant_data_t quant_data = {shift, (int32_t *)p->multiplier};
    int32_t b;

    if (shift == NULL) {
        return;
    }
    esp_nn_set_depthwise_conv_scratch_buf(scratch);
    for (b = 0; b < p->batches; ++b) {
        esp_nn_depthwise_conv_s8(&input_dims, input + (size_t)b * in_batch, &filter_dims,
                                 p->weights, p->bias, &output_dims,
                                 output + (size_t)b * out_batch, &conv_params, &quant_data);
    }
}
