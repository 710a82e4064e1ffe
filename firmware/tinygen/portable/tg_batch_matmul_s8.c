/*
 * tg_batch_matmul_s8: int8 batched matrix product, no broadcasting, no fused activation.
 * Bit-exact with TFLM BATCH_MATMUL int8 (reference_ops::BatchMatMul).
 *
 * lhs     [in]  int8 (batches, m, k), or (batches, k, m) when adj_x; zero point
 *               p->lhs_zero_point.
 * rhs     [in]  int8 (batches, k, n), or (batches, n, k) when adj_y; zero point
 *               p->rhs_zero_point.
 * output  [out] int8 (batches, m, n); must not overlap lhs or rhs.
 *               Each operand's matrices and rows lie where its batch and row strides say
 *               (tg_kernels.h): packed, or a transpose the compiler folded in (attention's
 *               heads read from and written to (T, H, D) tensors).
 * p       [in]  tg_batch_matmul_params_t:
 *   batches >= 0; m, k, n >= 1; k <= 33025 (|a - zp| * |b - zp| <= 255 * 255 per term,
 *   so the int32 accumulator cannot overflow).
 *   adj_x, adj_y      0 or 1.
 *   *_batch_stride, *_row_stride >= 0, in elements; rows contiguous.
 *   zero points in [-128, 127]; multiplier in [0, INT32_MAX], shift in [-31, 30].
 *
 * out[b][i][j] = clamp(MBQM(sum_t (lhs[b][i][t] - zp_l) * (rhs[b][t][j] - zp_r), mult, shift)
 *                      + zp_out, -128, 127)
 *
 * The zero points enter through row and column sums, exactly (modulo 2^32, and the true
 * accumulator fits int32):
 *   sum_t (a_t - zp_l)(b_t - zp_r) = sum_t a_t b_t - zp_r sum_t a_t - zp_l sum_t b_t
 *                                    + k zp_l zp_r,
 * so the inner loops are raw int8 dot products, two lhs rows by two output columns at a
 * time (tg_dot.h when the rhs is (n, k); a strided variant when it is (k, n)): about 2.2
 * and 2.5 instructions per MAC on a Cortex-M4. Column sums are kept for TG_BMM_CHUNK
 * columns at a time on the stack (128 bytes). An adj_x lhs takes a plain strided loop.
 */
#include <stddef.h>

#include "../tg_kernels.h"
#include "../tg_math.h"
#include "tg_dot.h"

#define TG_BMM_CHUNK 32

/* acc += a0.b[:, 0], a0.b[:, 1], a1.b[:, 0], a1.b[:, 1] for a (k, n) rhs b with row
 * stride n (the rhs row stride): the lhs rows are contiguous, the rhs columns step by n. */
static void tg_bmm_dot_2x2_kn(const int8_t *a0, const int8_t *a1, const int8_t *b, size_t n,
                              int32_t len, int32_t acc[4])
{
    int32_t s00 = acc[0], s01 = acc[1], s10 = acc[2], s11 = acc[3];
    const int8_t *const end = a0 + len;

    while (a0 != end) {
        const int32_t x0 = *a0++, x1 = *a1++, y0 = b[0], y1 = b[1];
        s00 += x0 * y0;
        s01 += x0 * y1;
        s10 += x1 * y0;
        s11 += x1 * y1;
        b += n;
    }
    acc[0] = s00;
    acc[1] = s01;
    acc[2] = s10;
    acc[3] = s11;
}

/* One output: the raw dot product d plus the zero-point terms, requantized. */
static inline int8_t tg_bmm_output(int32_t d, int32_t row_term, int32_t col_term,
                                   const tg_batch_matmul_params_t *p)
{
    return tg_requantize_s8(tg_add_wrap_s32(d, tg_add_wrap_s32(row_term, col_term)),
                            p->multiplier, p->shift, p->output_zero_point, INT8_MIN,
                            INT8_MAX);
}

/* A plain strided loop for an adj_x lhs (not produced by tinygen's compiler today). */
static void tg_bmm_strided(const int8_t *lhs_b, const int8_t *rhs_b, int8_t *output,
                           const tg_batch_matmul_params_t *p)
{
    const int32_t m = p->m, k = p->k, n = p->n;
    const size_t lhs_row_step = p->adj_x ? 1u : (size_t)p->lhs_row_stride;
    const size_t lhs_depth_step = p->adj_x ? (size_t)p->lhs_row_stride : 1u;
    const size_t rhs_col_step = p->adj_y ? (size_t)p->rhs_row_stride : 1u;
    const size_t rhs_depth_step = p->adj_y ? 1u : (size_t)p->rhs_row_stride;
    int32_t i, j, t;

    for (i = 0; i < m; ++i) {
        const int8_t *lhs_row = lhs_b + (size_t)i * lhs_row_step;
        for (j = 0; j < n; ++j) {
            const int8_t *rhs_col = rhs_b + (size_t)j * rhs_col_step;
            int32_t acc = 0;
            for (t = 0; t < k; ++t) {
                acc += ((int32_t)lhs_row[(size_t)t * lhs_depth_step] - p->lhs_zero_point) *
                       ((int32_t)rhs_col[(size_t)t * rhs_depth_step] - p->rhs_zero_point);
            }
            output[(size_t)i * (size_t)p->out_row_stride + (size_t)j] =
                tg_requantize_s8(acc, p->multiplier, p->shift, p->output_zero_point,
                                 INT8_MIN, INT8_MAX);
        }
    }
}

void tg_batch_matmul_s8(const int8_t *lhs, const int8_t *rhs, int8_t *output,
                        const tg_batch_matmul_params_t *p)
{
    const int32_t m = p->m, k = p->k, n = p->n;
    const int32_t zp_l = p->lhs_zero_point, zp_r = p->rhs_zero_point;
    const int32_t adj_y = p->adj_y;
    const size_t row = (size_t)p->lhs_row_stride;     /* lhs row i at i * row */
    const size_t rhs_row = (size_t)p->rhs_row_stride; /* rhs row: n or k elements */
    const size_t out_row = (size_t)p->out_row_stride;
    /* k zp_l zp_r: |k * zp_l * zp_r| <= 33025 * 2^14 fits */
    const int32_t constant = k * zp_l * zp_r;
    int32_t col_term[TG_BMM_CHUNK]; /* -zp_l sum_t b_t + k zp_l zp_r, per column */
    int32_t b, i, j, j0, t;

    for (b = 0; b < p->batches; ++b) {
        const int8_t *const lhs_b = lhs + (size_t)b * (size_t)p->lhs_batch_stride;
        const int8_t *const rhs_b = rhs + (size_t)b * (size_t)p->rhs_batch_stride;
        int8_t *const out_b = output + (size_t)b * (size_t)p->out_batch_stride;

        if (p->adj_x) {
            tg_bmm_strided(lhs_b, rhs_b, out_b, p);
            continue;
        }
        for (j0 = 0; j0 < n; j0 += TG_BMM_CHUNK) {
            const int32_t cols = tg_min_s32(TG_BMM_CHUNK, n - j0);
            for (j = 0; j < cols; ++j) {
                col_term[j] = 0;
            }
            if (adj_y) { /* rhs (n, k): column j is row j */
                for (j = 0; j < cols; ++j) {
                    col_term[j] = tg_sum_s8(rhs_b + (size_t)(j0 + j) * rhs_row, k);
                }
            } else { /* rhs (k, n) */
                for (t = 0; t < k; ++t) {
                    const int8_t *const r = rhs_b + (size_t)t * rhs_row + (size_t)j0;
                    for (j = 0; j < cols; ++j) {
                        col_term[j] += r[j];
                    }
                }
            }
            for (j = 0; j < cols; ++j) { /* |sum| <= k * 128: the products fit */
                col_term[j] = constant - zp_l * col_term[j];
            }
            for (i = 0; i < m; i += 2) {
                const int32_t two_rows = i + 1 < m;
                const int8_t *const a0 = lhs_b + (size_t)i * row;
                const int8_t *const a1 = two_rows ? a0 + row : a0;
                const int32_t r0 = -zp_r * tg_sum_s8(a0, k);
                const int32_t r1 = -zp_r * tg_sum_s8(a1, k);
                int8_t *const o0 = out_b + (size_t)i * out_row + (size_t)j0;
                int8_t *const o1 = o0 + out_row;

                for (j = 0; j < cols; j += 2) {
                    const int32_t two_cols = j + 1 < cols;
                    int32_t acc[4] = {0, 0, 0, 0};
                    if (adj_y) {
                        const int8_t *const b0 = rhs_b + (size_t)(j0 + j) * rhs_row;
                        tg_dot_2x2_s8(a0, a1, b0, two_cols ? b0 + rhs_row : b0, k, acc);
                    } else {
                        const int8_t *const b0 = rhs_b + j0 + j;
                        if (two_cols) { /* the column pair j, j + 1 */
                            tg_bmm_dot_2x2_kn(a0, a1, b0, rhs_row, k, acc);
                        } else { /* the last column of an odd count */
                            for (t = 0; t < k; ++t) {
                                acc[0] += (int32_t)a0[t] * b0[(size_t)t * rhs_row];
                                acc[2] += (int32_t)a1[t] * b0[(size_t)t * rhs_row];
                            }
                        }
                    }
                    o0[j] = tg_bmm_output(acc[0], r0, col_term[j], p);
                    if (two_cols) {
                        o0[j + 1] = tg_bmm_output(acc[1], r0, col_term[j + 1], p);
                    }
                    if (two_rows) {
                        o1[j] = tg_bmm_output(acc[2], r1, col_term[j], p);
                        if (two_cols) {
                            o1[j + 1] = tg_bmm_output(acc[3], r1, col_term[j + 1], p);
                        }
                    }
                }
            }
        }
    }
}
