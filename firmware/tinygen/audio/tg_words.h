/*
 * tg_words: word-list (command) decoding over int8 CTC logits: which entry of a fixed
 * list was said, by each entry's best CTC path. Value for value the same as
 * tinygen/audio/words.py (WordDecoder), which states the contract.
 *
 * No malloc: the caller gives one int32 score per CTC state (tg_words_states()).
 */
#ifndef TG_WORDS_H
#define TG_WORDS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TG_WORDS_UNREACHABLE (-(1L << 30))

/* The list: entry e is the vocabulary ids ids[offset[e] .. offset[e + 1]), each >= 1
 * (never the blank), at least one per entry; optionally its UTF-8 text
 * text[text_offset[e] .. text_offset[e + 1]) (NULL where the caller has no use for it). */
typedef struct {
    int32_t entries;
    const uint16_t *offset; /* entries + 1 */
    const uint8_t *ids;
    const char *text;
    const uint16_t *text_offset; /* entries + 1 */
} tg_words_t;

typedef struct {
    int32_t *score;  /* tg_words_states(words) int32s, caller-owned */
    int32_t frames;  /* frames pushed since reset */
    int32_t free;    /* sum of each frame's largest logit */
} tg_words_state_t;

typedef struct {
    int32_t index; /* best entry; -1 if no entry is reachable yet */
    int32_t score; /* its best path's summed logits */
    int32_t free;  /* the best unconstrained path's; free - score >= 0 is the margin */
    int32_t frames;
} tg_words_result_t;

/* CTC states of the list: sum over entries of 2 * length + 1. */
int32_t tg_words_states(const tg_words_t *words);

void tg_words_reset(tg_words_state_t *state, const tg_words_t *words, int32_t *scores);

/* Consume `frames` rows of logits ((frames, vocab_size) int8, row-major). */
void tg_words_push(tg_words_state_t *state, const tg_words_t *words, const int8_t *logits,
                   int32_t frames, int32_t vocab_size);

tg_words_result_t tg_words_result(const tg_words_state_t *state, const tg_words_t *words);

#ifdef __cplusplus
}
#endif

#endif /* TG_WORDS_H */
