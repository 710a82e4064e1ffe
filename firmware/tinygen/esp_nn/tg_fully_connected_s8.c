/*
 * tg_fully_connected_s8 (ESP-NN): esp_nn_fully_connected_per_ch_s8, one call per input
 * row, as TFLM's esp_nn/fully_connected.cc does. Same contract as
 * ../portable/tg_fully_connected_s8.c.
 *
 * input   [in]  int8 (rows, in_features), zero point p->input_zero_point.
 * output  [out] int8 (rows, out_features); must not overlap input.
 * p       [in]  tg_fc_params_t; in_features, out_features < 65536 (ESP-NN's uint16_t).
 *
 * Arguments: input_offset = -zp_in, row_len = in_features, filter_offset = 0,
 * out_channels = out_features, out_offset = +zp_out, out_shift and out_mult per channel
 * (shift first), activation [act_min, act_max]. Nothing is precomputed. Scratch: the
 * shifts widened to int32 (tinygen stores them as int8; tg_nn_shifts).
 */
#include <stddef.h>

#include "sdkconfig.h"

#include "esp_nn.h"

#include "../tg_kernels.h"
#include "../tg_nn_scratch.h"

void tg_fully_connected_s8(const int8_t *input, int8_t *output, const tg_fc_params_t *p)
{
    int8_t *unused = NULL;
    const int32_t *const shift = tg_nn_shifts(p->shift, p->out_features, 0, &unused);
    int32_t r;

    if (shift == NULL) {
        return;
    }
    for (r = 0; r < p->rows; ++r) {
        esp_nn_fully_connected_per_ch_s8(input + (size_t)r * (size_t)p->in_features,
                                         -p->input_zero_point, (uint16_t)p->in_features,
                                         p->weights, 0, p->bias,
                                         output + (size_t)r * (size_t)p->out_features,
                                         (uint16_t)p->out_features, p->output_zero_point,
                                         shift, p->multiplier, p->act_min, p->act_max);
    }
}
