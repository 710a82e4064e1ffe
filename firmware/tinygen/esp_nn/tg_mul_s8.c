/*
 * tg_mul_s8 (ESP-NN): esp_nn_mul_elementwise_s8. Same contract as ../portable/tg_mul_s8.c
 * (TFLM MUL int8, non-broadcast).
 *
 * input1, input2 [in]  int8 (size); output [out] int8 (size), may alias an input.
 * p              [in]  tg_mul_params_t; output_shift <= 0 (ESP-NN documents it; the
 *                      compiler checks it before choosing this backend).
 *
 * Arguments: input offsets = -zero_point, out_offset = +zp_out, out_mult / out_shift,
 * activation [act_min, act_max], size.
 */
#include "sdkconfig.h"

#include "esp_nn.h"

#include "../tg_kernels.h"

void tg_mul_s8(const int8_t *input1, const int8_t *input2, int8_t *output,
               const tg_mul_params_t *p)
{
    esp_nn_mul_elementwise_s8(input1, input2, -p->input1_zero_point, -p->input2_zero_point,
                              output, p->output_zero_point, p->output_multiplier,
                              p->output_shift, p->act_min, p->act_max, p->size);
}
