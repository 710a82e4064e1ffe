/*
 * tg_batch_matmul_s8 (CMSIS-NN): CMSIS-NN's vector x transposed-matrix kernel
 * arm_nn_vec_mat_mult_t_s8 per output row, with the weight sums of arm_vector_sum_s8
 * on MVE cores: the loop arm_batch_matmul_s8 (CMSIS-NN v7) runs, called directly so that
 * the operands and the result may lie at the strides the compiler gives them.
 * Same contract as ../portable/tg_batch_matmul_s8.c (see ../tg_kernels.h); bit-exact with
 * TFLM BATCH_MATMUL int8 (TFLM's cmsis_nn/batch_matmul.cc calls arm_batch_matmul_s8).
 *
 * lhs     [in]  int8, matrix b row i at lhs + b * lhs_batch_stride + i * lhs_row_stride
 *               ((m, k) rows; (k, m) when adj_x), zero point p->lhs_zero_point.
 * rhs     [in]  int8, likewise ((k, n); (n, k) when adj_y), zero point p->rhs_zero_point.
 * output  [out] int8, (m, n) rows at the output strides; must not overlap lhs or rhs.
 * p       [in]  tg_batch_matmul_params_t (ranges as the portable kernel's).
 *
 * CMSIS-NN wants the rhs as n contiguous rows of k (RHS "transposed"), and one lhs row
 * of k contiguous values per call. Per batch the adapter
 *   - uses the rhs in place when adj_y and rhs_row_stride == k; otherwise copies it into
 *     the scratch as (n, k) (a strided row copy for adj_y, a transpose for (k, n):
 *     n * k bytes, fewer instructions than the products, k * n * m MACs);
 *   - on MVE (Cortex-M55) fills n int32 kernel sums, lhs_offset * (sum_t b_t + k *
 *     rhs_offset), with arm_vector_sum_s8 (the rhs is an activation, so they cannot be
 *     computed at build time);
 *   - copies an adj_x lhs into the scratch as (m, k) (the compiler does not produce one);
 *   - calls arm_nn_vec_mat_mult_t_s8 for each of the m rows: lhs_offset = -zp_lhs,
 *     rhs_offset = -zp_rhs, dst_offset = +zp_out, per-tensor multiplier and shift, clamp
 *     [-128, 127], output step 1.
 * Scratch, in this order, each part rounded up to 16 bytes: kernel sums 4 * n (MVE only),
 * the (n, k) rhs (unless used in place), the (m, k) lhs (adj_x only); the compiler sizes
 * it the same way (tinygen/targets/platformio.py).
 */
#include <stddef.h>

#include "arm_nnfunctions.h"
#include "arm_nnsupportfunctions.h"
#include "tg_cmsis_nn_isa.h"

#include "../tg_kernels.h"
#include "../tg_nn_scratch.h"
#include "../portable/tg_fc_dsp.h"

#define TG_BMM_ROUND16(bytes) ((((bytes) + 15) / 16) * 16)

#if defined(ARM_MATH_DSP) && !defined(ARM_MATH_MVEI) && TG_FC_DSP
/* DSP cores without MVE (Cortex-M4, M7): tinygen's 2 x 4 SMLAD tiles
 * (tg_fc_dsp_matmul_s8) read both operands at the compiler's strides and widen them once
 * per batch, where arm_nn_vec_mat_mult_t_s8 per row took 4.6 instructions per MAC on
 * mcu-tiny's attention (m = n = k = 24). Scratch: tg_fc_dsp_matmul_words(m, k) words. */
void tg_batch_matmul_s8(const int8_t *lhs, const int8_t *rhs, int8_t *output,
                        const tg_batch_matmul_params_t *p)
{
    const int32_t words = tg_fc_dsp_matmul_words(p->m, p->k);
    int8_t *const buf = tg_nn_scratch(4 * words);
    /* lhs element (i, t) and rhs element (t, j), as steps from the matrix start */
    const size_t a_row = p->adj_x ? 1u : (size_t)p->lhs_row_stride;
    const size_t a_col = p->adj_x ? (size_t)p->lhs_row_stride : 1u;
    const size_t b_row = p->adj_y ? (size_t)p->rhs_row_stride : 1u; /* b's row j: column j */
    const size_t b_col = p->adj_y ? 1u : (size_t)p->rhs_row_stride;
    int32_t b;

    if (buf == NULL) {
        return; /* counted by tg_nn_scratch */
    }
    for (b = 0; b < p->batches; ++b) {
        (void)tg_fc_dsp_matmul_s8(lhs + (size_t)b * (size_t)p->lhs_batch_stride, a_row, a_col,
                                  rhs + (size_t)b * (size_t)p->rhs_batch_stride, b_row, b_col,
                                  output + (size_t)b * (size_t)p->out_batch_stride,
                                  (size_t)p->out_row_stride, p->m, p->k, p->n,
                                  p->lhs_zero_point, p->rhs_zero_point,
                                  p->output_zero_point, p->multiplier, p->shift,
                                  (int32_t *)(void *)buf, words);
    }
}
#else

/* dst (rows, cols) contiguous = src with element (r, c) at src[r * row_step + c * col_step]. */
static void tg_bmm_gather(int8_t *dst, const int8_t *src, int32_t rows, int32_t cols,
                          size_t row_step, size_t col_step)
{
    int32_t r, c;

    for (r = 0; r < rows; ++r) {
        const int8_t *s = src + (size_t)r * row_step;
        for (c = 0; c < cols; ++c) {
            *dst++ = s[(size_t)c * col_step];
        }
    }
}

void tg_batch_matmul_s8(const int8_t *lhs, const int8_t *rhs, int8_t *output,
                        const tg_batch_matmul_params_t *p)
{
    const int32_t m = p->m, k = p->k, n = p->n;
    const int32_t rhs_in_place = p->adj_y && p->rhs_row_stride == k;
#if defined(ARM_MATH_MVEI)
    const int32_t sums_bytes = TG_BMM_ROUND16(4 * n);
#else
    const int32_t sums_bytes = 0;
#endif
    const int32_t rhs_bytes = rhs_in_place ? 0 : TG_BMM_ROUND16(n * k);
    const int32_t lhs_bytes = p->adj_x ? m * k : 0;
    const int32_t bytes = sums_bytes + rhs_bytes + lhs_bytes;
    int8_t *const buf = bytes > 0 ? tg_nn_scratch(bytes) : NULL;
    int32_t *const sums = sums_bytes > 0 && buf != NULL ? (int32_t *)(void *)buf : NULL;
    int8_t *const rhs_copy = buf != NULL ? buf + sums_bytes : NULL;
    int8_t *const lhs_copy = buf != NULL ? buf + sums_bytes + rhs_bytes : NULL;
    int32_t b, i;

    if (bytes > 0 && buf == NULL) {
        return; /* counted by tg_nn_scratch */
    }
    for (b = 0; b < p->batches; ++b) {
        const int8_t *lhs_b = lhs + (size_t)b * (size_t)p->lhs_batch_stride;
        const int8_t *rhs_b = rhs + (size_t)b * (size_t)p->rhs_batch_stride;
        int8_t *const out_b = output + (size_t)b * (size_t)p->out_batch_stride;
        size_t lhs_step = (size_t)p->lhs_row_stride;

        if (!rhs_in_place) {
            if (p->adj_y) { /* n rows of k at the row stride */
                tg_bmm_gather(rhs_copy, rhs_b, n, k, (size_t)p->rhs_row_stride, 1u);
            } else { /* k rows of n: column j becomes row j */
                tg_bmm_gather(rhs_copy, rhs_b, n, k, 1u, (size_t)p->rhs_row_stride);
            }
            rhs_b = rhs_copy;
        }
        if (p->adj_x) { /* k rows of m: column i becomes row i */
            tg_bmm_gather(lhs_copy, lhs_b, m, k, 1u, (size_t)p->lhs_row_stride);
            lhs_b = lhs_copy;
            lhs_step = (size_t)k;
        }
#if defined(ARM_MATH_MVEI)
        if (arm_vector_sum_s8(sums, k, n, rhs_b, -p->lhs_zero_point, -p->rhs_zero_point,
                              NULL) != ARM_CMSIS_NN_SUCCESS) {
            tg_nn_fail();
            return;
        }
#endif
        for (i = 0; i < m; ++i) {
            if (arm_nn_vec_mat_mult_t_s8(lhs_b + (size_t)i * lhs_step, rhs_b, sums, NULL,
                                         out_b + (size_t)i * (size_t)p->out_row_stride,
                                         -p->lhs_zero_point, p->output_zero_point,
                                         p->multiplier, p->shift, k, n, INT8_MIN, INT8_MAX,
                                         1, -p->rhs_zero_point) != ARM_CMSIS_NN_SUCCESS) {
                tg_nn_fail();
                return;
            }
        }
    }
}
#endif
