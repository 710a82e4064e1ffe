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
 *   multiplier, shift int32 (out_features): multiplier in [0, INT32_MAX], shift in
 *                     [-31, 30]; real scale = multiplier * 2^(shift - 31).
 *   rows              >= 0; in_features, out_features >= 1.
 *   in_features       <= 65793, so that the int32 accumulator cannot overflow
 *                     (|x - zp| <= 255, |w| <= 128).
 *   input_zero_point, output_zero_point  in [-128, 127].
 *   act_min <= act_max, both in [-128, 127].
 *
 * out[r][o] = clamp(MBQM(sum_i (in[r][i] - zp_in) * w[o][i] + bias[o], mult[o], shift[o])
 *                   + zp_out, act_min, act_max)
 */
#include <stddef.h>

#include "../tg_kernels.h"
#include "../tg_math.h"

void tg_fully_connected_s8(const int8_t *input, int8_t *output, const tg_fc_params_t *p)
{
    /* Copied to locals: output stores may alias *p as far as the compiler knows. */
    const int8_t *const weights = p->weights;
    const int32_t *const bias = p->bias;
    const int32_t *const multiplier = p->multiplier;
    const int32_t *const shift = p->shift;
    const int32_t rows = p->rows;
    const int32_t in_features = p->in_features;
    const int32_t out_features = p->out_features;
    const int32_t input_offset = -p->input_zero_point;
    const int32_t output_zero_point = p->output_zero_point;
    const int32_t act_min = p->act_min;
    const int32_t act_max = p->act_max;
    int32_t r;

    for (r = 0; r < rows; ++r) {
        const int8_t *in_row = input + (size_t)r * (size_t)in_features;
        int8_t *out_row = output + (size_t)r * (size_t)out_features;
        const int8_t *w_row = weights;
        int32_t o;

        for (o = 0; o < out_features; ++o) {
            int32_t acc = 0;
            int32_t i;

            for (i = 0; i < in_features; ++i) {
                acc += ((int32_t)in_row[i] + input_offset) * (int32_t)w_row[i];
            }
            if (bias != NULL) {
                acc = tg_add_wrap_s32(acc, bias[o]);
            }
            out_row[o] = tg_requantize_s8(acc, multiplier[o], shift[o], output_zero_point,
                                          act_min, act_max);
            w_row += in_features;
        }
    }
}
