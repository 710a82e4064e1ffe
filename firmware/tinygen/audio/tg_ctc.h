/*
 * tg_ctc: greedy CTC decoding over int8 logits, incremental, with frame timestamps.
 * Byte-identical with tinygen/audio/ctc.py (CtcDecoder).
 */
#ifndef TG_CTC_H
#define TG_CTC_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TG_CTC_BLANK 0
#define TG_CTC_ERR_SPACE (-1) /* max_tokens < frames (push) or < 1 (flush) */

/* The vocabulary (generated from the model's config): symbol i is the UTF-8 bytes
 * text[offset[i] .. offset[i + 1]); symbol 0 is the blank. */
typedef struct {
    const char *text;
    const uint16_t *offset; /* size + 1 entries */
    int32_t size;
} tg_ctc_vocab_t;

/* One decoded token: a run of one symbol over encoder frames [start, end]. */
typedef struct {
    int32_t id;
    int32_t start;
    int32_t end;
} tg_ctc_token_t;

typedef struct {
    int32_t prev;      /* symbol of the open run (blank: none) */
    int32_t run_start; /* its first frame */
    int32_t frame;     /* frames consumed since reset */
} tg_ctc_state_t;

void tg_ctc_reset(tg_ctc_state_t *state);

/* Consume `frames` rows of logits ((frames, vocab_size) int8, row-major) and write the
 * tokens whose runs ended to out. A push closes at most one run per frame, so
 * max_tokens >= frames always suffices; a smaller max_tokens returns TG_CTC_ERR_SPACE
 * and consumes nothing. Returns the number of tokens written. */
int32_t tg_ctc_push(tg_ctc_state_t *state, const int8_t *logits, int32_t frames,
                    int32_t vocab_size, tg_ctc_token_t *out, int32_t max_tokens);

/* End of stream: write the open run's token, if any (0 or 1 tokens; max_tokens >= 1). */
int32_t tg_ctc_flush(tg_ctc_state_t *state, tg_ctc_token_t *out, int32_t max_tokens);

/* The UTF-8 text of symbol `id` (not NUL-terminated); *len gets its length in bytes.
 * An id outside the vocabulary gives an empty piece. */
const char *tg_ctc_piece(const tg_ctc_vocab_t *vocab, int32_t id, int32_t *len);

#ifdef __cplusplus
}
#endif

#endif /* TG_CTC_H */
