/*
 * tg_add_s8 (ESP-NN): esp_nn_add_elementwise_s8. Same contract as ../portable/tg_add_s8.c
 * (TFLM ADD int8, non-broadcast).
 *
 * input1, input2 [in]  int8 (size); output [out] int8 (size), may alias an input.
 * p              [in]  tg_add_params_t; all three shifts <= 0 (ESP-NN requires it, and
 *                      TFLM's ADD multipliers are all below one).
 *
 * Arguments: input offsets = -zero_point, multipliers and shifts unchanged, left_shift,
 * out_offset = +zp_out, activation [act_min, act_max], size.
 */
#include "sdkconfig.h"

#include "esp_nn.h"

#include "../tg_kernels.h"

void tg_add_s8(const int8_t *input1, const int8_t *input2, int8_t *output,
               const tg_add_params_t *p)
{
    esp_nn_add_elementwise_s8(input1, input2, -p->input1_zero_point, -p->input2_zero_point,
                              p->input1_multiplier, p->input2_multiplier, p->input1_shift,
                              p->input2_shift, p->left_shift, output, p->output_zero_point,
                              p->output_multiplier, p->output_shift, p->act_min, p->act_max,
                              p->size);
}
