/*
 * Test driver for the portable kernels (test code, not firmware).
 *
 * Reads a stream of cases on stdin and writes every case's outputs, concatenated, to
 * stdout; tests/test_c_kernels.py builds the stream and checks the bytes. All numbers
 * are little-endian. One case:
 *
 *   int32 op                  TG_OP_* below
 *   int32 n_scalars, int64 scalars[n_scalars]
 *   int32 n_blobs, then per blob: int32 item_size, int64 count, item_size*count bytes
 *   int32 n_outputs, int64 output_bytes[n_outputs]
 *
 * Each blob and each output gets its own heap block of exactly its size, so that the
 * address sanitizer catches any read or write outside a tensor.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tg_executor.h" /* the kernel kinds, TG_OP_*: one list for runtime and tests */
#include "tg_kernels.h"
#include "tg_math.h"

enum {
    /* tg_math.h helpers, elementwise over int32 blobs, int32 outputs */
    TG_OP_SRDHM = 20,           /* blobs a, b */
    TG_OP_ROUNDING_DIV_POT = 21, /* blobs x, exponent */
    TG_OP_MBQM = 22,            /* blobs x, multiplier, shift */
    TG_OP_EXP_NEG = 23,         /* blob a (<= 0); scalar integer_bits */
    TG_OP_ONE_OVER_ONE_PLUS_X = 24, /* blob a (>= 0) */
    TG_OP_ISQRT = 25,           /* blob v (uint64); uint64 outputs */
    TG_OP_REQUANT = 26          /* blobs x, multiplier, shift: tg_requant_scale */
};

#define MAX_SCALARS 64
#define MAX_BLOBS 8
#define MAX_OUTPUTS 4

static void fail(const char *what)
{
    fprintf(stderr, "tg_kernel_driver: %s\n", what);
    exit(2);
}

static int read_exact(void *dst, size_t n)
{
    return fread(dst, 1, n, stdin) == n;
}

static int32_t read_i32(void)
{
    int32_t v;
    if (!read_exact(&v, sizeof v)) {
        fail("truncated input");
    }
    return v;
}

static int64_t read_i64(void)
{
    int64_t v;
    if (!read_exact(&v, sizeof v)) {
        fail("truncated input");
    }
    return v;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n == 0 ? 1 : n);
    if (p == NULL) {
        fail("out of memory");
    }
    return p;
}

typedef struct {
    int64_t s[MAX_SCALARS];
    int32_t n_scalars;
    void *blob[MAX_BLOBS];
    int64_t blob_count[MAX_BLOBS];
    int32_t n_blobs;
    void *out[MAX_OUTPUTS];
    int64_t out_bytes[MAX_OUTPUTS];
    int32_t n_outputs;
} case_t;

static int32_t s32(const case_t *c, int32_t i)
{
    if (i >= c->n_scalars) {
        fail("missing scalar");
    }
    return (int32_t)c->s[i];
}

#define I8(c, i) ((const int8_t *)(c)->blob[i])
#define I32(c, i) ((const int32_t *)(c)->blob[i])
/* an optional int32 array: an empty blob means NULL */
#define I32_OR_NULL(c, i) ((c)->blob_count[i] == 0 ? NULL : (const int32_t *)(c)->blob[i])

static void run_conv(const case_t *c, int depthwise)
{
    tg_conv_params_t p;
    p.weights = I8(c, 1);
    p.bias = I32_OR_NULL(c, 2);
    p.multiplier = I32(c, 3);
    p.shift = I8(c, 4);
    p.batches = s32(c, 0);
    p.in_h = s32(c, 1);
    p.in_w = s32(c, 2);
    p.in_c = s32(c, 3);
    p.out_h = s32(c, 4);
    p.out_w = s32(c, 5);
    p.out_c = s32(c, 6);
    p.kernel_h = s32(c, 7);
    p.kernel_w = s32(c, 8);
    p.stride_h = s32(c, 9);
    p.stride_w = s32(c, 10);
    p.pad_h = s32(c, 11);
    p.pad_w = s32(c, 12);
    p.input_zero_point = s32(c, 13);
    p.output_zero_point = s32(c, 14);
    p.act_min = s32(c, 15);
    p.act_max = s32(c, 16);
    if (depthwise) {
        tg_depthwise_conv2d_s8(I8(c, 0), (int8_t *)c->out[0], &p);
    } else {
        tg_conv2d_s8(I8(c, 0), (int8_t *)c->out[0], &p);
    }
}

/* Elementwise kernels may run in place (scalar "in_place" set): the input is copied into
 * the output block, which is then passed as both. */
static const int8_t *maybe_in_place(const case_t *c, int32_t flag_index, int32_t blob,
                                    int64_t bytes)
{
    if (s32(c, flag_index) != 0) {
        memcpy(c->out[0], c->blob[blob], (size_t)bytes);
        return (const int8_t *)c->out[0];
    }
    return I8(c, blob);
}

/* Broadcast geometry: 12 scalars from ``first``: out_shape[4], stride1[4], stride2[4]. */
static void read_bcast_geometry(const case_t *c, int32_t first, int32_t *out_shape,
                                int32_t *stride1, int32_t *stride2)
{
    int32_t d;
    for (d = 0; d < 4; ++d) {
        out_shape[d] = s32(c, first + d);
        stride1[d] = s32(c, first + 4 + d);
        stride2[d] = s32(c, first + 8 + d);
    }
}

static void run_case(case_t *c, int32_t op)
{
    int64_t i, n;

    switch (op) {
    case TG_OP_FULLY_CONNECTED: {
        tg_fc_params_t p;
        p.weights = I8(c, 1);
        p.bias = I32_OR_NULL(c, 2);
        p.multiplier = I32(c, 3);
        p.shift = I8(c, 4);
        p.rows = s32(c, 0);
        p.in_features = s32(c, 1);
        p.out_features = s32(c, 2);
        p.input_zero_point = s32(c, 3);
        p.output_zero_point = s32(c, 4);
        p.act_min = s32(c, 5);
        p.act_max = s32(c, 6);
        tg_fully_connected_s8(I8(c, 0), (int8_t *)c->out[0], &p);
        break;
    }
    case TG_OP_CONV2D:
        run_conv(c, 0);
        break;
    case TG_OP_DEPTHWISE_CONV2D:
        run_conv(c, 1);
        break;
    case TG_OP_BATCH_MATMUL: {
        tg_batch_matmul_params_t p;
        p.batches = s32(c, 0);
        p.m = s32(c, 1);
        p.k = s32(c, 2);
        p.n = s32(c, 3);
        p.adj_x = s32(c, 4);
        p.adj_y = s32(c, 5);
        p.lhs_zero_point = s32(c, 6);
        p.rhs_zero_point = s32(c, 7);
        p.output_zero_point = s32(c, 8);
        p.multiplier = s32(c, 9);
        p.shift = s32(c, 10);
        p.rhs_const = NULL;
        p.lhs_batch_stride = s32(c, 11);
        p.lhs_row_stride = s32(c, 12);
        p.rhs_batch_stride = s32(c, 13);
        p.rhs_row_stride = s32(c, 14);
        p.out_batch_stride = s32(c, 15);
        p.out_row_stride = s32(c, 16);
        tg_batch_matmul_s8(I8(c, 0), I8(c, 1), (int8_t *)c->out[0], &p);
        break;
    }
    case TG_OP_ADD: {
        tg_add_params_t p;
        p.size = s32(c, 0);
        p.input1_zero_point = s32(c, 1);
        p.input2_zero_point = s32(c, 2);
        p.output_zero_point = s32(c, 3);
        p.left_shift = s32(c, 4);
        p.input1_multiplier = s32(c, 5);
        p.input1_shift = s32(c, 6);
        p.input2_multiplier = s32(c, 7);
        p.input2_shift = s32(c, 8);
        p.output_multiplier = s32(c, 9);
        p.output_shift = s32(c, 10);
        p.act_min = s32(c, 11);
        p.act_max = s32(c, 12);
        tg_add_s8(maybe_in_place(c, 13, 0, p.size), I8(c, 1), (int8_t *)c->out[0], &p);
        break;
    }
    case TG_OP_MUL: {
        tg_mul_params_t p;
        p.size = s32(c, 0);
        p.input1_zero_point = s32(c, 1);
        p.input2_zero_point = s32(c, 2);
        p.output_zero_point = s32(c, 3);
        p.output_multiplier = s32(c, 4);
        p.output_shift = s32(c, 5);
        p.act_min = s32(c, 6);
        p.act_max = s32(c, 7);
        tg_mul_s8(I8(c, 0), maybe_in_place(c, 8, 1, p.size), (int8_t *)c->out[0], &p);
        break;
    }
    case TG_OP_ADD_BCAST: {
        tg_add_bcast_params_t p;
        memset(&p, 0, sizeof p);
        p.op.input1_zero_point = s32(c, 0);
        p.op.input2_zero_point = s32(c, 1);
        p.op.output_zero_point = s32(c, 2);
        p.op.left_shift = s32(c, 3);
        p.op.input1_multiplier = s32(c, 4);
        p.op.input1_shift = s32(c, 5);
        p.op.input2_multiplier = s32(c, 6);
        p.op.input2_shift = s32(c, 7);
        p.op.output_multiplier = s32(c, 8);
        p.op.output_shift = s32(c, 9);
        p.op.act_min = s32(c, 10);
        p.op.act_max = s32(c, 11);
        read_bcast_geometry(c, 12, p.out_shape, p.stride1, p.stride2);
        tg_add_bcast_s8(I8(c, 0), I8(c, 1), (int8_t *)c->out[0], &p);
        break;
    }
    case TG_OP_MUL_BCAST: {
        tg_mul_bcast_params_t p;
        memset(&p, 0, sizeof p);
        p.op.input1_zero_point = s32(c, 0);
        p.op.input2_zero_point = s32(c, 1);
        p.op.output_zero_point = s32(c, 2);
        p.op.output_multiplier = s32(c, 3);
        p.op.output_shift = s32(c, 4);
        p.op.act_min = s32(c, 5);
        p.op.act_max = s32(c, 6);
        read_bcast_geometry(c, 7, p.out_shape, p.stride1, p.stride2);
        tg_mul_bcast_s8(I8(c, 0), I8(c, 1), (int8_t *)c->out[0], &p);
        break;
    }
    case TG_OP_LOG_SOFTMAX: {
        tg_log_softmax_params_t p;
        p.rows = s32(c, 0);
        p.depth = s32(c, 1);
        p.input_multiplier = s32(c, 2);
        p.input_left_shift = s32(c, 3);
        p.reverse_scaling_divisor = s32(c, 4);
        p.reverse_scaling_right_shift = s32(c, 5);
        p.diff_min = s32(c, 6);
        tg_log_softmax_s8(I8(c, 0), (int8_t *)c->out[0], &p);
        break;
    }
    case TG_OP_SLICE: {
        tg_slice_params_t p;
        int32_t d;
        for (d = 0; d < 4; ++d) {
            p.in_shape[d] = s32(c, d);
            p.begin[d] = s32(c, 4 + d);
            p.out_shape[d] = s32(c, 8 + d);
        }
        tg_slice_s8(I8(c, 0), (int8_t *)c->out[0], &p);
        break;
    }
    case TG_OP_CONCAT: {
        tg_concat_params_t p;
        const int8_t *parts[4] = {NULL, NULL, NULL, NULL};
        int32_t j;
        p.outer = s32(c, 0);
        p.parts = s32(c, 1);
        for (j = 0; j < 4; ++j) {
            p.sizes[j] = j < p.parts ? s32(c, 2 + j) : 0;
            p.consts[j] = NULL;
            if (j < p.parts) {
                parts[j] = I8(c, j);
            }
        }
        tg_concat_s8(parts, (int8_t *)c->out[0], &p);
        break;
    }
    case TG_OP_LUT: {
        tg_lut_params_t p;
        p.size = s32(c, 0);
        p.table = I8(c, 1);
        tg_lut_s8(maybe_in_place(c, 1, 0, p.size), (int8_t *)c->out[0], &p);
        break;
    }
    case TG_OP_SOFTMAX: {
        tg_softmax_params_t p;
        p.rows = s32(c, 0);
        p.depth = s32(c, 1);
        p.input_multiplier = s32(c, 2);
        p.input_left_shift = s32(c, 3);
        p.diff_min = s32(c, 4);
        tg_softmax_s8(I8(c, 0), (int8_t *)c->out[0], &p);
        break;
    }
    case TG_OP_LAYER_NORM: {
        tg_layer_norm_params_t p;
        p.rows = s32(c, 0);
        p.depth = s32(c, 1);
        p.input_zero_point = s32(c, 2);
        p.eps_q = c->s[3];
        p.multiplier = I32(c, 1);
        p.shift = I32(c, 2);
        p.sign = I8(c, 3);
        p.bias = I32(c, 4);
        tg_layer_norm_s8(maybe_in_place(c, 4, 0, c->out_bytes[0]), (int8_t *)c->out[0], &p);
        break;
    }
    case TG_OP_TRANSPOSE: {
        tg_transpose_params_t p;
        int32_t d;
        memset(&p, 0, sizeof p);
        p.rank = s32(c, 0);
        for (d = 0; d < p.rank; ++d) {
            p.in_shape[d] = s32(c, 1 + d);
            p.perm[d] = s32(c, 5 + d);
        }
        tg_transpose_s8(I8(c, 0), (int8_t *)c->out[0], &p);
        break;
    }
    case TG_OP_SPLIT: {
        tg_split_params_t p;
        int8_t *outputs[MAX_OUTPUTS];
        int32_t j;
        memset(&p, 0, sizeof p);
        p.rows = s32(c, 0);
        p.depth = s32(c, 1);
        p.parts = s32(c, 2);
        if (p.parts != c->n_outputs) {
            fail("split: parts != outputs");
        }
        for (j = 0; j < p.parts; ++j) {
            p.sections[j] = s32(c, 3 + j);
            outputs[j] = (int8_t *)c->out[j];
        }
        tg_split_s8(I8(c, 0), outputs, &p);
        break;
    }
    case TG_OP_SRDHM:
        n = c->blob_count[0];
        for (i = 0; i < n; ++i) {
            ((int32_t *)c->out[0])[i] =
                tg_sat_rounding_doubling_high_mul(I32(c, 0)[i], I32(c, 1)[i]);
        }
        break;
    case TG_OP_ROUNDING_DIV_POT:
        n = c->blob_count[0];
        for (i = 0; i < n; ++i) {
            ((int32_t *)c->out[0])[i] = tg_rounding_divide_by_pot(I32(c, 0)[i], I32(c, 1)[i]);
        }
        break;
    case TG_OP_MBQM:
        n = c->blob_count[0];
        for (i = 0; i < n; ++i) {
            ((int32_t *)c->out[0])[i] =
                tg_multiply_by_quantized_multiplier(I32(c, 0)[i], I32(c, 1)[i], I32(c, 2)[i]);
        }
        break;
    case TG_OP_REQUANT:
        n = c->blob_count[0];
        for (i = 0; i < n; ++i) {
            const tg_requant_t q = tg_requant_prepare(I32(c, 1)[i], I32(c, 2)[i]);
            ((int32_t *)c->out[0])[i] = tg_requant_scale(I32(c, 0)[i], &q);
        }
        break;
    case TG_OP_EXP_NEG:
        n = c->blob_count[0];
        for (i = 0; i < n; ++i) {
            ((int32_t *)c->out[0])[i] = tg_exp_on_negative_values(I32(c, 0)[i], s32(c, 0));
        }
        break;
    case TG_OP_ONE_OVER_ONE_PLUS_X:
        n = c->blob_count[0];
        for (i = 0; i < n; ++i) {
            ((int32_t *)c->out[0])[i] = tg_one_over_one_plus_x_for_x_in_0_1(I32(c, 0)[i]);
        }
        break;
    case TG_OP_ISQRT:
        n = c->blob_count[0];
        for (i = 0; i < n; ++i) {
            ((uint64_t *)c->out[0])[i] = tg_isqrt_u64(((const uint64_t *)c->blob[0])[i]);
        }
        break;
    default:
        fail("unknown op");
    }
}

int main(void)
{
    int32_t op;

    while (read_exact(&op, sizeof op)) {
        case_t c;
        int32_t k;

        memset(&c, 0, sizeof c);
        c.n_scalars = read_i32();
        if (c.n_scalars < 0 || c.n_scalars > MAX_SCALARS) {
            fail("bad scalar count");
        }
        for (k = 0; k < c.n_scalars; ++k) {
            c.s[k] = read_i64();
        }
        c.n_blobs = read_i32();
        if (c.n_blobs < 0 || c.n_blobs > MAX_BLOBS) {
            fail("bad blob count");
        }
        for (k = 0; k < c.n_blobs; ++k) {
            const int32_t item = read_i32();
            const int64_t count = read_i64();
            const size_t bytes = (size_t)item * (size_t)count;
            if (item <= 0 || count < 0) {
                fail("bad blob");
            }
            c.blob[k] = xmalloc(bytes);
            c.blob_count[k] = count;
            if (!read_exact(c.blob[k], bytes)) {
                fail("truncated blob");
            }
        }
        c.n_outputs = read_i32();
        if (c.n_outputs < 1 || c.n_outputs > MAX_OUTPUTS) {
            fail("bad output count");
        }
        for (k = 0; k < c.n_outputs; ++k) {
            c.out_bytes[k] = read_i64();
            c.out[k] = xmalloc((size_t)c.out_bytes[k]);
            memset(c.out[k], 0x5A, (size_t)c.out_bytes[k]); /* poison: unwritten shows */
        }

        run_case(&c, op);

        for (k = 0; k < c.n_outputs; ++k) {
            if (fwrite(c.out[k], 1, (size_t)c.out_bytes[k], stdout) != (size_t)c.out_bytes[k]) {
                fail("write failed");
            }
            free(c.out[k]);
        }
        for (k = 0; k < c.n_blobs; ++k) {
            free(c.blob[k]);
        }
    }
    return 0;
}
