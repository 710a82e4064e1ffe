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
 * Cortex-M55 (MVE, ARM_MATH_MVEI): the op's rows (time frames) are a matrix, so the
 * adapter calls arm_nn_mat_mult_nt_t_s8 (CMSIS-NN's matrix x transposed-matrix kernel, the
 * one arm_convolve_1x1_s8_fast uses) instead of arm_fully_connected_per_channel_s8's
 * vector x matrix per row: it loads each weight row once per 4 input rows and sums the
 * weight row in the same loop (VADDVA beside the four VMLADAVs), so it needs no kernel
 * sums and no scratch beyond the widened shifts. Its requantization is arm_nn_requantize's
 * (TFLM's double rounding), so the result stays bit-exact. Inner loop: 11 instructions per
 * 16 columns of 4 rows (0.17 per MAC) plus about 20 per 4 outputs.
 *
 * On cores with the DSP extension and without MVE this adapter runs tinygen's own
 * matrix x matrix kernel instead (../portable/tg_fc_dsp.h: 2 rows x 4 channels per tile,
 * 0.9 instructions per MAC on a Cortex-M4 against 2.5 for arm_fully_connected_s8,
 * which takes one row at a time), with tg_fc_dsp_words(rows, in_features) words of the
 * scratch. Both are bit-exact with TFLM, so the outputs are the same.
 *
 * Cores without the DSP extension call arm_fully_connected_per_channel_s8; there
 * arm_fully_connected_s8_get_buffer_size is 0 and nothing is precomputed.
 */
#include <stddef.h>

#include "arm_nnfunctions.h"
#include "arm_nnsupportfunctions.h"
#include "tg_cmsis_nn_isa.h"

#include "../tg_kernels.h"
#include "../tg_nn_scratch.h"
#include "../portable/tg_fc_dsp.h"

#if defined(ARM_MATH_DSP) && !defined(ARM_MATH_MVEI) && TG_FC_DSP
#define TG_FC_USE_DSP_TILES 1
#else
#define TG_FC_USE_DSP_TILES 0
#endif

#if defined(ARM_MATH_MVEI)
void tg_fully_connected_s8(const int8_t *input, int8_t *output, const tg_fc_params_t *p)
{
    int8_t *buf = NULL;
    const int32_t *const shift = tg_nn_shifts(p->shift, p->out_features, 0, &buf);

    if (shift == NULL) {
        return;
    }
    if (arm_nn_mat_mult_nt_t_s8(input, p->weights, p->bias, output, p->multiplier, shift,
                                p->rows, p->out_features, p->in_features,
                                -p->input_zero_point, p->output_zero_point, p->act_min,
                                p->act_max, p->out_features,
                                p->in_features) != ARM_CMSIS_NN_SUCCESS) {
        tg_nn_fail();
    }
}
#elif TG_FC_USE_DSP_TILES
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
