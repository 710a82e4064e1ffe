/*
 * tg_fc_dsp.h: the int8 fully connected layer (matrix x matrix) for cores with the Arm
 * DSP extension (__ARM_FEATURE_DSP: Cortex-M4, M7, M33, M55's scalar path), in C with
 * ACLE intrinsics (SMLAD, SXTB16). Used by portable/tg_fully_connected_s8.c and by the
 * CMSIS-NN adapter on cores without MVE, where it beats arm_fully_connected_s8 (a vector
 * x matrix per row). Elsewhere TG_FC_DSP is 0 and nothing here is compiled.
 * Bit-exact with TFLM reference_integer_ops::FullyConnectedPerChannel, the same contract
 * as tg_fully_connected_s8 (tg_kernels.h): the same integer sums and requantization.
 *
 * tg_fc_dsp_s8(input, output, p, buf, buf_words) -> 1 when done, 0 (nothing written)
 * when buf is smaller than tg_fc_dsp_min_words(p->in_features).
 *   input   [in]  int8 (rows, in_features), zero point p->input_zero_point.
 *   output  [out] int8 (rows, out_features); must not overlap input or buf.
 *   p       [in]  tg_fc_params_t, ranges as tg_fully_connected_s8.c states.
 *   buf     [tmp] 4-byte aligned scratch of buf_words words; the more rows it holds,
 *                 the fewer times each weight is unpacked (tg_fc_dsp_words).
 *
 * Depth D = in_features rounded up to a multiple of 8 (zero padded). The scratch holds
 * the weights of 4 output channels and the input of a block of row pairs, both widened to
 * int16 pairs as SXTB16 gives them (bytes 0,2 and 1,3 of each word: both operands use the
 * same order, so the pairs line up):
 *   weights: word 4j + c = channel c's pair j, j in [0, D/2)    (2 D words)
 *   inputs:  per row pair, word 2j + r = row r's pair j          (D words per row pair)
 * The padded columns and the missing channels of the last group of 4 are zero weights, so
 * their products vanish; an odd last row gets a partner whose outputs are not stored.
 * Then 8 words of accumulators per row pair, channel-major (word 2c + r). One tile is 2
 * rows x 4 channels: 8 accumulators that start at the channels' biases, per pair of
 * columns one doubleword load of the inputs, two of weights and 8 SMLADs (16 MACs). The
 * inputs are widened minus their zero point (|x - zp| <= 255 fits an int16 half), so the
 * sums are TFLM's sum (x - zp) w + bias as they stand (wrapping as int32 addition does).
 * The requantization is tg_fc_dsp_requant: one SMLAL whose start holds the rounding and
 * the output zero point, then one SSAT, for channels with the full int8 clamp and a
 * right shift in [2, 22] (the usual case); tg_requantize_s8's steps for the others.
 *
 * Cost on a Cortex-M4 at -O2 (GCC, the assembly paths), per qemu-m4 instruction counts:
 * 0.69 instructions per MAC in the tile, 8.75 per output for the requantization, about
 * 15 per row pair and 4 channels for the tile's loop, 0.94 per weight byte per block of
 * rows (the widening, shared by the block's rows) and about 38 per output channel.
 * mcu-tiny's fully connected layers: 0.90 per MAC over all of them (24 rows; 0.81 at 384
 * input features, 0.96 to 0.98 at 64).
 */
#ifndef TG_FC_DSP_H
#define TG_FC_DSP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../tg_kernels.h"
#include "../tg_math.h"

/* The DSP intrinsics (tg_math.h). */
#define TG_FC_DSP TG_ACLE_DSP

/* The largest scratch a build plans for one call (tinygen/targets/platformio.py mirrors
 * tg_fc_dsp_words): 24 KiB, or the two row pairs' minimum when that is larger. */
#define TG_FC_DSP_MAX_WORDS 6144

/* in_features rounded up to a multiple of 8 (the tile takes 4 pairs per turn). */
static inline int32_t tg_fc_dsp_depth(int32_t in_features)
{
    return (in_features + 7) & ~7;
}

/* The least scratch that works: one weight group (2 D words), one row pair (D words) and
 * its 8 accumulators. */
static inline int32_t tg_fc_dsp_min_words(int32_t in_features)
{
    return 3 * tg_fc_dsp_depth(in_features) + 8;
}

/* The scratch a build plans: the weight group plus every row pair and its accumulators,
 * as far as
 * TG_FC_DSP_MAX_WORDS allows (at least one pair). */
static inline int32_t tg_fc_dsp_words(int32_t rows, int32_t in_features)
{
    const int32_t depth = tg_fc_dsp_depth(in_features);
    int32_t pairs = (rows + 1) / 2;
    const int32_t fit = (TG_FC_DSP_MAX_WORDS - 2 * depth) / (depth + 8);

    if (pairs > fit) {
        pairs = fit;
    }
    if (pairs < 1) {
        pairs = 1;
    }
    return 2 * depth + pairs * (depth + 8);
}

#if TG_FC_DSP

/* Four int8 values from src (any alignment). */
static inline int32_t tg_fc_dsp_word(const int8_t *src)
{
    int32_t v;

    memcpy(&v, src, sizeof v);
    return v;
}

/* v rotated right by 8 bits (GCC's <arm_acle.h> has no __ror). */
static inline int32_t tg_fc_dsp_ror8(int32_t v)
{
    const uint32_t u = (uint32_t)v;

    return tg_s32_from_u32((u >> 8) | (u << 24));
}

/* __sxtb16(tg_fc_dsp_ror8(v)): bytes 1 and 3 of v as int16 pairs. GCC's ACLE has no
 * SXTB16 with a rotation and does not fold the ROR into it, so with GCC-compatible
 * compilers this is the one instruction. */
static inline int32_t tg_fc_dsp_sxtb16_hi(int32_t v)
{
#if defined(__GNUC__)
    int32_t r;

    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
#else
    return __sxtb16(tg_fc_dsp_ror8(v));
#endif
}

/* The four int8 values src[0..n) (n in [0, 4)) and zeros, as one word. */
static inline int32_t tg_fc_dsp_tail(const int8_t *src, int32_t n)
{
    int8_t v[4] = {0, 0, 0, 0};
    int32_t i;

    for (i = 0; i < n; ++i) {
        v[i] = src[i];
    }
    return tg_fc_dsp_word(v);
}

/* dst[stride * j] = pair j of the len values src plus offset (in both halves: SADD16),
 * for j in [0, depth / 2) (len <= depth). Past len the pairs hold offset; the weights are
 * zero there, so the products vanish whatever the input side holds. add: offset != 0
 * (a constant in each caller below, so that the weights' copy has no SADD16). */
static inline void tg_fc_dsp_widen_with(const int8_t *src, int32_t len, int32_t depth,
                                        int32_t offset, int32_t *dst, int32_t stride,
                                        const int add)
{
    const int32_t pair = tg_s32_from_u32(((uint32_t)offset & 0xFFFFu) * 0x00010001u);
    int32_t k = 0;

#define TG_FC_DSP_PUT(i, v) dst[(i) * stride] = add ? __sadd16((v), pair) : (v)
    for (; k + 8 <= len; k += 8) {
        const int32_t v0 = tg_fc_dsp_word(src + k), v1 = tg_fc_dsp_word(src + k + 4);
        TG_FC_DSP_PUT(0, __sxtb16(v0));
        TG_FC_DSP_PUT(1, tg_fc_dsp_sxtb16_hi(v0));
        TG_FC_DSP_PUT(2, __sxtb16(v1));
        TG_FC_DSP_PUT(3, tg_fc_dsp_sxtb16_hi(v1));
        dst += 4 * stride;
    }
    for (; k < depth; k += 4) {
        const int32_t v = k + 4 <= len ? tg_fc_dsp_word(src + k)
                                       : tg_fc_dsp_tail(src + k, k < len ? len - k : 0);
        TG_FC_DSP_PUT(0, __sxtb16(v));
        TG_FC_DSP_PUT(1, tg_fc_dsp_sxtb16_hi(v));
        dst += 2 * stride;
    }
#undef TG_FC_DSP_PUT
}

static inline void tg_fc_dsp_widen(const int8_t *src, int32_t len, int32_t depth,
                                   int32_t offset, int32_t *dst, int32_t stride)
{
    if (offset != 0) {
        tg_fc_dsp_widen_with(src, len, depth, offset, dst, stride, 1);
    } else {
        tg_fc_dsp_widen_with(src, len, depth, 0, dst, stride, 0);
    }
}

/* The 8 accumulators' start for callers without a bias. */
static const int32_t tg_fc_dsp_zeros[8] = {0, 0, 0, 0, 0, 0, 0, 0};

/* For each of the pairs row pairs (x: D words each, one after the other), acc[8 k + 2 c + r]
 * = init[2 c + r] + the sum over the depth / 2 column pairs of row r's pair times channel
 * c's pair (a 2 x 4 tile; depth % 8 == 0, so four column pairs per step), wrapping as
 * int32 addition does. init is 8 words: each channel's bias twice (once per row), or
 * zeros. Channel-major, so that one LDRD takes a channel's two rows.
 *
 * With GCC (optimising) the whole function is one assembly statement: the accumulators
 * are r0-r7, so one LDM starts them from init and one STM stores them; the column pairs
 * take one LDRD of inputs and two of weights per 8 SMLADs; a turn of the loop is 16
 * column pairs (one compare per 64 SMLADs), entered part way for a depth that is not a
 * multiple of 32. Everything else lives on the stack: the 14 registers are all operands.
 * GCC's own code (the C below) loads the weights one by one and keeps the loop state in
 * registers it then spills: 0.9 instructions per MAC instead of 0.69. The frame pointer
 * is left out so that r7 is free. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__OPTIMIZE__)
#define TG_FC_DSP_ASM 1
__attribute__((noinline, optimize("omit-frame-pointer")))
static void tg_fc_dsp_tiles(const int32_t *x, const int32_t *w0, int32_t depth,
                            int32_t pairs, int32_t *acc, const int32_t *init)
{
    const int32_t bytes = 4 * depth;       /* one row pair's inputs */
    const int32_t lead = (depth >> 3) & 3; /* steps before the first full turn */
    const int32_t *const stop = x + (size_t)pairs * (size_t)depth;
    const int32_t *end = x;
    int32_t *accp = acc;
    const int32_t *w;
    int32_t x0, x1, v0, v1;

    if (pairs <= 0) {
        return;
    }
#define TG_FC_DSP_PAIR                                                                   \
    "ldrd %[x0], %[x1], [%[x]], #8\n\t"                                                   \
    "ldrd %[v0], %[v1], [%[w]], #8\n\t"                                                   \
    "smlad r0, %[x0], %[v0], r0\n\t"                                                      \
    "smlad r1, %[x1], %[v0], r1\n\t"                                                      \
    "smlad r2, %[x0], %[v1], r2\n\t"                                                      \
    "smlad r3, %[x1], %[v1], r3\n\t"                                                      \
    "ldrd %[v0], %[v1], [%[w]], #8\n\t"                                                   \
    "smlad r4, %[x0], %[v0], r4\n\t"                                                      \
    "smlad r5, %[x1], %[v0], r5\n\t"                                                      \
    "smlad r6, %[x0], %[v1], r6\n\t"                                                      \
    "smlad r7, %[x1], %[v1], r7\n\t"
#define TG_FC_DSP_STEP TG_FC_DSP_PAIR TG_FC_DSP_PAIR TG_FC_DSP_PAIR TG_FC_DSP_PAIR
    __asm__ volatile("1:\n\t"
                     "ldr %[w], %[w0]\n\t"
                     "ldr %[v0], %[init]\n\t"
                     "ldmia %[v0], {r0-r7}\n\t"
                     "ldr %[v0], %[bytes]\n\t"
                     "add %[v0], %[x], %[v0]\n\t"
                     "str %[v0], %[end]\n\t"
                     "ldr %[v1], %[lead]\n\t"
                     "cmp %[v1], #0\n\t"
                     "beq 2f\n\t"
                     "cmp %[v1], #2\n\t"
                     "blt 7f\n\t"
                     "beq 6f\n\t"
                     "b 5f\n\t"
                     "2:\n\t" TG_FC_DSP_STEP
                     "5:\n\t" TG_FC_DSP_STEP
                     "6:\n\t" TG_FC_DSP_STEP
                     "7:\n\t" TG_FC_DSP_STEP
                     "ldr %[v0], %[end]\n\t"
                     "cmp %[x], %[v0]\n\t"
                     "bne 2b\n\t"
                     "ldr %[v0], %[accp]\n\t"
                     "stmia %[v0]!, {r0-r7}\n\t"
                     "str %[v0], %[accp]\n\t"
                     "ldr %[v0], %[stop]\n\t"
                     "cmp %[x], %[v0]\n\t"
                     "bne 1b\n\t"
                     : [x] "+r"(x), [w] "=&r"(w), [x0] "=&r"(x0), [x1] "=&r"(x1),
                       [v0] "=&r"(v0), [v1] "=&r"(v1), [end] "+m"(end), [accp] "+m"(accp)
                     : [w0] "m"(w0), [init] "m"(init), [bytes] "m"(bytes), [lead] "m"(lead),
                       [stop] "m"(stop)
                     : "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "cc", "memory");
#undef TG_FC_DSP_STEP
#undef TG_FC_DSP_PAIR
}
#else
#define TG_FC_DSP_ASM 0
static void tg_fc_dsp_tiles(const int32_t *x, const int32_t *w0, int32_t depth,
                            int32_t pairs, int32_t *acc, const int32_t *init)
{
    int32_t pair;

    for (pair = 0; pair < pairs; ++pair, acc += 8) {
        int32_t a0 = init[0], a1 = init[2], a2 = init[4], a3 = init[6];
        int32_t a4 = init[1], a5 = init[3], a6 = init[5], a7 = init[7];
        const int32_t *w = w0;
        const int32_t *const end = x + depth; /* this row pair: depth / 2 pairs of 2 words */

#define TG_FC_DSP_STEP(j)                                                                \
        do {                                                                                 \
            const int32_t x0 = x[2 * (j)], x1 = x[2 * (j) + 1];                              \
            int32_t v = w[4 * (j)];                                                          \
            a0 = __smlad(x0, v, a0);                                                         \
            a4 = __smlad(x1, v, a4);                                                         \
            v = w[4 * (j) + 1];                                                              \
            a1 = __smlad(x0, v, a1);                                                         \
            a5 = __smlad(x1, v, a5);                                                         \
            v = w[4 * (j) + 2];                                                              \
            a2 = __smlad(x0, v, a2);                                                         \
            a6 = __smlad(x1, v, a6);                                                         \
            v = w[4 * (j) + 3];                                                              \
            a3 = __smlad(x0, v, a3);                                                         \
            a7 = __smlad(x1, v, a7);                                                         \
        } while (0)
        while (x != end) {
            TG_FC_DSP_STEP(0);
            TG_FC_DSP_STEP(1);
            TG_FC_DSP_STEP(2);
            TG_FC_DSP_STEP(3);
            x += 8;
            w += 16;
        }
#undef TG_FC_DSP_STEP
        acc[0] = a0;
        acc[1] = a4;
        acc[2] = a1;
        acc[3] = a5;
        acc[4] = a2;
        acc[5] = a6;
        acc[6] = a3;
        acc[7] = a7;
    }
}
#endif

/* The weights of 4 channels, w + c * stride for c < 4, each len bytes (len % 8 == 0),
 * widened to the tile's layout (word 4 j + c = channel c's pair j). With GCC (optimising)
 * one assembly loop takes a word of each channel per turn and stores the 8 words they
 * give with one STM: 15 instructions per 16 weights, against about 36 channel by channel.
 * Elsewhere it is tg_fc_dsp_widen per channel. */
#if TG_FC_DSP_ASM
__attribute__((noinline, optimize("omit-frame-pointer")))
static void tg_fc_dsp_widen4(const int8_t *w, size_t stride, int32_t len, int32_t *dst)
{
    const int8_t *p0 = w, *p1 = w + stride, *p2 = w + 2 * stride, *p3 = w + 3 * stride;
    const int8_t *const end = w + len;

    __asm__ volatile("1:\n\t"
                     "ldr r0, [%[p0]], #4\n\t"
                     "ldr r1, [%[p1]], #4\n\t"
                     "ldr r2, [%[p2]], #4\n\t"
                     "ldr r3, [%[p3]], #4\n\t"
                     "sxtb16 r4, r0, ror #8\n\t"
                     "sxtb16 r5, r1, ror #8\n\t"
                     "sxtb16 r6, r2, ror #8\n\t"
                     "sxtb16 r7, r3, ror #8\n\t"
                     "sxtb16 r0, r0\n\t"
                     "sxtb16 r1, r1\n\t"
                     "sxtb16 r2, r2\n\t"
                     "sxtb16 r3, r3\n\t"
                     "stmia %[d]!, {r0-r7}\n\t"
                     "cmp %[p0], %[end]\n\t"
                     "bne 1b\n\t"
                     : [p0] "+r"(p0), [p1] "+r"(p1), [p2] "+r"(p2), [p3] "+r"(p3),
                       [d] "+r"(dst)
                     : [end] "r"(end)
                     : "r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "cc", "memory");
}
#else
static void tg_fc_dsp_widen4(const int8_t *w, size_t stride, int32_t len, int32_t *dst)
{
    int32_t c;

    for (c = 0; c < 4; ++c) {
        tg_fc_dsp_widen(w + (size_t)c * stride, len, len, 0, dst + c, 4);
    }
}
#endif

/* One output channel's constants: its bias and requantization (tg_math.h). The tiles now
 * start the accumulators at the bias, so tg_fc_dsp_requant passes bias 0; taking tg_requant_t
 * alone instead was measured at 0.2 M more instructions per mcu-tiny inference with GCC. */
typedef struct {
    int32_t bias;
    tg_requant_t q;
} tg_fc_dsp_channel_t;

/* One output: clamp(MBQM(acc + bias) + zp_out); the bias wraps as TFLM's int32 addition
 * does. */
static inline int8_t tg_fc_dsp_out(int32_t acc, const tg_fc_dsp_channel_t *ch,
                                   const tg_fc_params_t *p)
{
    return tg_requantize_s8(tg_add_wrap_s32(acc, ch->bias), ch->q.multiplier, ch->q.shift,
                            p->output_zero_point, p->act_min, p->act_max);
}

/* The n outputs of one channel in a block (out: stride bytes apart), from its
 * accumulators acc[0], acc[1], acc[8], acc[9], ... (two rows per 8 words). A fast
 * channel with the full clamp: SSAT to [-256, 255] first keeps the clamp exact (act - zp
 * lies in [-255, 255]), then zp and SSAT to int8. */
static inline void tg_fc_dsp_channel_out(const int32_t *acc, int32_t n,
                                         const tg_fc_dsp_channel_t *ch, int32_t full,
                                         const tg_fc_params_t *p, int8_t *out, size_t stride)
{
    int32_t r;

    if (ch->q.fast && full) {
        const tg_requant_t q = ch->q;
        const int32_t bias = ch->bias, zp_out = p->output_zero_point;

#define TG_FC_DSP_FAST(a)                                                                \
    (int8_t) __ssat(                                                                     \
        __ssat(tg_requant_scale_fast(tg_add_wrap_s32((a), bias), &q), 9) + zp_out, 8)
        for (r = 0; r + 2 <= n; r += 2, acc += 8, out += 2 * stride) {
            out[0] = TG_FC_DSP_FAST(acc[0]);
            out[stride] = TG_FC_DSP_FAST(acc[1]);
        }
        if (r < n) {
            out[0] = TG_FC_DSP_FAST(acc[0]);
        }
#undef TG_FC_DSP_FAST
        return;
    }
    if (ch->q.fast) { /* a fused activation's clamp: the same order as tg_requantize_s8 */
        const tg_requant_t q = ch->q;
        const int32_t bias = ch->bias, zp_out = p->output_zero_point;
        const int32_t lo = p->act_min - zp_out, hi = p->act_max - zp_out;

        for (r = 0; r < n; ++r, out += stride) {
            *out = (int8_t)(tg_clamp_s32(tg_requant_scale_fast(
                                             tg_add_wrap_s32(acc[(r >> 1) * 8 + (r & 1)],
                                                             bias), &q),
                                         lo, hi) + zp_out);
        }
        return;
    }
    for (r = 0; r < n; ++r, out += stride) {
        *out = tg_fc_dsp_out(acc[(r >> 1) * 8 + (r & 1)], ch, p);
    }
}

/* The n outputs of one channel (as tg_fc_dsp_channel_out; the accumulators hold the bias
 * already). Channels with the full clamp and a right shift in [2, 22] take one more step
 * than tg_fc_dsp_channel_out's fast path: the output zero point joins the high word of
 * the SMLAL's start, zp 2^(right - 1) beside 2^(right - 2), so the arithmetic shift gives
 * MBQM(acc) + zp at once (|hi| < 2^30 + 2^29 + 1 and |zp| 2^(right - 1) <= 2^28, so the
 * word does not overflow), and |MBQM(acc)| < 2^29 means one SSAT to int8 is the clamp:
 * 8 instructions per output. */
static inline void tg_fc_dsp_requant(const int32_t *acc, int32_t n, int32_t multiplier,
                                     int32_t shift, int32_t full, const tg_fc_params_t *p,
                                     int8_t *out, size_t stride)
{
    if (full && shift <= -2 && shift >= -22) {
        const int32_t asr = -shift - 1;
        const int32_t m = multiplier;
        const uint32_t k = ((uint32_t)1 << (asr - 1)) +
                           ((uint32_t)p->output_zero_point << asr);

#define TG_FC_DSP_FOLD(a)                                                                \
    (int8_t) __ssat(                                                                     \
        tg_asr_s32(tg_s32_from_u32((uint32_t)(                                           \
                       ((((uint64_t)(k - ((uint32_t)(a) >> 31)) << 32) |                 \
                         (((uint32_t)(a) & 0x80000000u) | 0x40000000u)) +                \
                        (uint64_t)((int64_t)(a) * m)) >>                                 \
                       32)),                                                             \
                   asr),                                                                 \
        8)
        const int32_t *const last = acc + (size_t)(n >> 2) * 16u;
        int32_t r;

#if TG_FC_DSP_ASM
        /* GCC spills the C's 13 live values; written out, 35 instructions per 4 rows */
        if (acc != last) {
            int32_t a0, a1, lo, hi;

#define TG_FC_DSP_FOLD_ASM(a, dst)                                                       \
    "and %[lo], " a ", #0x80000000\n\t"                                                 \
    "orr %[lo], %[lo], #0x40000000\n\t"                                                 \
    "add %[hi], %[k], " a ", asr #31\n\t"                                               \
    "smlal %[lo], %[hi], " a ", %[m]\n\t"                                               \
    "asr %[hi], %[hi], %[asr]\n\t"                                                      \
    "ssat %[hi], #8, %[hi]\n\t"                                                         \
    "strb %[hi], " dst "\n\t"
#define TG_FC_DSP_FOLD_PAIR(offset)                                                      \
    "ldrd %[a0], %[a1], [%[acc], #" offset "]\n\t"                                      \
    TG_FC_DSP_FOLD_ASM("%[a0]", "[%[out]]")                                              \
    TG_FC_DSP_FOLD_ASM("%[a1]", "[%[out], %[stride]]")                                   \
    "add %[out], %[out], %[stride], lsl #1\n\t"
            __asm__ volatile("1:\n\t" TG_FC_DSP_FOLD_PAIR("0") TG_FC_DSP_FOLD_PAIR("32")
                             "add %[acc], %[acc], #64\n\t"
                             "cmp %[acc], %[last]\n\t"
                             "bne 1b\n\t"
                             : [acc] "+r"(acc), [out] "+r"(out), [a0] "=&r"(a0),
                               [a1] "=&r"(a1), [lo] "=&r"(lo), [hi] "=&r"(hi)
                             : [last] "r"(last), [stride] "r"(stride), [m] "r"(m),
                               [k] "r"(k), [asr] "r"(asr)
                             : "cc", "memory");
#undef TG_FC_DSP_FOLD_PAIR
#undef TG_FC_DSP_FOLD_ASM
        }
#else
        for (; acc != last; acc += 16, out += 4 * stride) { /* four rows per turn */
            const int32_t a0 = acc[0], a1 = acc[1], a2 = acc[8], a3 = acc[9];

            out[0] = TG_FC_DSP_FOLD(a0);
            out[stride] = TG_FC_DSP_FOLD(a1);
            out[2 * stride] = TG_FC_DSP_FOLD(a2);
            out[3 * stride] = TG_FC_DSP_FOLD(a3);
        }
#endif
        for (r = 0; r < (n & 3); ++r, out += stride) {
            const int32_t a0 = acc[(r >> 1) * 8 + (r & 1)];

            out[0] = TG_FC_DSP_FOLD(a0);
        }
#undef TG_FC_DSP_FOLD
        return;
    }
    {
        tg_fc_dsp_channel_t ch;

        ch.bias = 0;
        ch.q = tg_requant_prepare(multiplier, shift);
        tg_fc_dsp_channel_out(acc, n, &ch, full, p, out, stride);
    }
}

/* The scratch as the kernels below lay it out: one weight group (2 depth words), then
 * block_pairs row pairs (depth words each), their accumulators (8 words a pair), then
 * `extra` words a pair for the caller. -> block_pairs, as many as buf_words holds. */
static inline int32_t tg_fc_dsp_layout(int32_t *buf, int32_t buf_words, int32_t depth,
                                       int32_t extra, int32_t **wbuf, int32_t **xbuf,
                                       int32_t **accs)
{
    const int32_t pairs = (buf_words - 2 * depth) / (depth + 8 + extra);

    *wbuf = buf;
    *xbuf = buf + 2 * depth;
    *accs = *xbuf + pairs * depth;
    return pairs;
}

static inline int tg_fc_dsp_s8(const int8_t *input, int8_t *output, const tg_fc_params_t *p,
                               int32_t *buf, int32_t buf_words)
{
    const int32_t rows = p->rows;
    const int32_t in_features = p->in_features;
    const int32_t out_features = p->out_features;
    const int32_t depth = tg_fc_dsp_depth(in_features);
    const int32_t full = p->act_min == INT8_MIN && p->act_max == INT8_MAX;
    const size_t in_stride = (size_t)in_features;
    const size_t out_stride = (size_t)out_features;
    int32_t block_pairs;
    int32_t *wbuf, *xbuf, *accs;
    int32_t r0;

    if (buf_words < tg_fc_dsp_min_words(in_features)) {
        return 0;
    }
    block_pairs = tg_fc_dsp_layout(buf, buf_words, depth, 0, &wbuf, &xbuf, &accs);
    for (r0 = 0; r0 < rows; r0 += 2 * block_pairs) {
        const int32_t block_rows =
            rows - r0 < 2 * block_pairs ? rows - r0 : 2 * block_pairs;
        int32_t o, r, c;

        /* the block's rows minus the input zero point (|x - zp| <= 255 fits int16), in
         * pairs; an odd last row is paired with one whose outputs are not stored */
        for (r = 0; r < block_rows; ++r) {
            tg_fc_dsp_widen(input + (size_t)(r0 + r) * in_stride, in_features, depth,
                            -p->input_zero_point, xbuf + (r / 2) * depth + (r & 1), 2);
        }
        if (block_rows & 1) {
            tg_fc_dsp_widen(input, 0, depth, 0, xbuf + (block_rows / 2) * depth + 1, 2);
        }
        for (o = 0; o < out_features; o += 4) {
            const int32_t n_ch = out_features - o < 4 ? out_features - o : 4;
            int32_t init[8];

            if (n_ch == 4 && (in_features & 7) == 0) {
                tg_fc_dsp_widen4(p->weights + (size_t)o * in_stride, in_stride, in_features,
                                 wbuf);
            } else {
                for (c = 0; c < 4; ++c) {
                    if (c < n_ch) {
                        tg_fc_dsp_widen(p->weights + (size_t)(o + c) * in_stride,
                                        in_features, depth, 0, wbuf + c, 4);
                    } else {
                        tg_fc_dsp_widen(p->weights, 0, depth, 0, wbuf + c, 4);
                    }
                }
            }
            if (p->bias == NULL) {
                tg_fc_dsp_tiles(xbuf, wbuf, depth, (block_rows + 1) / 2, accs, tg_fc_dsp_zeros);
            } else {
                for (c = 0; c < 4; ++c) {
                    init[2 * c] = c < n_ch ? p->bias[o + c] : 0;
                    init[2 * c + 1] = init[2 * c];
                }
                tg_fc_dsp_tiles(xbuf, wbuf, depth, (block_rows + 1) / 2, accs, init);
            }
            {
                const int32_t *acc = accs;
                const int32_t *const acc_end = accs + 2 * n_ch;
                const int32_t *mult = p->multiplier + o;
                const int8_t *shift = p->shift + o;
                int8_t *out = output + (size_t)r0 * out_stride + (size_t)o;

                for (; acc != acc_end; acc += 2, ++mult, ++shift, ++out) {
                    tg_fc_dsp_requant(acc, block_rows, *mult, *shift, full, p, out, out_stride);
                }
            }
        }
    }
    return 1;
}

/* dst[stride * j] = pair j of the len values src[0], src[step], src[2 step], ... plus
 * offset, in the pairing tg_fc_dsp_widen gives contiguous values (elements 4i, 4i + 2 in
 * word 2i and 4i + 1, 4i + 3 in word 2i + 1), for j in [0, depth / 2); past len the values
 * are offset. For operands the compiler stores transposed or at a head's stride. */
static inline void tg_fc_dsp_widen_strided(const int8_t *src, size_t step, int32_t len,
                                           int32_t depth, int32_t offset, int32_t *dst,
                                           int32_t stride)
{
    int32_t k = 0, i;

#define TG_FC_DSP_PACK(e0, e1, e2, e3)                                                   \
    do {                                                                                 \
        dst[0] = tg_s32_from_u32(((uint32_t)(e0) & 0xFFFFu) | ((uint32_t)(e2) << 16));  \
        dst[stride] = tg_s32_from_u32(((uint32_t)(e1) & 0xFFFFu) | ((uint32_t)(e3) << 16)); \
        dst += 2 * stride;                                                               \
    } while (0)
    for (; k + 4 <= len; k += 4, src += 4 * step) {
        TG_FC_DSP_PACK(src[0] + offset, src[step] + offset, src[2 * step] + offset,
                       src[3 * step] + offset);
    }
    for (; k < depth; k += 4) { /* src: element k of the first such group */
        int32_t e[4];

        for (i = 0; i < 4; ++i) {
            e[i] = (k + i < len ? (int32_t)src[(size_t)(k + i - (len & ~3)) * step] : 0) +
                   offset;
        }
        TG_FC_DSP_PACK(e[0], e[1], e[2], e[3]);
    }
#undef TG_FC_DSP_PACK
}

/* The least scratch tg_fc_dsp_matmul_s8 takes for depth k: tg_fc_dsp_min_words plus one
 * row sum per row of a row pair. */
static inline int32_t tg_fc_dsp_matmul_min_words(int32_t k)
{
    return tg_fc_dsp_min_words(k) + 2;
}

/* The scratch a build plans for an (m, k) x (k, n) product: tg_fc_dsp_words plus one row
 * sum per row it holds. */
static inline int32_t tg_fc_dsp_matmul_words(int32_t m, int32_t k)
{
    const int32_t words = tg_fc_dsp_words(m, k);
    const int32_t depth = tg_fc_dsp_depth(k);

    return words + 2 * ((words - 2 * depth) / (depth + 8));
}

/* An int8 matrix product with both operands' zero points and one requantization:
 *   out[i * out_row + j] = clamp(MBQM(sum_t (a_it - za)(b_jt - zb)) + zo, -128, 127)
 * with a_it at a + i * a_row + t * a_col and b_jt at b + j * b_row + t * b_col (so b's
 * rows are the output's columns), i < m, j < n, t < k: TFLM's BATCH_MATMUL int8 for one
 * batch. The 2 x 4 tiles of tg_fc_dsp_tiles take the products with a widened minus za
 * and b widened as it is; the zb terms are subtracted per row afterwards, exactly:
 * sum (a - za)(b - zb) = sum (a - za) b - zb sum (a - za) (each term below 2^31 for
 * k < 2^16). -> 1 when done, 0 (nothing written) when buf is smaller than
 * tg_fc_dsp_matmul_min_words(k). out must not overlap a, b or buf. */
static inline int tg_fc_dsp_matmul_s8(const int8_t *a, size_t a_row, size_t a_col,
                                      const int8_t *b, size_t b_row, size_t b_col,
                                      int8_t *out, size_t out_row, int32_t m, int32_t k,
                                      int32_t n, int32_t za, int32_t zb, int32_t zo,
                                      int32_t multiplier, int32_t shift, int32_t *buf,
                                      int32_t buf_words)
{
    const int32_t depth = tg_fc_dsp_depth(k);
    tg_fc_params_t fp; /* what tg_fc_dsp_channel_out reads: the full clamp and zo */
    int32_t block_pairs;
    int32_t *wbuf, *xbuf, *accs, *sums;
    int32_t r0;

    if (buf_words < tg_fc_dsp_matmul_min_words(k)) {
        return 0;
    }
    block_pairs = tg_fc_dsp_layout(buf, buf_words, depth, 2, &wbuf, &xbuf, &accs);
    sums = accs + 8 * block_pairs;
    memset(&fp, 0, sizeof fp);
    fp.output_zero_point = zo;
    fp.act_min = INT8_MIN;
    fp.act_max = INT8_MAX;
    for (r0 = 0; r0 < m; r0 += 2 * block_pairs) {
        const int32_t block_rows = m - r0 < 2 * block_pairs ? m - r0 : 2 * block_pairs;
        int32_t o, r, c, t;

        for (r = 0; r < block_rows; ++r) { /* rows minus za, and their sums */
            const int8_t *const row = a + (size_t)(r0 + r) * a_row;
            int32_t *const dst = xbuf + (r / 2) * depth + (r & 1);
            int32_t sum = 0;

            if (a_col == 1u) {
                tg_fc_dsp_widen(row, k, depth, -za, dst, 2);
            } else {
                tg_fc_dsp_widen_strided(row, a_col, k, depth, -za, dst, 2);
            }
            for (t = 0; t < k; ++t) {
                sum += (int32_t)row[(size_t)t * a_col];
            }
            sums[r] = sum - k * za;
        }
        if (block_rows & 1) {
            tg_fc_dsp_widen(a, 0, depth, 0, xbuf + (block_rows / 2) * depth + 1, 2);
            sums[block_rows] = 0;
        }
        for (o = 0; o < n; o += 4) {
            const int32_t n_ch = n - o < 4 ? n - o : 4;

            for (c = 0; c < 4; ++c) {
                const int8_t *const col = b + (size_t)(o + c) * b_row;

                if (c >= n_ch) {
                    tg_fc_dsp_widen(b, 0, depth, 0, wbuf + c, 4);
                } else if (b_col == 1u) {
                    tg_fc_dsp_widen(col, k, depth, 0, wbuf + c, 4);
                } else {
                    tg_fc_dsp_widen_strided(col, b_col, k, depth, 0, wbuf + c, 4);
                }
            }
            tg_fc_dsp_tiles(xbuf, wbuf, depth, (block_rows + 1) / 2, accs, tg_fc_dsp_zeros);
            if (zb != 0) {
                for (r = 0; r < block_rows; ++r) {
                    int32_t *const acc = accs + (r >> 1) * 8 + (r & 1);
                    const int32_t fix = zb * sums[r];

                    for (c = 0; c < n_ch; ++c) {
                        acc[2 * c] -= fix;
                    }
                }
            }
            for (c = 0; c < n_ch; ++c) {
                tg_fc_dsp_requant(accs + 2 * c, block_rows, multiplier, shift, 1, &fp,
                                  out + (size_t)r0 * out_row + (size_t)(o + c), out_row);
            }
        }
    }
    return 1;
}

#endif /* TG_FC_DSP */

#endif /* TG_FC_DSP_H */
