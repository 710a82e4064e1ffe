/*
 * tg_words: word-list decoding (see tg_words.h). Value for value the same as
 * tinygen/audio/words.py.
 *
 * words   [in]     tg_words_t: entries as vocabulary ids (generated or read by the caller).
 * state   [in/out] tg_words_state_t: one int32 score per CTC state, frames, free score.
 * logits  [in]     int8 (frames, vocab_size), row-major.
 *
 * Entry e of n ids has the states blank, c1, blank, ..., cn, blank. Per frame, state s
 * takes the best of itself, s - 1 and (if c_s is not the blank and differs from c_(s-2))
 * s - 2, then adds logits[c_s]; the first frame starts in state 0 or 1. The states of
 * each entry are updated from the last to the first, so s - 1 and s - 2 still hold the
 * previous frame's scores: no second buffer. Scores are sums of int8 values: exact in
 * int32 for fewer than 2^30 / 128 frames.
 *
 * Cost per frame: about 3 compares and one add per state, plus vocab_size compares for
 * the free score.
 */
#include "tg_words.h"

#include <stddef.h>

#define TG_UNREACHABLE ((int32_t)TG_WORDS_UNREACHABLE)

int32_t tg_words_states(const tg_words_t *words)
{
    return 2 * (int32_t)words->offset[words->entries] - 2 * (int32_t)words->offset[0] +
           words->entries;
}

void tg_words_reset(tg_words_state_t *state, const tg_words_t *words, int32_t *scores)
{
    const int32_t n = tg_words_states(words);
    int32_t s;
    for (s = 0; s < n; ++s) {
        scores[s] = TG_UNREACHABLE;
    }
    state->score = scores;
    state->frames = 0;
    state->free = 0;
}

/* The label of state s of an entry with ids c: even states are the blank. */
static int32_t tg_label(const uint8_t *c, int32_t s)
{
    return (s & 1) != 0 ? (int32_t)c[s >> 1] : 0;
}

void tg_words_push(tg_words_state_t *state, const tg_words_t *words, const int8_t *logits,
                   int32_t frames, int32_t vocab_size)
{
    int32_t t;
    for (t = 0; t < frames; ++t) {
        const int8_t *row = logits + (size_t)t * (size_t)vocab_size;
        int32_t *a = state->score;
        int32_t e, v, top = row[0];
        for (v = 1; v < vocab_size; ++v) {
            top = row[v] > top ? row[v] : top;
        }
        for (e = 0; e < words->entries; ++e) {
            const uint8_t *c = words->ids + words->offset[e];
            const int32_t n = 2 * (int32_t)(words->offset[e + 1] - words->offset[e]) + 1;
            int32_t s;
            for (s = n - 1; s >= 0; --s) {
                const int32_t label = tg_label(c, s);
                int32_t best;
                if (state->frames == 0) {
                    best = s <= 1 ? 0 : TG_UNREACHABLE;
                } else {
                    best = a[s];
                    if (s >= 1 && a[s - 1] > best) {
                        best = a[s - 1];
                    }
                    if (s >= 2 && label != 0 && label != tg_label(c, s - 2) &&
                        a[s - 2] > best) {
                        best = a[s - 2];
                    }
                }
                a[s] = best == TG_UNREACHABLE ? TG_UNREACHABLE : best + row[label];
            }
            a += n;
        }
        state->free += top;
        ++state->frames;
    }
}

tg_words_result_t tg_words_result(const tg_words_state_t *state, const tg_words_t *words)
{
    tg_words_result_t r;
    const int32_t *a = state->score;
    int32_t e;
    r.index = -1;
    r.score = TG_UNREACHABLE;
    r.free = state->free;
    r.frames = state->frames;
    for (e = 0; e < words->entries; ++e) {
        const int32_t n = 2 * (int32_t)(words->offset[e + 1] - words->offset[e]) + 1;
        const int32_t end = a[n - 1] > a[n - 2] ? a[n - 1] : a[n - 2];
        if (state->frames > 0 && end != TG_UNREACHABLE && end > r.score) {
            r.index = e;
            r.score = end;
        }
        a += n;
    }
    return r;
}
