/*
 * tg_slice_s8: copies a box out of an int8 tensor of rank <= 4.
 * Same result as TFLM SLICE / STRIDED_SLICE with unit strides (pure data movement).
 *
 * input   [in]  int8 in_shape[0] x ... x in_shape[3], row-major (leading 1s for a lower
 *               rank).
 * output  [out] int8 out_shape[0] x ... x out_shape[3]; must not overlap input.
 * p       [in]  tg_slice_params_t:
 *   in_shape[d] >= 1; begin[d] >= 0; out_shape[d] >= 1; begin[d] + out_shape[d] <=
 *   in_shape[d].
 *
 * output[i0][i1][i2][i3] = input[begin[0] + i0][begin[1] + i1][begin[2] + i2][begin[3] + i3]
 * Cost: one memcpy of out_shape[3] bytes per output row.
 */
#include <stddef.h>
#include <string.h>

#include "../tg_kernels.h"

void tg_slice_s8(const int8_t *input, int8_t *output, const tg_slice_params_t *p)
{
    const int32_t *n = p->in_shape;
    const size_t row = (size_t)p->out_shape[3];
    int32_t i0, i1, i2;

    for (i0 = 0; i0 < p->out_shape[0]; ++i0) {
        for (i1 = 0; i1 < p->out_shape[1]; ++i1) {
            for (i2 = 0; i2 < p->out_shape[2]; ++i2) {
                const size_t src = ((((size_t)(p->begin[0] + i0) * (size_t)n[1] +
                                      (size_t)(p->begin[1] + i1)) * (size_t)n[2] +
                                     (size_t)(p->begin[2] + i2)) * (size_t)n[3]) +
                                   (size_t)p->begin[3];
                memcpy(output, input + src, row);
                output += row;
            }
        }
    }
}
