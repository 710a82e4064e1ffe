/*
 * tg_add_s8 (CMSIS-NN): arm_elementwise_add_s8. Same contract as ../portable/tg_add_s8.c
 * (TFLM ADD int8, non-broadcast).
 *
 * input1, input2 [in]  int8 (size); output [out] int8 (size), may alias an input.
 * p              [in]  tg_add_params_t.
 *
 * Arguments: input offsets = -zero_point (range [-127, 128]), out_offset = +zp_out,
 * multipliers and shifts unchanged, left_shift (20), activation [act_min, act_max],
 * block_size = size.
 *
 * Cores without MVE (Cortex-M4/M7) build the portable kernel here instead, which is
 * faster there (about 20 instructions an element against 81 on a Cortex-M4: CMSIS-NN
 * rescales both inputs per element, the portable kernel tabulates them); both are
 * bit-exact with TFLM.
 */
#include "arm_nnfunctions.h"
#include "tg_cmsis_nn_isa.h"

#include "../tg_kernels.h"
#include "../tg_nn_scratch.h"

#if defined(ARM_MATH_MVEI)
void tg_add_s8(const int8_t *input1, const int8_t *input2, int8_t *output,
               const tg_add_params_t *p)
{
    if (arm_elementwise_add_s8(input1, input2, -p->input1_zero_point, p->input1_multiplier,
                               p->input1_shift, -p->input2_zero_point, p->input2_multiplier,
                               p->input2_shift, p->left_shift, output, p->output_zero_point,
                               p->output_multiplier, p->output_shift, p->act_min, p->act_max,
                               p->size) != ARM_CMSIS_NN_SUCCESS) {
        tg_nn_fail();
    }
}
#else
#include "../portable/tg_add_s8.c"
#endif
