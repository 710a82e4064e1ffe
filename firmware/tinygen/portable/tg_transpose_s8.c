/*
 * tg_transpose_s8: permutes the dimensions of an int8 tensor of rank 1..4.
 * Same result as TFLM TRANSPOSE (pure data movement; no quantization change).
 *
 * input   [in]  int8, shape in_shape[0..rank), row-major.
 * output  [out] int8, shape (in_shape[perm[0]], ..., in_shape[perm[rank-1]]), row-major;
 *               must not overlap input.
 * p       [in]  tg_transpose_params_t:
 *   rank              in [1, 4].
 *   in_shape          rank entries >= 1 (entries past rank are ignored).
 *   perm              a permutation of 0..rank-1: output dim d is input dim perm[d].
 */
#include <stddef.h>

#include "../tg_kernels.h"

void tg_transpose_s8(const int8_t *input, int8_t *output, const tg_transpose_params_t *p)
{
    /* Pad to rank 4 with leading size-1 dims, then walk the output in order. */
    const int32_t lead = 4 - p->rank;
    int32_t shape[4];
    size_t in_stride[4];
    int32_t out_dim[4];
    size_t step[4];
    int32_t d, i0, i1, i2, i3;

    for (d = 0; d < 4; ++d) {
        shape[d] = d < lead ? 1 : p->in_shape[d - lead];
    }
    in_stride[3] = 1u;
    for (d = 2; d >= 0; --d) {
        in_stride[d] = in_stride[d + 1] * (size_t)shape[d + 1];
    }
    for (d = 0; d < 4; ++d) {
        const int32_t src = d < lead ? d : p->perm[d - lead] + lead;
        out_dim[d] = shape[src];
        step[d] = in_stride[src];
    }
    for (i0 = 0; i0 < out_dim[0]; ++i0) {
        for (i1 = 0; i1 < out_dim[1]; ++i1) {
            for (i2 = 0; i2 < out_dim[2]; ++i2) {
                const int8_t *src =
                    input + (size_t)i0 * step[0] + (size_t)i1 * step[1] + (size_t)i2 * step[2];
                for (i3 = 0; i3 < out_dim[3]; ++i3) {
                    *output++ = src[(size_t)i3 * step[3]];
                }
            }
        }
    }
}
