/*
 * tg_lut_s8: int8 elementwise function through a 256-entry table. The compiler fills the
 * table with TFLM's LOGISTIC (reference_integer_ops::Logistic) of every int8 value, so the
 * result is bit-exact with it; any other int8 -> int8 function works the same way.
 *
 * input   [in]  int8 (size).
 * output  [out] int8 (size); may equal input (in place), otherwise must not overlap it.
 * p       [in]  tg_lut_params_t:
 *   size >= 0.
 *   table             int8 (256): table[x + 128] is the output for input x.
 *
 * out[i] = table[in[i] + 128]
 */
#include "../tg_kernels.h"

void tg_lut_s8(const int8_t *input, int8_t *output, const tg_lut_params_t *p)
{
    const int8_t *const table = p->table + 128; /* table[x] for x in [-128, 127] */
    const int32_t size = p->size;
    int32_t i = 0;

    for (; i + 4 <= size; i += 4) {
        const int8_t x0 = input[i], x1 = input[i + 1], x2 = input[i + 2], x3 = input[i + 3];
        output[i] = table[x0];
        output[i + 1] = table[x1];
        output[i + 2] = table[x2];
        output[i + 3] = table[x3];
    }
    for (; i < size; ++i) {
        output[i] = table[input[i]];
    }
}
