/*
 * tg_softmax_s8 (CMSIS-NN): arm_softmax_s8, documented as bit-accurate with TFLM's int8
 * softmax. Same contract as ../portable/tg_softmax_s8.c: int8 in, int8 out with scale
 * 1/256 and zero point -128, over the last axis.
 *
 * input   [in]  int8 (rows, depth).
 * output  [out] int8 (rows, depth); must not overlap input.
 * p       [in]  tg_softmax_params_t: input_multiplier / input_left_shift (shift in
 *               [0, 31]) and diff_min, exactly as TFLM's cmsis_nn/softmax.cc passes them.
 *
 * Cores without MVE (Cortex-M4/M7) build the portable kernel here instead, which is
 * faster there (about 84 instructions an element against 525 on a Cortex-M4: CMSIS-NN
 * computes exp per element, the portable kernel tabulates the 256 differences); both are
 * bit-exact with TFLM.
 */
#include "arm_nnfunctions.h"
#include "tg_cmsis_nn_isa.h"

#include "../tg_kernels.h"

#if defined(ARM_MATH_MVEI)
void tg_softmax_s8(const int8_t *input, int8_t *output, const tg_softmax_params_t *p)
{
    arm_softmax_s8(input, p->rows, p->depth, p->input_multiplier, p->input_left_shift,
                   p->diff_min, output);
}
#else
#include "../portable/tg_softmax_s8.c"
#endif
