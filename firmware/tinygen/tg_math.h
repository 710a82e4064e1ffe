/*
 * tinygen runtime: integer helpers shared by the portable kernels.
 *
 * These follow the semantics TensorFlow Lite Micro documents in
 * tensorflow/lite/kernels/internal/common.h and gemmlowp's fixedpoint.h (default build:
 * TFLITE_SINGLE_ROUNDING undefined), and tinygen/reference/kernels.py, which is the
 * contract they are tested against bit for bit (tests/test_c_kernels.py).
 *
 * Everything is plain C99 on int32_t / int64_t: no floating point, no libc, and no
 * behaviour C leaves undefined. Where TFLM's C++ relies on two's-complement wrap-around
 * (signed overflow, left shifts of negative values) the arithmetic is done on uint32_t
 * and converted back with tg_s32_from_u32, which is fully defined and compiles to
 * nothing. Right shifts of negative values go through tg_asr_s32, which is defined for
 * every input and compiles to one arithmetic shift.
 */
#ifndef TG_MATH_H
#define TG_MATH_H

#include <stdint.h>

/* TG_ACLE_DSP: 1 where the Arm DSP extension's ACLE intrinsics (<arm_acle.h>: __smlad,
 * __sxtb16, __sadd16, __qadd, __ssat) are available: __ARM_FEATURE_DSP (Cortex-M4, M7,
 * M33, M55) and GCC 10 or later, clang or Arm Compiler 6. Kernels use them only to do the
 * same integer arithmetic in fewer instructions. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP == 1 &&                              \
    (defined(__clang__) || defined(__ARMCC_VERSION) ||                                   \
     (defined(__GNUC__) && __GNUC__ >= 10))
#define TG_ACLE_DSP 1
#include <arm_acle.h>
#else
#define TG_ACLE_DSP 0
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ two's complement */

/* The int32 whose two's-complement bits are u (what a cast does on every compiler
 * tinygen targets, but without relying on implementation-defined behaviour). */
static inline int32_t tg_s32_from_u32(uint32_t u)
{
    if (u <= (uint32_t)INT32_MAX) {
        return (int32_t)u;
    }
    return (int32_t)(u - 0x80000000u) - INT32_MAX - 1;
}

/* a + b modulo 2^32 (TFLM's int32 adds, which wrap in practice). */
static inline int32_t tg_add_wrap_s32(int32_t a, int32_t b)
{
    return tg_s32_from_u32((uint32_t)a + (uint32_t)b);
}

/* a - b modulo 2^32. */
static inline int32_t tg_sub_wrap_s32(int32_t a, int32_t b)
{
    return tg_s32_from_u32((uint32_t)a - (uint32_t)b);
}

/* x * 2^shift modulo 2^32, shift in [0, 31] (TFLM's x * (1 << shift)). */
static inline int32_t tg_shl_wrap_s32(int32_t x, int32_t shift)
{
    return tg_s32_from_u32((uint32_t)x << shift);
}

/* floor(x / 2^shift), shift in [0, 31]: an arithmetic right shift. For x < 0, ~x is
 * non-negative, so both shifts are of non-negative values. */
static inline int32_t tg_asr_s32(int32_t x, int32_t shift)
{
    return x >= 0 ? (x >> shift) : ~(~x >> shift);
}

/* ---------------------------------------------------------------------- clamps */

static inline int32_t tg_clamp_s32(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

static inline int32_t tg_min_s32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

static inline int32_t tg_max_s32(int32_t a, int32_t b)
{
    return a > b ? a : b;
}

/* Count leading zeros of a 32-bit value; 32 for 0. */
static inline int32_t tg_clz_u32(uint32_t x)
{
    int32_t n = 0;
    if (x == 0u) {
        return 32;
    }
    if ((x & 0xFFFF0000u) == 0u) { n += 16; x <<= 16; }
    if ((x & 0xFF000000u) == 0u) { n += 8; x <<= 8; }
    if ((x & 0xF0000000u) == 0u) { n += 4; x <<= 4; }
    if ((x & 0xC0000000u) == 0u) { n += 2; x <<= 2; }
    if ((x & 0x80000000u) == 0u) { n += 1; }
    return n;
}

/* ------------------------------------------------------ gemmlowp fixed point */

/* round(a * b / 2^31), ties away from zero, for every (a, b) but (INT32_MIN, INT32_MIN).
 * gemmlowp adds a nudge of 2^30 (a * b >= 0) or 1 - 2^30 (a * b < 0) and divides by 2^31
 * truncating toward zero; for a negative product that truncation is a ceiling, and
 * ceil((ab + 1 - 2^30) / 2^31) = floor((ab + 2^30) / 2^31), so both signs are
 * floor((ab + 2^30) / 2^31): one 64-bit multiply-add and a shift. The quotient fits int32,
 * so its low 32 bits are bits 31..62 of the (two's complement) sum, which a logical shift
 * of the uint64 reads without a signed right shift. */
static inline int32_t tg_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    const uint64_t t = (uint64_t)((int64_t)a * (int64_t)b) + ((uint64_t)1 << 30);
    return tg_s32_from_u32((uint32_t)(t >> 31));
}

/* gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2^31), ties away from zero;
 * INT32_MIN * INT32_MIN, the one overflow, saturates to INT32_MAX (Arm VQRDMULH). */
static inline int32_t tg_sat_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    return tg_rounding_doubling_high_mul(a, b);
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero.
 * exponent in [0, 31]. */
static inline int32_t tg_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((uint32_t)1 << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return tg_asr_s32(x, exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLM MultiplyByQuantizedMultiplier(int32 x, int32 multiplier, int shift), default
 * (double-rounding) build: x * multiplier * 2^(shift - 31), i.e.
 * RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * 2^left, multiplier), right)
 * with left = max(shift, 0) (wrapping, as TFLM's int32 multiply does) and
 * right = max(-shift, 0). multiplier in [0, INT32_MAX], shift in [-31, 31].
 *
 * Both roundings in one 64-bit sum. With a = x * 2^left, h = floor((a m + 2^30) / 2^31)
 * (the high multiply; m >= 0 rules out its saturating case) and right = e >= 1,
 * RoundingDivideByPOT(h, e) = floor((h + 2^(e-1) - [h < 0]) / 2^e), and since
 * floor((floor(y) + c) / k) = floor((y + c) / k) for integers c, k,
 *     result = floor((a m + 2^30 + 2^(30+e) - [h < 0] 2^31) / 2^(31+e)).
 * [h < 0] may be replaced by [a < 0]: they differ only when a < 0 and h = 0, and then
 * both give 0. The sum fits int64 and the result int32, so it is the high word of the
 * sum shifted right arithmetically by e - 1. */
static inline int32_t tg_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier,
                                                          int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int32_t a = tg_shl_wrap_s32(x, left);
    uint64_t sum;

    if (right == 0) {
        return tg_rounding_doubling_high_mul(a, multiplier);
    }
    sum = (uint64_t)((int64_t)a * (int64_t)multiplier) + ((uint64_t)1 << 30) +
          ((uint64_t)1 << (30 + right)) - ((uint64_t)((uint32_t)a >> 31) << 31);
    return tg_asr_s32(tg_s32_from_u32((uint32_t)(sum >> 32)), right - 1);
}

/* int32 accumulator -> int8: rescale, add the output zero point, clamp to
 * [act_min, act_max] (a sub-range of [-128, 127]). The zero point is added after the
 * clamp bounds are moved by it, so no int32 addition can overflow. */
static inline int8_t tg_requantize_s8(int32_t acc, int32_t multiplier, int32_t shift,
                                      int32_t output_zero_point, int32_t act_min,
                                      int32_t act_max)
{
    const int32_t scaled = tg_multiply_by_quantized_multiplier(acc, multiplier, shift);
    return (int8_t)(tg_clamp_s32(scaled, act_min - output_zero_point,
                                 act_max - output_zero_point) + output_zero_point);
}

/* tg_multiply_by_quantized_multiplier for one multiplier and shift applied to many
 * values: tg_requant_prepare once, then tg_requant_scale per value. For shift <= -2
 * (right = -shift >= 2; every rescale below 1/4, the usual case) the 64-bit sum
 * a m + 2^30 + 2^(30 + right) - [a < 0] 2^31 above starts from the high word
 * 2^(right - 2) - [a < 0] and the low word 2^30 + [a < 0] 2^31, so a 32x32 -> 64-bit
 * multiply-accumulate (one SMLAL on Armv7-M) adds a m, and the result is the high word
 * shifted right by right - 1: no per-value shift arithmetic. Other shifts take
 * tg_multiply_by_quantized_multiplier as it stands. */
typedef struct {
    int32_t multiplier;
    int32_t shift;
    int32_t fast;  /* shift <= -2 */
    uint32_t high; /* 2^(right - 2) when fast */
    int32_t asr;   /* right - 1 when fast */
} tg_requant_t;

static inline tg_requant_t tg_requant_prepare(int32_t multiplier, int32_t shift)
{
    tg_requant_t q;

    q.multiplier = multiplier;
    q.shift = shift;
    q.fast = shift <= -2;
    q.high = q.fast ? (uint32_t)1 << (-shift - 2) : 0u;
    q.asr = q.fast ? -shift - 1 : 0;
    return q;
}

/* tg_multiply_by_quantized_multiplier(a, q->multiplier, q->shift), fast channels only. */
static inline int32_t tg_requant_scale_fast(int32_t a, const tg_requant_t *q)
{
    const uint32_t sign = (uint32_t)a & 0x80000000u;
    const uint64_t start = ((uint64_t)(q->high - (sign >> 31)) << 32) | (sign | 0x40000000u);
    const uint64_t sum = start + (uint64_t)((int64_t)a * q->multiplier);

    return tg_asr_s32(tg_s32_from_u32((uint32_t)(sum >> 32)), q->asr);
}

/* tg_multiply_by_quantized_multiplier(a, q->multiplier, q->shift). */
static inline int32_t tg_requant_scale(int32_t a, const tg_requant_t *q)
{
    return q->fast ? tg_requant_scale_fast(a, q)
                   : tg_multiply_by_quantized_multiplier(a, q->multiplier, q->shift);
}

/* gemmlowp SaturatingRoundingMultiplyByPOT<exponent> for exponent in [1, 30]: x * 2^exponent
 * saturated to the int32 range. */
static inline int32_t tg_sat_mul_by_pot(int32_t x, int32_t exponent)
{
    const int32_t threshold = (int32_t)(((uint32_t)1 << (31 - exponent)) - 1u);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return x * ((int32_t)1 << exponent); /* |x| <= threshold: fits */
}

/* gemmlowp exp_on_interval_between_negative_one_quarter_and_0_excl: exp(a) for a in
 * [-1/4, 0), Q0.31 in and out; Taylor series around -1/8 to the fourth order. */
static inline int32_t tg_exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a)
{
    const int32_t constant_term = 1895147668;    /* exp(-1/8) in Q0.31 */
    const int32_t constant_1_over_3 = 715827883; /* 1/3 in Q0.31 */
    const int32_t x = tg_add_wrap_s32(a, (int32_t)1 << 28); /* a + 1/8 */
    const int32_t x2 = tg_sat_rounding_doubling_high_mul(x, x);
    const int32_t x3 = tg_sat_rounding_doubling_high_mul(x2, x);
    const int32_t x4 = tg_sat_rounding_doubling_high_mul(x2, x2);
    const int32_t x4_over_4 = tg_rounding_divide_by_pot(x4, 2);
    const int32_t poly = tg_rounding_divide_by_pot(
        tg_add_wrap_s32(tg_sat_rounding_doubling_high_mul(tg_add_wrap_s32(x4_over_4, x3),
                                                          constant_1_over_3),
                        x2),
        1); /* x^4/24 + x^3/6 + x^2/2 */
    return tg_add_wrap_s32(constant_term, tg_sat_rounding_doubling_high_mul(
                                              constant_term, tg_add_wrap_s32(x, poly)));
}

/* gemmlowp exp_on_negative_values: exp(a) for a <= 0 given in Q(integer_bits).(31 -
 * integer_bits), integer_bits in [1, 29]; result in Q0.31 (exp(0) gives INT32_MAX).
 * a = (a mod 1/4) - 1/4 minus a sum of powers of two; exp of the first part comes from the
 * Taylor series, and each power of two 2^k (k = -2..4) present multiplies by exp(-2^k). */
static inline int32_t tg_exp_on_negative_values(int32_t a, int32_t integer_bits)
{
    static const int32_t barrel_multiplier[7] = {
        1672461947, /* exp(-1/4) */
        1302514674, /* exp(-1/2) */
        790015084,  /* exp(-1)   */
        290630308,  /* exp(-2)   */
        39332535,   /* exp(-4)   */
        720401,     /* exp(-8)   */
        242,        /* exp(-16)  */
    };
    const int32_t frac_bits = 31 - integer_bits;
    const int32_t one_quarter = (int32_t)1 << (frac_bits - 2);
    const int32_t a_mod_quarter_minus_quarter = (a & (one_quarter - 1)) - one_quarter;
    const uint32_t remainder = (uint32_t)a_mod_quarter_minus_quarter - (uint32_t)a;
    int32_t result = tg_exp_on_interval_between_negative_one_quarter_and_0_excl(
        tg_sat_mul_by_pot(a_mod_quarter_minus_quarter, integer_bits)); /* Rescale<0> */
    int32_t k;

    for (k = 0; k < 7; ++k) {
        const int32_t exponent = k - 2;
        if (integer_bits > exponent &&
            (remainder & ((uint32_t)1 << (frac_bits + exponent))) != 0u) {
            result = tg_sat_rounding_doubling_high_mul(result, barrel_multiplier[k]);
        }
    }
    if (integer_bits > 5 && a < -((int32_t)1 << (36 - integer_bits))) {
        result = 0; /* below -32: exp underflows Q0.31 */
    }
    return a == 0 ? INT32_MAX : result;
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1: 1 / (1 + a) for a in [0, 1), Q0.31 in and
 * out; three Newton-Raphson steps on the half denominator in Q2.29. */
static inline int32_t tg_one_over_one_plus_x_for_x_in_0_1(int32_t a)
{
    const int32_t constant_48_over_17 = 1515870810;      /* Q2.29 */
    const int32_t constant_neg_32_over_17 = -1010580540; /* Q2.29 */
    const int64_t sum = (int64_t)a + INT32_MAX;          /* RoundingHalfSum(a, 1) */
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = tg_add_wrap_s32(
        constant_48_over_17,
        tg_sat_rounding_doubling_high_mul(half_denominator, constant_neg_32_over_17));
    int32_t i;

    for (i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x =
            tg_sat_rounding_doubling_high_mul(half_denominator, x);
        const int32_t one_minus_half_denominator_times_x =
            tg_sub_wrap_s32((int32_t)1 << 29, half_denominator_times_x);
        x = tg_add_wrap_s32(x, tg_sat_mul_by_pot(tg_sat_rounding_doubling_high_mul(
                                                     x, one_minus_half_denominator_times_x),
                                                 2));
    }
    return tg_sat_mul_by_pot(x, 1); /* Rescale<0>(ExactMulByPot<-1>(x)) */
}

/* ------------------------------------------------------------------ square root */

/* floor(sqrt(v)), exact for every 64-bit v (bit-by-bit, 32 steps at most). */
static inline uint64_t tg_isqrt_u64(uint64_t v)
{
    uint64_t root = 0u;
    uint64_t bit = (uint64_t)1 << 62;

    while (bit > v) {
        bit >>= 2;
    }
    while (bit != 0u) {
        if (v >= root + bit) {
            v -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    return root;
}

#ifdef __cplusplus
}
#endif

#endif /* TG_MATH_H */
