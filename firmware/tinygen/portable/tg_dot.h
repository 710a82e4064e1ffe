/*
 * tinygen portable kernels: int8 dot products over contiguous vectors, shared by the
 * matrix kernels (tg_fully_connected_s8.c, tg_conv2d_s8.c, tg_batch_matmul_s8.c), so that
 * every one of them runs the same inner loops.
 *
 * Each helper ADDS raw products sum_t a[t] * b[t] (no zero points: the callers apply
 * them through row sums, exactly) to int32 accumulators. The caller bounds len so that
 * no accumulator can overflow (len * 128 * 128 below 2^31 per call and in total).
 *
 * Cost on a Cortex-M4 at -O2 (plain C, no DSP intrinsics): the 2x2 tile loads two bytes
 * of each operand pair for four MACs, 8 MACs per input byte pair unrolled by 8: about 2.2
 * instructions per MAC (32 loads, 32 multiply-accumulates, 4 pointer steps and the loop
 * test per 32 MACs). The 2x2 tile is the largest whose accumulators, pointers and loaded
 * values fit the 13 general registers a Thumb-2 loop has, so nothing spills.
 *
 * On x86 (SSE2, every x86-64 host build) the same helpers take 16 bytes per operand and
 * step: widened to int16 and multiplied in pairs into int32 lanes (PMADDWD), which made
 * the host build 2.0x (mcu-tiny) and 4.6x (paper-5m) faster (bench/bench_host.py).
 */
#ifndef TG_DOT_H
#define TG_DOT_H

#include <stdint.h>

#include "../tg_math.h"

/* TG_DOT_SSE2: 1 on x86 with SSE2 (every x86-64), where the dot products widen 16 bytes
 * of each operand to int16 and sum pairs of products into int32 lanes (PMADDWD: 8 MACs
 * per instruction), the host builds' case; the same integer sums as the scalar loops
 * (each pair of products is at most 2^15, so no lane can overflow within the caller's
 * bound). Define TG_DOT_SSE2 0 to build the scalar loops everywhere. */
#ifndef TG_DOT_SSE2
#if defined(__SSE2__)
#define TG_DOT_SSE2 1
#else
#define TG_DOT_SSE2 0
#endif
#endif

#if TG_DOT_SSE2
#include <emmintrin.h>

/* int8 lanes 0..7 (lo) or 8..15 (hi) of v, sign-extended to int16. */
static inline __m128i tg_dot_sse2_lo(__m128i v)
{
    return _mm_srai_epi16(_mm_unpacklo_epi8(v, v), 8);
}

static inline __m128i tg_dot_sse2_hi(__m128i v)
{
    return _mm_srai_epi16(_mm_unpackhi_epi8(v, v), 8);
}

static inline __m128i tg_dot_sse2_load(const int8_t *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

/* The sum of the four int32 lanes. Each lane and each partial sum is a sum of some of
 * the caller's products, so the caller's bound keeps every one within int32. */
static inline int32_t tg_dot_sse2_sum(__m128i s)
{
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* s += the products of 16 int8 lanes of va and vb, summed in pairs into 4 int32 lanes. */
#define TG_DOT_SSE2_MAC(s, va, vb)                                                       \
    (s) = _mm_add_epi32(                                                                 \
        (s), _mm_add_epi32(_mm_madd_epi16(tg_dot_sse2_lo(va), tg_dot_sse2_lo(vb)),       \
                           _mm_madd_epi16(tg_dot_sse2_hi(va), tg_dot_sse2_hi(vb))))
#endif

/* acc[0] += a0.b0, acc[1] += a0.b1, acc[2] += a1.b0, acc[3] += a1.b1 over len >= 0. */
static inline void tg_dot_2x2_s8(const int8_t *a0, const int8_t *a1, const int8_t *b0,
                                 const int8_t *b1, int32_t len, int32_t acc[4])
{
    int32_t s00 = acc[0], s01 = acc[1], s10 = acc[2], s11 = acc[3];
    const int8_t *end8, *end;

#if TG_DOT_SSE2
    if (len >= 16) {
        const int8_t *const end16 = a0 + (len & ~15);
        __m128i v00 = _mm_setzero_si128(), v01 = v00, v10 = v00, v11 = v00;
        while (a0 != end16) {
            const __m128i x0 = tg_dot_sse2_load(a0), x1 = tg_dot_sse2_load(a1);
            const __m128i y0 = tg_dot_sse2_load(b0), y1 = tg_dot_sse2_load(b1);
            const __m128i x0l = tg_dot_sse2_lo(x0), x0h = tg_dot_sse2_hi(x0);
            const __m128i x1l = tg_dot_sse2_lo(x1), x1h = tg_dot_sse2_hi(x1);
            const __m128i y0l = tg_dot_sse2_lo(y0), y0h = tg_dot_sse2_hi(y0);
            const __m128i y1l = tg_dot_sse2_lo(y1), y1h = tg_dot_sse2_hi(y1);
            v00 = _mm_add_epi32(v00, _mm_add_epi32(_mm_madd_epi16(x0l, y0l),
                                                   _mm_madd_epi16(x0h, y0h)));
            v01 = _mm_add_epi32(v01, _mm_add_epi32(_mm_madd_epi16(x0l, y1l),
                                                   _mm_madd_epi16(x0h, y1h)));
            v10 = _mm_add_epi32(v10, _mm_add_epi32(_mm_madd_epi16(x1l, y0l),
                                                   _mm_madd_epi16(x1h, y0h)));
            v11 = _mm_add_epi32(v11, _mm_add_epi32(_mm_madd_epi16(x1l, y1l),
                                                   _mm_madd_epi16(x1h, y1h)));
            a0 += 16;
            a1 += 16;
            b0 += 16;
            b1 += 16;
        }
        s00 += tg_dot_sse2_sum(v00);
        s01 += tg_dot_sse2_sum(v01);
        s10 += tg_dot_sse2_sum(v10);
        s11 += tg_dot_sse2_sum(v11);
        len &= 15;
    }
#endif
    end8 = a0 + (len & ~7);
    end = a0 + len;

#define TG_DOT_2X2_STEP(t)                                                               \
    do {                                                                                 \
        const int32_t x0 = a0[t], x1 = a1[t], y0 = b0[t], y1 = b1[t];                    \
        s00 += x0 * y0;                                                                  \
        s01 += x0 * y1;                                                                  \
        s10 += x1 * y0;                                                                  \
        s11 += x1 * y1;                                                                  \
    } while (0)
    while (a0 != end8) {
        TG_DOT_2X2_STEP(0);
        TG_DOT_2X2_STEP(1);
        TG_DOT_2X2_STEP(2);
        TG_DOT_2X2_STEP(3);
        TG_DOT_2X2_STEP(4);
        TG_DOT_2X2_STEP(5);
        TG_DOT_2X2_STEP(6);
        TG_DOT_2X2_STEP(7);
        a0 += 8;
        a1 += 8;
        b0 += 8;
        b1 += 8;
    }
    while (a0 != end) {
        TG_DOT_2X2_STEP(0);
        ++a0;
        ++a1;
        ++b0;
        ++b1;
    }
#undef TG_DOT_2X2_STEP
    acc[0] = s00;
    acc[1] = s01;
    acc[2] = s10;
    acc[3] = s11;
}

/* acc[0] += a.b0, acc[1] += a.b1 over len >= 0. */
static inline void tg_dot_1x2_s8(const int8_t *a, const int8_t *b0, const int8_t *b1,
                                 int32_t len, int32_t acc[2])
{
    int32_t s0 = acc[0], s1 = acc[1];
    const int8_t *end4, *end;

#if TG_DOT_SSE2
    if (len >= 16) {
        const int8_t *const end16 = a + (len & ~15);
        __m128i v0 = _mm_setzero_si128(), v1 = v0;
        while (a != end16) {
            const __m128i x = tg_dot_sse2_load(a);
            TG_DOT_SSE2_MAC(v0, x, tg_dot_sse2_load(b0));
            TG_DOT_SSE2_MAC(v1, x, tg_dot_sse2_load(b1));
            a += 16;
            b0 += 16;
            b1 += 16;
        }
        s0 += tg_dot_sse2_sum(v0);
        s1 += tg_dot_sse2_sum(v1);
        len &= 15;
    }
#endif
    end4 = a + (len & ~3);
    end = a + len;

#define TG_DOT_1X2_STEP(t)                                                               \
    do {                                                                                 \
        const int32_t x = a[t];                                                          \
        s0 += x * b0[t];                                                                 \
        s1 += x * b1[t];                                                                 \
    } while (0)
    while (a != end4) {
        TG_DOT_1X2_STEP(0);
        TG_DOT_1X2_STEP(1);
        TG_DOT_1X2_STEP(2);
        TG_DOT_1X2_STEP(3);
        a += 4;
        b0 += 4;
        b1 += 4;
    }
    while (a != end) {
        TG_DOT_1X2_STEP(0);
        ++a;
        ++b0;
        ++b1;
    }
#undef TG_DOT_1X2_STEP
    acc[0] = s0;
    acc[1] = s1;
}

/* a.b over len >= 0. */
static inline int32_t tg_dot_1x1_s8(const int8_t *a, const int8_t *b, int32_t len)
{
    int32_t s = 0;
    int32_t t = 0;

#if TG_DOT_SSE2
    if (len >= 16) {
        __m128i v = _mm_setzero_si128();
        for (; t + 16 <= len; t += 16) {
            TG_DOT_SSE2_MAC(v, tg_dot_sse2_load(a + t), tg_dot_sse2_load(b + t));
        }
        s = tg_dot_sse2_sum(v);
    }
#endif
    for (; t < len; ++t) {
        s += (int32_t)a[t] * b[t];
    }
    return s;
}

/* sum of a[0..len). */
static inline int32_t tg_sum_s8(const int8_t *a, int32_t len)
{
    int32_t s = 0;
    int32_t t = 0;

    for (; t + 4 <= len; t += 4) {
        s += (int32_t)a[t] + a[t + 1] + a[t + 2] + a[t + 3];
    }
    for (; t < len; ++t) {
        s += a[t];
    }
    return s;
}

/* ---- packed pairs: two MACs per 64-bit multiply-accumulate ---------------------------
 *
 * Two int8 vectors b0, b1 are packed once into int32 words b0[t] + b1[t] * 2^23 (at most
 * 2^30 + 2^7 in magnitude). Then a[t] * packed[t], accumulated in int64 (one SMLAL on an
 * Armv7-M), is A + B * 2^23 with A = sum a.b0 and B = sum a.b1. Over at most
 * TG_DOT_PACK_CHUNK = 128 terms |A| <= 2^21 < 2^22, so A is the low 23 bits read as a signed
 * number and B = (sum - A) / 2^23, both exact. With two rows sharing each packed word,
 * the loop takes about 1.4 instructions per MAC on a Cortex-M4 at -O2 (two byte loads,
 * one word load and two SMLALs per four MACs, unrolled by 8). */
#define TG_DOT_PACK_CHUNK 128

/* TG_DOT_MUL64: 1 where a 32x32 -> 64-bit multiply-accumulate is one instruction (Armv7-M
 * and later Thumb-2 cores: SMLAL; 64-bit hosts), so the packed loop pays; 0 elsewhere
 * (Armv6-M, Xtensa lx106: a 64-bit product is a library call), where the callers keep the
 * byte-pair loop. Both give the same results; a build may set it with -D. */
#ifndef TG_DOT_MUL64
#if (defined(__ARM_ARCH) && __ARM_ARCH >= 7 && defined(__ARM_ARCH_ISA_THUMB) &&          \
     __ARM_ARCH_ISA_THUMB == 2) ||                                                       \
    defined(__aarch64__) || defined(__x86_64__)
#define TG_DOT_MUL64 1
#else
#define TG_DOT_MUL64 0
#endif
#endif

/* packed[t] = b0[t] + b1[t] * 2^23 for t in [0, len). */
static inline void tg_pack_pair_s8(const int8_t *b0, const int8_t *b1, int32_t len,
                                   int32_t *packed)
{
    int32_t t;

    for (t = 0; t < len; ++t) {
        packed[t] = (int32_t)b0[t] + (int32_t)b1[t] * ((int32_t)1 << 23);
    }
}

/* Split one chunk's sum A + B * 2^23 (|A| < 2^22, |B| < 2^22) into acc[0] += A and
 * acc[1] += B. The low 32 bits of the two's complement sum are enough for A; B is bits
 * 23..54, read through unsigned shifts. */
static inline void tg_unpack_pair(int64_t sum, int32_t acc[2])
{
    const uint64_t u = (uint64_t)sum;
    const int32_t a = tg_s32_from_u32((((uint32_t)u & 0x7FFFFFu) ^ 0x400000u)) - 0x400000;

    acc[0] += a;
    acc[1] += tg_s32_from_u32((uint32_t)((u - (uint64_t)(int64_t)a) >> 23));
}

/* acc[0] += a0.b0, acc[1] += a0.b1, acc[2] += a1.b0, acc[3] += a1.b1 over len >= 0, with
 * b0 and b1 given as packed by tg_pack_pair_s8. */
static inline void tg_dot_2x2_packed_s8(const int8_t *a0, const int8_t *a1,
                                        const int32_t *packed, int32_t len, int32_t acc[4])
{
    while (len > 0) {
        const int32_t n = len < TG_DOT_PACK_CHUNK ? len : TG_DOT_PACK_CHUNK;
        const int8_t *const end8 = a0 + (n & ~7);
        const int8_t *const end = a0 + n;
        int64_t s0 = 0, s1 = 0;

#define TG_DOT_PACKED_STEP(t)                                                            \
    do {                                                                                 \
        const int32_t w = packed[t];                                                     \
        s0 += (int64_t)a0[t] * w;                                                        \
        s1 += (int64_t)a1[t] * w;                                                        \
    } while (0)
        while (a0 != end8) {
            TG_DOT_PACKED_STEP(0);
            TG_DOT_PACKED_STEP(1);
            TG_DOT_PACKED_STEP(2);
            TG_DOT_PACKED_STEP(3);
            TG_DOT_PACKED_STEP(4);
            TG_DOT_PACKED_STEP(5);
            TG_DOT_PACKED_STEP(6);
            TG_DOT_PACKED_STEP(7);
            a0 += 8;
            a1 += 8;
            packed += 8;
        }
#undef TG_DOT_PACKED_STEP
        while (a0 != end) {
            s0 += (int64_t)*a0++ * *packed;
            s1 += (int64_t)*a1++ * *packed++;
        }
        tg_unpack_pair(s0, acc);
        tg_unpack_pair(s1, acc + 2);
        len -= n;
    }
}

#endif /* TG_DOT_H */
