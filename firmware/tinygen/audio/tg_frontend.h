/*
 * tg_frontend: the integer audio front end, int16 PCM -> int8 log-mel frames, streaming.
 * Byte-identical with tinygen/audio/frontend.py (the reference; docs/frontend.md gives
 * every step's integer format, range and rounding).
 *
 * The caller owns the state (no malloc) and passes the const tables, which Python
 * generates from the model's config (tinygen.audio.frontend_tables, emitted by
 * tinygen.audio.emit into a C file). Frame k covers samples [k*hop, k*hop + win) of
 * everything pushed since the last reset; tg_frontend_push consumes any number of
 * samples and emits the frames they complete, so any chunking gives the same frames.
 */
#ifndef TG_FRONTEND_H
#define TG_FRONTEND_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Compile-time capacity of the state (override with -D): the tables' win_length and
 * n_fft must not exceed TG_FRONTEND_MAX_FFT, nor n_mels TG_FRONTEND_MAX_MELS. */
#ifndef TG_FRONTEND_MAX_FFT
#define TG_FRONTEND_MAX_FFT 512
#endif
#ifndef TG_FRONTEND_MAX_MELS
#define TG_FRONTEND_MAX_MELS 64
#endif

/* Error codes (negative returns). */
#define TG_FRONTEND_ERR_SPACE (-1)  /* the frames would not fit max_frames; nothing consumed */
#define TG_FRONTEND_ERR_TABLES (-2) /* tables exceed the compile-time capacity */

typedef struct {
    /* shape */
    int32_t sample_rate, n_fft, win_length, hop_length, n_mels;
    /* window: int16 (win_length), periodic Hann in Q15; v = round(x * w / 2^window_shift) */
    const int16_t *window;
    int32_t window_shift;
    /* FFT of n_fft/2 complex points: bit reversal (n_fft/2) and twiddles
     * W^j = (cos, -sin) in Q31 (twice the reference's Q30 values; W^0 = 1 saturates and
     * is never read) for j < n_fft/4, interleaved re, im */
    const uint16_t *bitrev;
    const int32_t *twiddle;
    /* real-FFT split: T_k = (-sin, -cos)(2 pi k / n_fft) in Q31 (twice the reference's
     * Q30 values, all <= 0), k = 0 .. n_fft/4 */
    const int32_t *split;
    /* mel filter m: weights mel_weight[mel_offset[m] + i] (Q12) on bins mel_start[m] + i,
     * i < mel_length[m] */
    const uint16_t *mel_start;
    const uint16_t *mel_length;
    const uint16_t *mel_offset;
    const uint16_t *mel_weight;
    int32_t power_shift;
    /* log2(1 + i / 2^log_lut_bits) in Q16, 2^log_lut_bits + 1 entries */
    const uint32_t *log_lut;
    int32_t log_lut_bits;
    uint64_t log_floor;
    /* q = clamp((log2_q16 * out_mult + out_bias) >> 32, -128, 127) */
    int64_t out_mult;
    int64_t out_bias;
} tg_frontend_tables_t;

typedef struct {
    int16_t pending[TG_FRONTEND_MAX_FFT]; /* samples from the next frame's start */
    int32_t fill;                         /* valid samples in pending, < win_length */
    /* work buffers of one frame (kept here so that no stack frame is large) */
    int32_t fft[TG_FRONTEND_MAX_FFT];     /* n_fft/2 complex values, re, im interleaved */
    uint32_t power[TG_FRONTEND_MAX_FFT + 2]; /* n_fft/2 + 1 bins: (low, high) 32-bit halves */
} tg_frontend_state_t;

/* Check tables against the state's capacity: 0, or TG_FRONTEND_ERR_TABLES. */
int32_t tg_frontend_check(const tg_frontend_tables_t *tables);

/* Start a new stream (drops pending samples). */
void tg_frontend_reset(tg_frontend_state_t *state);

/* Frames that pushing n more samples would complete. */
int32_t tg_frontend_frames_for(const tg_frontend_state_t *state,
                               const tg_frontend_tables_t *tables, int32_t n);

/* Consume n >= 0 samples of pcm and write each completed frame to frames_out
 * ((frames, n_mels) int8, row-major). Returns the number of frames written, or
 * TG_FRONTEND_ERR_SPACE if that number would exceed max_frames (then nothing is
 * consumed and the state is unchanged: call again with room, or with fewer samples),
 * or TG_FRONTEND_ERR_TABLES. pcm may be NULL when n is 0. */
int32_t tg_frontend_push(tg_frontend_state_t *state, const tg_frontend_tables_t *tables,
                         const int16_t *pcm, int32_t n, int8_t *frames_out,
                         int32_t max_frames);

/* One frame from win_length samples (no streaming state but the work buffers). */
void tg_frontend_frame(tg_frontend_state_t *state, const tg_frontend_tables_t *tables,
                       const int16_t *samples, int8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* TG_FRONTEND_H */
