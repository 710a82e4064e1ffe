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
 * The loops take two rows by two output channels at a time (tg_dot.h), so every byte
 * loaded serves two MACs, and apply the input offset once per channel through the sum of
 * its weights. Rows of up to TG_FC_PACK_MAX features pack each channel pair into int32
 * words once (a 2 KiB buffer on the stack) and, where a 64-bit multiply-accumulate is one
 * instruction (TG_DOT_MUL64), do two MACs per 64-bit multiply-accumulate:
 * about 1.4 instructions per MAC in the inner loop on a Cortex-M4 at -O2, against 2.2 for
 * the byte-pair loop that longer rows take; plus about 25 per output for the
 * requantization (no intrinsics).
 *
 * On cores with the DSP extension (TG_FC_DSP, tg_fc_dsp.h) rows of up to 168 features
 * take tg_fc_dsp_s8 instead, with the same 2 KiB stack buffer as its scratch: about 0.8
 * instructions per MAC on a Cortex-M4. On x86 with SSE2 (TG_DOT_SSE2) the byte-pair
 * loops are vector loops, faster than the packed one, so nothing is packed.
 */
#include <stddef.h>

#include "../tg_kernels.h"
#include "../tg_math.h"
#include "tg_dot.h"
#include "tg_fc_dsp.h"

#define TG_FC_PACK_MAX 512

/* The per-channel constants of one output channel: bias plus the input offset times the
 * channel's weight sum (added to the raw dot product modulo 2^32, as TFLM's int32 adds
 * wrap), and the requantization. */
typedef struct {
    int32_t offset;
    int32_t multiplier;
    int32_t shift;
} tg_fc_channel_t;

static inline tg_fc_channel_t tg_fc_channel(const tg_fc_params_t *p, int32_t o,
                                            int32_t input_offset)
{
    const int8_t *const w = p->weights + (size_t)o * (size_t)p->in_features;
    tg_fc_channel_t ch;

    /* sum_i (x_i + offset) * w_i = sum_i x_i * w_i + offset * sum_i w_i; both terms are
     * at most in_features * 128 * 128 in magnitude, so each fits int32, and their sum is
     * the accumulator of the plain loop, which fits (see above); the bias then wraps */
    ch.offset = input_offset * tg_sum_s8(w, p->in_features);
    ch.multiplier = p->multiplier[o];
    ch.shift = p->shift[o];
    if (p->bias != NULL) {
        ch.offset = tg_add_wrap_s32(ch.offset, p->bias[o]);
    }
    return ch;
}

void tg_fully_connected_s8(const int8_t *input, int8_t *output, const tg_fc_params_t *p)
{
    /* Copied to locals: output stores may alias *p as far as the compiler knows. */
    const int8_t *const weights = p->weights;
    const int32_t rows = p->rows;
    const int32_t in_features = p->in_features;
    const int32_t out_features = p->out_features;
    const int32_t input_offset = -p->input_zero_point;
    const int32_t output_zero_point = p->output_zero_point;
    const int32_t act_min = p->act_min;
    const int32_t act_max = p->act_max;
    const size_t in_stride = (size_t)in_features;
    const size_t out_stride = (size_t)out_features;
    /* rows of up to TG_FC_PACK_MAX take the packed loop (a 2 KiB stack buffer), on cores
     * with a one-instruction 64-bit multiply-accumulate (tg_dot.h), when there are at
     * least two rows to share each packed channel pair */
    const int32_t packed_ok = TG_DOT_MUL64 && !TG_DOT_SSE2 && in_features <= TG_FC_PACK_MAX &&
                              rows >= 2;
    int32_t packed[TG_FC_PACK_MAX];
    int32_t o = 0;
    int32_t r;

#if TG_FC_DSP
    if (tg_fc_dsp_s8(input, output, p, packed, TG_FC_PACK_MAX)) {
        return;
    }
#endif
#define TG_FC_OUT(acc, ch)                                                               \
    tg_requantize_s8(tg_add_wrap_s32((acc), (ch).offset), (ch).multiplier, (ch).shift,  \
                     output_zero_point, act_min, act_max)
    /* Two output channels by two rows at a time. */
    for (; o + 2 <= out_features; o += 2) {
        const int8_t *const w0 = weights + (size_t)o * in_stride;
        const tg_fc_channel_t c0 = tg_fc_channel(p, o, input_offset);
        const tg_fc_channel_t c1 = tg_fc_channel(p, o + 1, input_offset);

        if (packed_ok) {
            tg_pack_pair_s8(w0, w0 + in_stride, in_features, packed);
        }
        for (r = 0; r + 2 <= rows; r += 2) {
            const int8_t *const x0 = input + (size_t)r * in_stride;
            int8_t *const out = output + (size_t)r * out_stride + o;
            int32_t acc[4] = {0, 0, 0, 0};

            if (packed_ok) {
                tg_dot_2x2_packed_s8(x0, x0 + in_stride, packed, in_features, acc);
            } else {
                tg_dot_2x2_s8(x0, x0 + in_stride, w0, w0 + in_stride, in_features, acc);
            }
            out[0] = TG_FC_OUT(acc[0], c0);
            out[1] = TG_FC_OUT(acc[1], c1);
            out[out_stride] = TG_FC_OUT(acc[2], c0);
            out[out_stride + 1] = TG_FC_OUT(acc[3], c1);
        }
        if (r < rows) { /* the last row of an odd count */
            int8_t *const out = output + (size_t)r * out_stride + o;
            int32_t acc[2] = {0, 0};

            tg_dot_1x2_s8(input + (size_t)r * in_stride, w0, w0 + in_stride, in_features,
                          acc);
            out[0] = TG_FC_OUT(acc[0], c0);
            out[1] = TG_FC_OUT(acc[1], c1);
        }
    }
    /* The last channel of an odd count. */
    if (o < out_features) {
        const int8_t *const w0 = weights + (size_t)o * in_stride;
        const tg_fc_channel_t c0 = tg_fc_channel(p, o, input_offset);

        for (r = 0; r < rows; ++r) {
            output[(size_t)r * out_stride + (size_t)o] =
                TG_FC_OUT(tg_dot_1x1_s8(input + (size_t)r * in_stride, w0, in_features), c0);
        }
    }
#undef TG_FC_OUT
}
