/*
 * tg_softmax_s8 (ESP-NN): esp_nn_softmax_s8, as TFLM's esp_nn/softmax.cc calls it. Same
 * contract as ../portable/tg_softmax_s8.c: int8 in, int8 out with scale 1/256 and zero
 * point -128, over the last axis.
 *
 * input   [in]  int8 (rows, depth).
 * output  [out] int8 (rows, depth); must not overlap input.
 * p       [in]  tg_softmax_params_t: mult = input_multiplier, shift = input_left_shift,
 *               diff_min; height = rows, width = depth.
 * Scratch: esp_nn_get_softmax_scratch_size(width, height) (4 * depth bytes on the
 * optimized path), handed over with esp_nn_set_softmax_scratch_buf; 4-byte aligned.
 */
#include <stddef.h>

#include "sdkconfig.h"

#include "esp_nn.h"

#include "../tg_kernels.h"
#include "../tg_nn_scratch.h"

void tg_softmax_s8(const int8_t *input, int8_t *output, const tg_softmax_params_t *p)
{
    int8_t *scratch = tg_nn_scratch(esp_nn_get_softmax_scratch_size(p->depth, p->rows));

    if (scratch == NULL) {
        return;
    }
    esp_nn_set_softmax_scratch_buf(scratch);
    esp_nn_softmax_s8(input, p->rows, p->depth, p->input_multiplier, p->input_left_shift,
                      p->diff_min, output);
}
