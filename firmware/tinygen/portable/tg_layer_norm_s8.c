/*
 * tg_layer_norm_s8: tinygen's integer LayerNorm over the last axis (TFLM has no such op;
 * docs/quantization.md derives it, tinygen/reference/layernorm.py is the contract).
 *
 * input   [in]  int8 (rows, depth), zero point p->input_zero_point.
 * output  [out] int8 (rows, depth); may equal input (in place: each row is read in full
 *               before it is written), otherwise must not overlap it.
 * p       [in]  tg_layer_norm_params_t:
 *   rows >= 0; depth (D) in [1, 1024].
 *   input_zero_point  in [-128, 127].
 *   eps_q             >= 1 and below 2^62: eps * D^3 / input_scale^2, rounded.
 *   multiplier, shift int32 (D): |gamma_i| * sqrt(D) / (output_scale * 2^24) as a TFLM
 *                     quantized multiplier; multiplier in [0, INT32_MAX], shift in [-31, 7]
 *                     (a larger shift wraps, exactly as the reference does).
 *   sign              int8 (D), +1 or -1: the sign of gamma_i.
 *   bias              int32 (D): round(beta_i / output_scale) + output_zero_point.
 *
 * Per row, with xi = x - zp_x:
 *   S = sum xi, c_i = D * xi - S, Q = sum c_i^2 + eps_q, r = floor(sqrt(Q)),
 *   t_i = sign(c_i) * floor((|c_i| * 2^24 + floor(r / 2)) / r),
 *   out_i = clamp(MBQM(sign_i * t_i, M_i, sh_i) + bias_i, -128, 127).
 * |c_i| < 2^19 and |t_i| <= 2^24 fit int32; Q and |c_i| * 2^24 need 64 bits.
 */
#include <stddef.h>

#include "../tg_kernels.h"
#include "../tg_math.h"

#define TG_LAYER_NORM_FRAC_BITS 24

void tg_layer_norm_s8(const int8_t *input, int8_t *output, const tg_layer_norm_params_t *p)
{
    const int32_t depth = p->depth;
    const int32_t zero_point = p->input_zero_point;
    int32_t r, i;

    for (r = 0; r < p->rows; ++r) {
        const int8_t *in_row = input + (size_t)r * (size_t)depth;
        int8_t *out_row = output + (size_t)r * (size_t)depth;
        int32_t sum = 0;
        uint64_t sum_sq;
        uint64_t root, half_root;

        for (i = 0; i < depth; ++i) {
            sum += (int32_t)in_row[i] - zero_point;
        }
        sum_sq = (uint64_t)p->eps_q;
        for (i = 0; i < depth; ++i) {
            const int32_t c = depth * ((int32_t)in_row[i] - zero_point) - sum;
            sum_sq += (uint64_t)((int64_t)c * c);
        }
        root = tg_isqrt_u64(sum_sq); /* >= 1 since eps_q >= 1 */
        half_root = root >> 1;

        for (i = 0; i < depth; ++i) {
            const int32_t c = depth * ((int32_t)in_row[i] - zero_point) - sum;
            const uint64_t magnitude = (uint64_t)(c < 0 ? -c : c);
            /* |c| <= r, so the quotient is at most 2^24 */
            const int32_t t_abs =
                (int32_t)(((magnitude << TG_LAYER_NORM_FRAC_BITS) + half_root) / root);
            const int32_t t = (c < 0) != (p->sign[i] < 0) ? -t_abs : t_abs;
            const int64_t y =
                (int64_t)tg_multiply_by_quantized_multiplier(t, p->multiplier[i], p->shift[i]) +
                p->bias[i];
            out_row[i] = (int8_t)(y < INT8_MIN ? INT8_MIN : (y > INT8_MAX ? INT8_MAX : y));
        }
    }
}
