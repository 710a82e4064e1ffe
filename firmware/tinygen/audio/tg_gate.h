/*
 * tg_gate: energy gate (a simple VAD) deciding per audio chunk whether to run the model.
 * Bit-identical with tinygen/audio/gate.py (the formulas are in its docstring).
 */
#ifndef TG_GATE_H
#define TG_GATE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t threshold;  /* Q4 log2 power above the floor that counts as speech (48) */
    int32_t rise;       /* Q4 per chunk the floor may rise (1) */
    int32_t hangover;   /* chunks that still run after the last speech chunk (3) */
    int32_t min_level;  /* Q4 log2 mean power below which nothing is speech (96) */
    int32_t init_floor; /* floor at reset (96) */
} tg_gate_config_t;

typedef struct {
    int32_t floor; /* adaptive noise floor, Q4 log2 power */
    int32_t hang;  /* hangover chunks left */
    int32_t level; /* level of the last chunk (for reports) */
} tg_gate_state_t;

void tg_gate_reset(tg_gate_state_t *state, const tg_gate_config_t *config);

/* Q4 log2 of (sum of squares / n + 1) for n >= 1 samples: 0 .. 495. */
int32_t tg_gate_level(const int16_t *pcm, int32_t n);

/* Decide for one chunk of n >= 1 samples: 1 to run the model, 0 to skip it. */
int32_t tg_gate_push(tg_gate_state_t *state, const tg_gate_config_t *config,
                     const int16_t *pcm, int32_t n);

#ifdef __cplusplus
}
#endif

#endif /* TG_GATE_H */
