/*
 * tinygen runtime: int8 kernel interface.
 *
 * Every kernel is bit-exact with TensorFlow Lite Micro's reference kernel of the same
 * op (and with tinygen's golden reference, tinygen/reference/), so a CMSIS-NN or ESP-NN
 * adapter with the same signature can replace a portable one without changing outputs.
 * All "prepare" work (multipliers, shifts, zero points, clamps, shapes) is done by the
 * compiler; the structs below hold its results and live in flash.
 *
 * Conventions
 *   - Activations are int8 with a zero point; weights int8 symmetric (zero point 0).
 *   - Shifts follow TFLM: real multiplier = multiplier * 2^(shift - 31); shift > 0 is a
 *     left shift.
 *   - Layouts follow TFLite: row-major, channels last (NHWC), FC weights (out, in),
 *     conv weights OHWI, depthwise weights 1HWC.
 *   - Input and output buffers never overlap unless a kernel says so.
 *   - No kernel allocates memory; none uses floating point.
 */
#ifndef TG_KERNELS_H
#define TG_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- fully connected */
typedef struct {
    const int8_t *weights;      /* (out_features, in_features) */
    const int32_t *bias;        /* (out_features) or NULL */
    const int32_t *multiplier;  /* (out_features): per-channel requantization */
    const int8_t *shift;        /* (out_features), in [-31, 31] */
    int32_t rows;               /* product of the leading dims of the input */
    int32_t in_features;
    int32_t out_features;
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t act_min;            /* fused clamp, e.g. -128 / 127, or zp_out / 127 (ReLU) */
    int32_t act_max;
} tg_fc_params_t;

/* out[r][o] = clamp(MBQM(sum_i (in[r][i] - zp_in) * w[o][i] + bias[o], mult[o], shift[o])
 *                   + zp_out, act_min, act_max). in: (rows, in_features), out: (rows, out_features). */
void tg_fully_connected_s8(const int8_t *input, int8_t *output, const tg_fc_params_t *p);

/* ------------------------------------------------------------ conv2d / depthwise */
typedef struct {
    const int8_t *weights;      /* conv: (out_c, kh, kw, in_c); depthwise: (1, kh, kw, c) */
    const int32_t *bias;        /* (out_c) or NULL */
    const int32_t *multiplier;  /* (out_c) */
    const int8_t *shift;        /* (out_c), in [-31, 31] */
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c; /* depthwise: out_c == in_c (depth multiplier 1) */
    int32_t kernel_h, kernel_w;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;       /* top/left padding; outside taps are skipped */
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t act_min;
    int32_t act_max;
} tg_conv_params_t;

void tg_conv2d_s8(const int8_t *input, int8_t *output, const tg_conv_params_t *p);
void tg_depthwise_conv2d_s8(const int8_t *input, int8_t *output, const tg_conv_params_t *p);

/* ------------------------------------------------------------------ batch matmul */
typedef struct {
    int32_t batches;            /* product of the batch dims (no broadcasting) */
    int32_t m, k, n;            /* out (batches, m, n) = lhs (m, k) x rhs (k, n) */
    int32_t adj_x;              /* lhs is stored (batches, k, m) */
    int32_t adj_y;              /* rhs is stored (batches, n, k) */
    int32_t lhs_zero_point;
    int32_t rhs_zero_point;
    int32_t output_zero_point;
    int32_t multiplier;
    int32_t shift;
    const int8_t *rhs_const;    /* a constant rhs in flash, or NULL (from the arena); the
                                 * executor passes it as rhs */
    /* Where the matrices lie, in elements: matrix b of an operand starts at
     * base + b * batch_stride, its stored row r (lhs: m rows of k, adj_x: k rows of m;
     * rhs: k rows of n, adj_y: n rows of k; output: m rows of n) at
     * + r * row_stride, and each row is contiguous. Packed tensors have
     * row_stride = row length and batch_stride = rows * row_stride; other strides are
     * transposes the compiler folded into the matmul (attention's (T, H, D) heads). */
    int32_t lhs_batch_stride, lhs_row_stride;
    int32_t rhs_batch_stride, rhs_row_stride;
    int32_t out_batch_stride, out_row_stride;
} tg_batch_matmul_params_t;

void tg_batch_matmul_s8(const int8_t *lhs, const int8_t *rhs, int8_t *output,
                        const tg_batch_matmul_params_t *p);

/* ------------------------------------------------------------- add (same shapes) */
typedef struct {
    int32_t size;               /* elements */
    int32_t input1_zero_point, input2_zero_point, output_zero_point;
    int32_t left_shift;         /* 20 */
    int32_t input1_multiplier, input1_shift;
    int32_t input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
    int32_t act_min, act_max;
} tg_add_params_t;

/* TFLM ADD int8: both inputs rescaled to a common scale, summed, requantized. */
void tg_add_s8(const int8_t *input1, const int8_t *input2, int8_t *output,
               const tg_add_params_t *p);

/* ------------------------------------------------------------- mul (same shapes) */
typedef struct {
    int32_t size;
    int32_t input1_zero_point, input2_zero_point, output_zero_point;
    int32_t output_multiplier, output_shift;
    int32_t act_min, act_max;
} tg_mul_params_t;

void tg_mul_s8(const int8_t *input1, const int8_t *input2, int8_t *output,
               const tg_mul_params_t *p);

/* ------------------------------------- add / mul with broadcasting (rank <= 4) */
typedef struct {
    tg_add_params_t op;         /* the per-element parameters; op.size is not read */
    const int8_t *input2_const; /* a constant second operand in flash, or NULL */
    int32_t out_shape[4];       /* output dims, leading 1s for a lower rank */
    int32_t stride1[4];         /* input1 stride (elements) per output dim, 0: broadcast */
    int32_t stride2[4];         /* input2 stride, likewise */
} tg_add_bcast_params_t;

typedef struct {
    tg_mul_params_t op;
    const int8_t *input2_const;
    int32_t out_shape[4];
    int32_t stride1[4];
    int32_t stride2[4];
} tg_mul_bcast_params_t;

/* TFLM ADD / MUL int8 with numpy broadcasting (BroadcastAdd6DSlow / BroadcastMul6DSlow):
 * a scalar or per-channel constant, or two activations of broadcastable shapes. */
void tg_add_bcast_s8(const int8_t *input1, const int8_t *input2, int8_t *output,
                     const tg_add_bcast_params_t *p);
void tg_mul_bcast_s8(const int8_t *input1, const int8_t *input2, int8_t *output,
                     const tg_mul_bcast_params_t *p);

/* ------------------------------------------------- elementwise lookup (logistic) */
typedef struct {
    int32_t size;
    const int8_t *table;        /* 256 entries, indexed by (uint8_t)(x + 128) */
} tg_lut_params_t;

/* out[i] = table[in[i] + 128]. The compiler fills the table with TFLM's LOGISTIC of
 * every int8 value, so this is bit-exact and in-place safe (input == output allowed). */
void tg_lut_s8(const int8_t *input, int8_t *output, const tg_lut_params_t *p);

/* ----------------------------------------------------------------------- softmax */
typedef struct {
    int32_t rows;
    int32_t depth;              /* softmax over the last axis, this long */
    int32_t input_multiplier;
    int32_t input_left_shift;
    int32_t diff_min;           /* differences below it give 0 */
} tg_softmax_params_t;

/* TFLM SOFTMAX int8 -> int8 (scale 1/256, zero point -128), gemmlowp fixed-point exp. */
void tg_softmax_s8(const int8_t *input, int8_t *output, const tg_softmax_params_t *p);

/* ------------------------------------------------------------------- log softmax */
typedef struct {
    int32_t rows;
    int32_t depth;              /* log-softmax over the last axis, this long */
    int32_t input_multiplier;
    int32_t input_left_shift;
    int32_t reverse_scaling_divisor;
    int32_t reverse_scaling_right_shift;
    int32_t diff_min;
} tg_log_softmax_params_t;

/* TFLM LOG_SOFTMAX int8 -> int8 (scale 16/256, zero point 127). */
void tg_log_softmax_s8(const int8_t *input, int8_t *output, const tg_log_softmax_params_t *p);

/* -------------------------------------------------------------------- layer norm */
typedef struct {
    int32_t rows;
    int32_t depth;              /* D, normalised axis (last), D <= 1024 */
    int32_t input_zero_point;
    int64_t eps_q;              /* >= 1 */
    const int32_t *multiplier;  /* (D) */
    const int32_t *shift;       /* (D) */
    const int8_t *sign;         /* (D) +1 / -1: sign of gamma */
    const int32_t *bias;        /* (D) round(beta / s_y) + zp_y */
} tg_layer_norm_params_t;

/* tinygen's integer LayerNorm (docs/quantization.md). */
void tg_layer_norm_s8(const int8_t *input, int8_t *output, const tg_layer_norm_params_t *p);

/* --------------------------------------------------------------------- transpose */
typedef struct {
    int32_t rank;               /* 1..4 */
    int32_t in_shape[4];        /* input dims, rank entries used */
    int32_t perm[4];            /* out dim d is input dim perm[d] */
} tg_transpose_params_t;

void tg_transpose_s8(const int8_t *input, int8_t *output, const tg_transpose_params_t *p);

/* ------------------------------------------------------------------------- split */
typedef struct {
    int32_t rows;               /* product of all dims but the last */
    int32_t depth;              /* last dim of the input */
    int32_t parts;              /* 2..4 */
    int32_t sections[4];        /* last-dim length of each output */
} tg_split_params_t;

/* Copies input (rows, depth) into outputs[j] (rows, sections[j]). */
void tg_split_s8(const int8_t *input, int8_t *const *outputs, const tg_split_params_t *p);

/* ------------------------------------------------------------------------- slice */
typedef struct {
    int32_t in_shape[4];        /* input dims, leading 1s for a lower rank */
    int32_t begin[4];           /* first index kept on each dim */
    int32_t out_shape[4];       /* elements kept on each dim */
} tg_slice_params_t;

void tg_slice_s8(const int8_t *input, int8_t *output, const tg_slice_params_t *p);

/* ------------------------------------------------------------------------ concat */
typedef struct {
    int32_t outer;              /* product of the dims before the axis */
    int32_t parts;              /* 1..4 */
    int32_t sizes[4];           /* per part: its axis length times the dims after it */
    const int8_t *consts[4];    /* a constant part in flash, or NULL (from the arena) */
} tg_concat_params_t;

/* Copies inputs[j] (outer, sizes[j]) side by side into output. */
void tg_concat_s8(const int8_t *const *inputs, int8_t *output, const tg_concat_params_t *p);

#ifdef __cplusplus
}
#endif

#endif /* TG_KERNELS_H */
