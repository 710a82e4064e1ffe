/*
 * tg_ctc: greedy CTC decoding (see tg_ctc.h). Bit-exact with tinygen/audio/ctc.py.
 *
 * state      [in/out] tg_ctc_state_t: the open run, carried across calls.
 * logits     [in]     int8 (frames, vocab_size), row-major; vocab_size >= 1.
 * out        [out]    tg_ctc_token_t (max_tokens).
 *
 * best[t] = the lowest index of the maximum of logits[t]; a token is emitted when its run
 * ends: best[t] != best[t-1] and best[t-1] != blank. Cost: frames * vocab_size compares.
 */
#include "tg_ctc.h"

#include <stddef.h>

void tg_ctc_reset(tg_ctc_state_t *state)
{
    state->prev = TG_CTC_BLANK;
    state->run_start = 0;
    state->frame = 0;
}

int32_t tg_ctc_push(tg_ctc_state_t *state, const int8_t *logits, int32_t frames,
                    int32_t vocab_size, tg_ctc_token_t *out, int32_t max_tokens)
{
    int32_t emitted = 0;
    int32_t t;
    if (max_tokens < frames) {
        return TG_CTC_ERR_SPACE;
    }
    for (t = 0; t < frames; ++t) {
        const int8_t *row = logits + (size_t)t * (size_t)vocab_size;
        int32_t best = 0;
        int32_t v;
        for (v = 1; v < vocab_size; ++v) {
            if (row[v] > row[best]) {
                best = v;
            }
        }
        if (best != state->prev) {
            if (state->prev != TG_CTC_BLANK) {
                out[emitted].id = state->prev;
                out[emitted].start = state->run_start;
                out[emitted].end = state->frame - 1;
                ++emitted;
            }
            state->prev = best;
            state->run_start = state->frame;
        }
        ++state->frame;
    }
    return emitted;
}

int32_t tg_ctc_flush(tg_ctc_state_t *state, tg_ctc_token_t *out, int32_t max_tokens)
{
    int32_t emitted = 0;
    if (max_tokens < 1) {
        return TG_CTC_ERR_SPACE;
    }
    if (state->prev != TG_CTC_BLANK) {
        out[0].id = state->prev;
        out[0].start = state->run_start;
        out[0].end = state->frame - 1;
        emitted = 1;
    }
    state->prev = TG_CTC_BLANK;
    state->run_start = state->frame;
    return emitted;
}

const char *tg_ctc_piece(const tg_ctc_vocab_t *vocab, int32_t id, int32_t *len)
{
    if (id < 0 || id >= vocab->size) {
        *len = 0;
        return vocab->text;
    }
    *len = (int32_t)vocab->offset[id + 1] - (int32_t)vocab->offset[id];
    return vocab->text + vocab->offset[id];
}
