/*
 * tg_batch_matmul_s8: int8 batched matrix product, no broadcasting, no fused activation.
 * Bit-exact with TFLM BATCH_MATMUL int8 (reference_ops::BatchMatMul).
 *
 * lhs     [in]  int8 (batches, m, k), or (batches, k, m) when adj_x; zero point
 *               p->lhs_zero_point.
 * rhs     [in]  int8 (batches, k, n), or (batches, n, k) when adj_y; zero point
 *               p->rhs_zero_point.
 * output  [out] int8 (batches, m, n); must not overlap lhs or rhs.
 * p       [in]  tg_batch_matmul_params_t:
 *   batches >= 0; m, k, n >= 1; k <= 33025 (|a - zp| * |b - zp| <= 255 * 255 per term,
 *   so the int32 accumulator cannot overflow).
 *   adj_x, adj_y      0 or 1.
 *   zero points in [-128, 127]; multiplier in [0, INT32_MAX], shift in [-31, 30].
 *
 * out[b][i][j] = clamp(MBQM(sum_t (lhs[b][i][t] - zp_l) * (rhs[b][t][j] - zp_r), mult, shift)
 *                      + zp_out, -128, 127)
 */
#include <stddef.h>

#include "../tg_kernels.h"
#include "../tg_math.h"

void tg_batch_matmul_s8(const int8_t *lhs, const int8_t *rhs, int8_t *output,
                        const tg_batch_matmul_params_t *p)
{
    const int32_t m = p->m, k = p->k, n = p->n;
    const int32_t lhs_offset = -p->lhs_zero_point;
    const int32_t rhs_offset = -p->rhs_zero_point;
    /* element (i, t) of the lhs and (t, j) of the rhs, in either storage order */
    const size_t lhs_row_step = p->adj_x ? 1u : (size_t)k;
    const size_t lhs_depth_step = p->adj_x ? (size_t)m : 1u;
    const size_t rhs_col_step = p->adj_y ? (size_t)k : 1u;
    const size_t rhs_depth_step = p->adj_y ? 1u : (size_t)n;
    const size_t lhs_size = (size_t)m * (size_t)k;
    const size_t rhs_size = (size_t)k * (size_t)n;
    int32_t b, i, j, t;

    for (b = 0; b < p->batches; ++b) {
        const int8_t *lhs_b = lhs + (size_t)b * lhs_size;
        const int8_t *rhs_b = rhs + (size_t)b * rhs_size;
        for (i = 0; i < m; ++i) {
            const int8_t *lhs_row = lhs_b + (size_t)i * lhs_row_step;
            for (j = 0; j < n; ++j) {
                const int8_t *rhs_col = rhs_b + (size_t)j * rhs_col_step;
                int32_t acc = 0;
                for (t = 0; t < k; ++t) {
                    acc += ((int32_t)lhs_row[(size_t)t * lhs_depth_step] + lhs_offset) *
                           ((int32_t)rhs_col[(size_t)t * rhs_depth_step] + rhs_offset);
                }
                *output++ = tg_requantize_s8(acc, p->multiplier, p->shift,
                                             p->output_zero_point, INT8_MIN, INT8_MAX);
            }
        }
    }
}
