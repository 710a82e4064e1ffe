/*
 * tg_fully_connected_s8: int8 fully connected layer, per-channel requantization.
 * Bit-exact with TFLM reference_integer_ops::FullyConnectedPerChannel (a per-tensor layer
 * is the same with its one multiplier/shift repeated for every output channel).
 *
 * input   [in]  int8 (rows, in_features), row-major, zero point p->input_zero_point.
 * output  [out] int8 (rows, out_features), row-major; must not overlap input.
 * p       [in]  tg_fc_params_t:
 *   weights           int8 (out_features, in_features), symmetric (zero point 0).
 *   bias              int32 (out_features), or NULL for none.
 *   multiplier int32, shift int8 (out_features): multiplier in [0, INT32_MAX], shift in
 *                     [-31, 30]; real scale = multiplier * 2^(shift - 31).
 *   rows              >= 0; in_features, out_features >= 1.
 *   in_features       <= 65793, so that the int32 accumulator cannot overflow
 *                     (|x - zp| <= 255, |w| <= 128).
 *   input_zero_point, output_zero_point  in [-128, 127].
 *   act_min <= act_max, both in [-128, 127].
 *
 * out[r][o] = clamp(MBQM(sum_i (in[r][i] - zp_in) * w[o][i] + bias[o], mult[o], shift[o])
 *                   + zp_out, act_min, act_max)
 *
 * The loops take four output channels at a time, so the inner loop loads each input byte
 * once for four MACs (about 2.75 instructions per MAC on a Cortex-M4 at -O2; 32-bit
 * accumulators, no intrinsics).
 */
#include <stddef.h>

#include "../tg_kernels.h"
#include "../tg_math.h"

/* One output: requantize the exact accumulator sum_i (x_i - zp_in) * w_i. */
static int8_t tg_fc_output(int32_t acc, const int32_t *bias, int32_t o,
                           const int32_t *multiplier, const int8_t *shift,
                           int32_t output_zero_point, int32_t act_min, int32_t act_max)
{
    if (bias != NULL) {
        acc = tg_add_wrap_s32(acc, bias[o]);
    }
    return tg_requantize_s8(acc, multiplier[o], shift[o], output_zero_point, act_min,
                            act_max);
}

void tg_fully_connected_s8(const int8_t *input, int8_t *output, const tg_fc_params_t *p)
{
    /* Copied to locals: output stores may alias *p as far as the compiler knows. */
    const int8_t *const weights = p->weights;
    const int32_t *const bias = p->bias;
    const int32_t *const multiplier = p->multiplier;
    const int8_t *const shift = p->shift;
    const int32_t rows = p->rows;
    const int32_t in_features = p->in_features;
    const int32_t out_features = p->out_features;
    const int32_t input_offset = -p->input_zero_point;
    const int32_t output_zero_point = p->output_zero_point;
    const int32_t act_min = p->act_min;
    const int32_t act_max = p->act_max;
    int32_t o = 0;
    int32_t r;

    /* Four output channels at a time: each input byte is loaded once for four MACs, and
     * the input offset is applied once per channel through the sum of its weights,
     *     sum_i (x_i + offset) * w_i = sum_i x_i * w_i + offset * sum_i w_i,
     * an identity in int32: each term is at most in_features * 128 * 128 in magnitude,
     * and their sum is the accumulator of the plain loop, which fits (see above). */
    for (; o + 4 <= out_features; o += 4) {
        const int8_t *const w0 = weights + (size_t)o * (size_t)in_features;
        const int8_t *const w1 = w0 + in_features;
        const int8_t *const w2 = w1 + in_features;
        const int8_t *const w3 = w2 + in_features;
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int32_t i;

        for (i = 0; i < in_features; ++i) {
            s0 += w0[i];
            s1 += w1[i];
            s2 += w2[i];
            s3 += w3[i];
        }
        s0 *= input_offset;
        s1 *= input_offset;
        s2 *= input_offset;
        s3 *= input_offset;
        for (r = 0; r < rows; ++r) {
            const int8_t *const in_row = input + (size_t)r * (size_t)in_features;
            int8_t *const out = output + (size_t)r * (size_t)out_features + o;
            int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;

            for (i = 0; i < in_features; ++i) {
                const int32_t x = in_row[i];
                a0 += x * w0[i];
                a1 += x * w1[i];
                a2 += x * w2[i];
                a3 += x * w3[i];
            }
            out[0] = tg_fc_output(a0 + s0, bias, o, multiplier, shift, output_zero_point,
                                  act_min, act_max);
            out[1] = tg_fc_output(a1 + s1, bias, o + 1, multiplier, shift, output_zero_point,
                                  act_min, act_max);
            out[2] = tg_fc_output(a2 + s2, bias, o + 2, multiplier, shift, output_zero_point,
                                  act_min, act_max);
            out[3] = tg_fc_output(a3 + s3, bias, o + 3, multiplier, shift, output_zero_point,
                                  act_min, act_max);
        }
    }
    /* The remaining 0-3 channels, one at a time. */
    for (; o < out_features; ++o) {
        const int8_t *const w_row = weights + (size_t)o * (size_t)in_features;
        for (r = 0; r < rows; ++r) {
            const int8_t *const in_row = input + (size_t)r * (size_t)in_features;
            int32_t acc = 0;
            int32_t i;

            for (i = 0; i < in_features; ++i) {
                acc += ((int32_t)in_row[i] + input_offset) * (int32_t)w_row[i];
            }
            output[(size_t)r * (size_t)out_features + (size_t)o] =
                tg_fc_output(acc, bias, o, multiplier, shift, output_zero_point, act_min,
                             act_max);
        }
    }
}
