/*
 * tg_split_s8: splits an int8 tensor along its last dimension.
 * Same result as TFLM SPLIT / SPLIT_V on the last axis (pure data movement).
 *
 * input   [in]  int8 (rows, depth), row-major.
 * outputs [out] parts pointers; outputs[j] receives int8 (rows, sections[j]). None may
 *               overlap input or each other.
 * p       [in]  tg_split_params_t:
 *   rows >= 0; depth >= 1.
 *   parts             in [2, 4].
 *   sections          parts entries >= 1 that sum to depth.
 *
 * outputs[j][r][c] = input[r][sections[0] + ... + sections[j-1] + c]
 */
#include <stddef.h>
#include <string.h>

#include "../tg_kernels.h"

void tg_split_s8(const int8_t *input, int8_t *const *outputs, const tg_split_params_t *p)
{
    int32_t r, j;

    for (r = 0; r < p->rows; ++r) {
        const int8_t *src = input + (size_t)r * (size_t)p->depth;
        for (j = 0; j < p->parts; ++j) {
            const size_t len = (size_t)p->sections[j];
            memcpy(outputs[j] + (size_t)r * len, src, len);
            src += len;
        }
    }
}
