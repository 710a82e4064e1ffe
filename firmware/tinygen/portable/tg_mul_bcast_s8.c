/*
 * tg_mul_bcast_s8: int8 elementwise mul of two tensors that broadcast (rank <= 4),
 * e.g. an activation and a scalar or per-channel constant.
 * Bit-exact with TFLM reference_integer_ops::BroadcastMul6DSlow (the same per-element
 * arithmetic as tg_mul_s8, see tg_elementwise.h).
 *
 * input1  [in]  int8, zero point p->op.input1_zero_point, read at
 *               i0 * stride1[0] + i1 * stride1[1] + i2 * stride1[2] + i3 * stride1[3].
 * input2  [in]  int8, zero point p->op.input2_zero_point, read with stride2; the executor
 *               passes p->input2_const when it is not NULL (a constant in flash).
 * output  [out] int8, out_shape[0] * ... * out_shape[3] elements, row-major; must not
 *               overlap the inputs.
 * p       [in]  tg_mul_bcast_params_t:
 *   op                the same-shape parameters (op.size is not read), ranges as tg_mul_s8.
 *   out_shape[d] >= 1 (leading 1s for a lower rank).
 *   stride1/2[d] >= 0 in elements: the input's row-major stride, 0 on a broadcast dim.
 *
 * out[i0][i1][i2][i3] = mul_one(input1[sum_d i_d * stride1[d]], input2[sum_d i_d * stride2[d]])
 * Cost: one mul per output element plus three index multiplies per innermost row.
 */
#include "tg_elementwise.h"

void tg_mul_bcast_s8(const int8_t *input1, const int8_t *input2, int8_t *output,
                     const tg_mul_bcast_params_t *p)
{
    TG_BROADCAST_LOOP(input1, input2, output, p, tg_mul_one_s8);
}
