/*
 * tg_gate: energy gate (see tg_gate.h). Bit-identical with tinygen/audio/gate.py.
 *
 * pcm  [in] int16 chunk, 1 <= n <= INT32_MAX samples (the uint64 sum of squares is at
 *           most n * 2^30 < 2^61).
 * level = 16 e + f, e = floor(log2 m), f = the 4 bits below the leading one of
 *         m = sum(x^2) / n + 1 (integer division); m <= 2^30 + 1 so level <= 495.
 * Cost: one multiply-accumulate per sample and one 64-bit division per chunk.
 */
#include "tg_gate.h"

void tg_gate_reset(tg_gate_state_t *state, const tg_gate_config_t *config)
{
    state->floor = config->init_floor;
    state->hang = 0;
    state->level = 0;
}

int32_t tg_gate_level(const int16_t *pcm, int32_t n)
{
    uint64_t sum = 0u;
    uint64_t m;
    int32_t e = 0;
    int32_t i, frac;
    for (i = 0; i < n; ++i) {
        sum += (uint64_t)((int32_t)pcm[i] * (int32_t)pcm[i]);
    }
    m = sum / (uint64_t)n + 1u; /* 1 .. 2^30 + 1 */
    while ((m >> (e + 1)) != 0u) {
        ++e;
    }
    frac = (int32_t)((e >= 4 ? m >> (e - 4) : m << (4 - e)) & 15u);
    return e * 16 + frac;
}

int32_t tg_gate_push(tg_gate_state_t *state, const tg_gate_config_t *config,
                     const int16_t *pcm, int32_t n)
{
    const int32_t level = tg_gate_level(pcm, n);
    const int32_t speech = level >= state->floor + config->threshold &&
                           level >= config->min_level;
    const int32_t run = speech || state->hang > 0;
    if (level < state->floor) {
        state->floor = level;
    } else {
        state->floor = state->floor + config->rise < level ? state->floor + config->rise
                                                           : level;
    }
    if (state->floor < config->min_level) {
        state->floor = config->min_level;
    }
    state->hang = speech ? config->hangover : (state->hang > 0 ? state->hang - 1 : 0);
    state->level = level;
    return run;
}
