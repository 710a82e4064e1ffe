/*
 * tinygen QEMU board sim-lx106: the two 64-bit integer helpers that Debian's
 * gcc-xtensa-lx106 libgcc lacks (it has __mulsi3 and the 64-bit shifts, not these).
 *
 * GCC calls them for int64_t arithmetic on a 32-bit core without a 64-bit multiply or
 * any divide: the runtime's requantization (TFLM's SaturatingRoundingDoublingHighMul,
 * a 32x32 -> 64-bit product) and one 64-bit division in LayerNorm.
 *
 * __muldi3(a, b)   the low 64 bits of a * b (two's complement, so signed and unsigned
 *                  agree), from four 16x16 -> 32-bit products for the low words and
 *                  two 32-bit products for the cross terms. About 40 instructions.
 * __udivdi3(n, d)  floor(n / d) for d != 0 (d == 0 returns all ones, as no C program
 *                  may rely on), by shift and subtract: one step per significant bit of
 *                  n (about 10 instructions each).
 *
 * Both are exact for every input; lx106 code speed is not a measure of an ESP32's.
 */
#include <stdint.h>

uint64_t __muldi3(uint64_t a, uint64_t b);
uint64_t __udivdi3(uint64_t n, uint64_t d);

/* a * b for 32-bit a and b, all 64 bits of it. */
static uint64_t tg_mul32x32(uint32_t a, uint32_t b)
{
    const uint32_t al = a & 0xFFFFu, ah = a >> 16, bl = b & 0xFFFFu, bh = b >> 16;
    const uint32_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
    const uint32_t mid = (ll >> 16) + (lh & 0xFFFFu) + (hl & 0xFFFFu); /* < 3 * 2^16 */
    const uint32_t lo = (ll & 0xFFFFu) | (mid << 16);
    const uint32_t hi = hh + (lh >> 16) + (hl >> 16) + (mid >> 16);
    return ((uint64_t)hi << 32) | lo;
}

uint64_t __muldi3(uint64_t a, uint64_t b)
{
    const uint32_t a0 = (uint32_t)a, a1 = (uint32_t)(a >> 32);
    const uint32_t b0 = (uint32_t)b, b1 = (uint32_t)(b >> 32);
    return tg_mul32x32(a0, b0) + ((uint64_t)(a0 * b1 + a1 * b0) << 32);
}

uint64_t __udivdi3(uint64_t n, uint64_t d)
{
    uint64_t q = 0u, r = 0u;
    int i;

    if (d == 0u) {
        return ~(uint64_t)0u;
    }
    if (n < d) {
        return 0u;
    }
    /* Start at n's highest set bit (n >= d >= 1, so n != 0): the bits above add nothing. */
    i = (n >> 32) != 0u ? 63 - __builtin_clz((uint32_t)(n >> 32))
                        : 31 - __builtin_clz((uint32_t)n);
    for (; i >= 0; --i) {
        r = (r << 1) | ((n >> i) & 1u);
        if (r >= d) {
            r -= d;
            q |= (uint64_t)1u << i;
        }
    }
    return q;
}
