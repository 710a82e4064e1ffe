/*
 * tg_fully_connected_s8 (CMSIS-NN): arm_fully_connected_per_channel_s8.
 * Same contract as ../portable/tg_fully_connected_s8.c (see ../tg_kernels.h); CMSIS-NN
 * is bit-exact with TFLM's reference FullyConnectedPerChannel.
 *
 * input   [in]  int8 (rows, in_features), zero point p->input_zero_point.
 * output  [out] int8 (rows, out_features); must not overlap input.
 * p       [in]  tg_fc_params_t; weights (out_features, in_features) symmetric int8;
 *               shifts int8, widened to CMSIS-NN's int32 in the scratch (tg_nn_shifts).
 *
 * CMSIS-NN layout: input_dims [N = rows, 1, 1, C = in_features]; filter_dims
 * [N = accumulation depth = in_features, 1, 1, C = out_features]; output_dims
 * [N = rows, 1, 1, C = out_features]. fc_params: input_offset = -zp_in,
 * filter_offset = 0, output_offset = +zp_out, activation = [act_min, act_max].
 *
 * Precomputed data: with MVE (Cortex-M55) the kernel reads per-output "kernel sums",
 * bias[o] + input_offset * sum_i w[o][i], from ctx->buf and ignores bias_data
 * (arm_fully_connected_s8_get_buffer_size returns out_features * 4 bytes). They depend
 * on the per-use input zero point and bias, so this adapter fills them with
 * arm_vector_sum_s8 on every call (out_features * in_features additions, i.e. one row of
 * the product); a compiler pass could emit them as const per-use tables instead. With the
 * DSP extension (Cortex-M4/M7) or none the buffer size is 0 and nothing is precomputed.
 *
 * On cores with the DSP extension and without MVE this adapter runs tinygen's own
 * matrix x matrix kernel instead (../portable/tg_fc_dsp.h: 2 rows x 4 channels per tile,
 * about 0.8 instructions per MAC on a Cortex-M4 against 2.5 for arm_fully_connected_s8,
 * which takes one row at a time), with tg_fc_dsp_words(rows, in_features) words of the
 * scratch. Both are bit-exact with TFLM, so the outputs are the same.
 */
#include <stddef.h>

#include "arm_nnfunctions.h"
#include "tg_cmsis_nn_isa.h"

#include "../tg_kernels.h"
#include "../tg_nn_scratch.h"
#include "../portable/tg_fc_dsp.h"

#if defined(ARM_MATH_DSP) && !defined(ARM_MATH_MVEI) && TG_FC_DSP
#define TG_FC_USE_DSP_TILES 1
#else
#define TG_FC_USE_DSP_TILES 0
#endif

#if TG_FC_USE_DSP_TILES
void tg_fully_connected_s8(const int8_t *input, int8_t *output, const tg_fc_params_t *p)
{
    const int32_t words = tg_fc_dsp_words(p->rows, p->in_features);
    int8_t *const buf = tg_nn_scratch(words * 4);

    if (buf == NULL) {
        return;
    }
    (void)tg_fc_dsp_s8(input, output, p, (int32_t *)(void *)buf, words);
}
#else
void tg_fully_connected_s8(const int8_t *input, int8_t *output, const tg_fc_params_t *p)
{
    const cmsis_nn_dims input_dims = {p->rows, 1, 1, p->in_features};
    const cmsis_nn_dims filter_dims = {p->in_features, 1, 1, p->out_features};
    const cmsis_nn_dims bias_dims = {1, 1, 1, p->out_features};
    const cmsis_nn_dims output_dims = {p->rows, 1, 1, p->out_features};
    const cmsis_nn_fc_params fc_params = {
        -p->input_zero_point, 0, p->output_zero_point, {p->act_min, p->act_max}};
    const int32_t buf_size = arm_fully_connected_s8_get_buffer_size(&filter_dims);
    int8_t *buf = NULL;
    int32_t *const shift = tg_nn_shifts(p->shift, p->out_features, buf_size, &buf);
    /* CMSIS-NN takes non-const pointers here but only reads them. */
    const cmsis_nn_per_channel_quant_params quant_params = {(int32_t *)p->multiplier, shift};
    cmsis_nn_context ctx = {NULL, 0};

    if (shift == NULL) {
        return;
    }
    if (buf != NULL) {
        if (arm_vector_sum_s8((int32_t *)(void *)buf, p->in_features, p->out_features,
                              p->weights, -p->input_zero_point, 0,
                              p->bias) != ARM_CMSIS_NN_SUCCESS) {
            tg_nn_fail();
            return;
        }
        ctx.buf = buf;
        ctx.size = buf_size;
    }
    if (arm_fully_connected_per_channel_s8(&ctx, &fc_params, &quant_params, &input_dims, input,
                                           &filter_dims, p->weights, &bias_dims, p->bias,
                                           &output_dims, output) != ARM_CMSIS_NN_SUCCESS) {
        tg_nn_fail();
    }
}
#endif
