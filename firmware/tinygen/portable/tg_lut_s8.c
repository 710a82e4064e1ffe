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
    const int8_t *table = p->table;
    int32_t i;

    for (i = 0; i < p->size; ++i) {
        output[i] = table[(int32_t)input[i] + 128];
    }
}
