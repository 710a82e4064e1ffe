/*
 * tg_concat_s8: joins int8 tensors along one axis.
 * Same result as TFLM CONCATENATION for int8, whose inputs and output share one
 * quantization (pure data movement).
 *
 * inputs  [in]  parts pointers; inputs[j] is int8 (outer, sizes[j]) row-major: the dims
 *               before the axis flattened into outer, the axis and the dims after it into
 *               sizes[j]. A constant part (zero padding) points into flash.
 * output  [out] int8 (outer, sizes[0] + ... + sizes[parts-1]); must not overlap inputs.
 * p       [in]  tg_concat_params_t:
 *   outer >= 0; parts in [1, 4]; sizes[j] >= 1.
 *   consts[j]         the constant part j, or NULL when it comes from the arena (the
 *                     executor resolves this before the call).
 *
 * output[o][sizes[0] + ... + sizes[j-1] + c] = inputs[j][o][c]
 * Cost: parts memcpys per outer index.
 */
#include <stddef.h>
#include <string.h>

#include "../tg_kernels.h"

void tg_concat_s8(const int8_t *const *inputs, int8_t *output, const tg_concat_params_t *p)
{
    int32_t o, j;

    for (o = 0; o < p->outer; ++o) {
        for (j = 0; j < p->parts; ++j) {
            const size_t len = (size_t)p->sizes[j];
            memcpy(output, inputs[j] + (size_t)o * len, len);
            output += len;
        }
    }
}
