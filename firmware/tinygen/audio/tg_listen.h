/*
 * tg_listen: the listen loop, microphone samples in, timed words out. Portable C99; the
 * only hardware glue is whoever calls tg_listen_write (a DMA callback or a reader task).
 * Byte-identical with tinygen/audio/listen.py (the golden: same blocks, gate decisions,
 * model runs, tokens and lines).
 *
 *   mic blocks --tg_listen_write--> ring (tg_ring) --tg_listen_poll--> fixed blocks
 *     -> gate (tg_gate) and front end (tg_frontend) -> the model -> CTC (tg_ctc)
 *     -> emit(start_ms, end_ms, word)
 *   or, with a word list (cfg.words), the model -> tg_words -> emit(start_ms, end_ms, entry)
 *
 * Blocks. The loop reads the ring in blocks that complete exactly block_frames feature
 * frames: the first block holds win_length + (block_frames - 1) * hop_length samples,
 * every later one block_frames * hop_length. Any mic block size gives the same blocks,
 * hence the same result. Samples that never complete a block are not heard.
 *
 * Gate. Each block gets one gate decision (tg_gate_push on the block's samples). The
 * front end runs on every block (it keeps the overlap between frames); the model runs
 * only on blocks the gate passes. A run of passed blocks is a segment; it starts with
 * fresh decoder state (and fresh model state for a streaming model).
 *
 * Model. Streaming (block_frames = the model's chunk): one tg_model_step per passed
 * block; the segment closes at the first skipped block (tg_listen_finish closes it at
 * the end). Windowed: the passed blocks' frames fill the window; it runs when the next
 * block would not fit, or at the segment's end, with silence frames (the front end's
 * frame of digital silence) after the segment's frames, then the segment closes.
 *
 * Text. Tokens are split into words at the vocabulary symbol " "; a word longer than
 * TG_LISTEN_MAX_WORD bytes is emitted in pieces; a segment's end ends its word. A word
 * spans from the first feature frame of its first token's run to the frame after its
 * last token's run (encoder frame e = feature frames subsample * e ..), in ms from the
 * first sample written: ms = frame * hop_length * 1000 / sample_rate (uint32 ms: wraps
 * after 49 days).
 *
 * Word list. With cfg.words set, a segment's logits go to tg_words instead of CTC, and
 * the segment's end emits the entry that fits best (its text), from the segment's first
 * feature frame to the frame after its last: one line per segment, a command
 * recognizer's answer. words_reject >= 0 drops an entry whose margin (tg_words.h) is
 * above words_reject per encoder frame decoded; -1 never drops one.
 *
 * Threads. tg_listen_write is the producer side of the SPSC ring (an ISR, a DMA
 * callback or a reader task); tg_listen_poll and tg_listen_finish run in one consumer
 * task; nothing else touches the tg_listen_t after tg_listen_init.
 */
#ifndef TG_LISTEN_H
#define TG_LISTEN_H

#include <stdint.h>

#include "tg_ctc.h"
#include "tg_frontend.h"
#include "tg_gate.h"
#include "tg_ring.h"
#include "tg_words.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef TG_LISTEN_MAX_WORD
#define TG_LISTEN_MAX_WORD 48 /* bytes of one emitted word piece */
#endif

/* Samples of the longest block (the first). */
#define TG_LISTEN_BLOCK_SAMPLES(win_length, hop_length, block_frames) \
    ((win_length) + ((block_frames) - 1) * (hop_length))

/* Error codes (negative returns). */
#define TG_LISTEN_ERR_CONFIG (-1) /* a size or table does not fit the buffers or the model */
#define TG_LISTEN_ERR_MODEL (-2)  /* the model's reset or run returned non-zero */
#define TG_LISTEN_ERR_DECODE (-3) /* the CTC decoder ran out of token space */

/* The compiled model, through its public API (tinygen_model.h). */
typedef struct {
    int8_t *(*input)(void);         /* tg_model_input */
    const int8_t *(*output)(void);  /* tg_model_output */
    int (*run)(void);               /* tg_model_step (streaming) or tg_model_invoke */
    int (*reset)(void);             /* tg_model_reset (streaming) or tg_model_init */
    int32_t input_frames;           /* feature frames per run: the chunk, or the window */
    int32_t output_frames;          /* encoder frames of logits per run */
    int32_t streaming;              /* 1: step per block; 0: window per segment */
} tg_listen_model_t;

/* One emitted word: [start_ms, end_ms) and its UTF-8 bytes (not NUL-terminated). */
typedef void (*tg_listen_emit_fn)(void *user, uint32_t start_ms, uint32_t end_ms,
                                  const char *text, int32_t len);

typedef struct {
    const tg_frontend_tables_t *frontend;
    const tg_ctc_vocab_t *vocab;
    tg_gate_config_t gate;
    tg_listen_model_t model;
    int32_t block_frames; /* feature frames per block; a streaming model's input_frames */
    int32_t subsample;    /* feature frames per encoder frame (4) */
    tg_listen_emit_fn emit;
    void *user;
    const tg_words_t *words; /* NULL: spell words with CTC; else one entry per segment */
    int32_t words_reject;    /* -1, or the largest margin per decoded frame emitted */
} tg_listen_config_t;

/* Caller-owned storage (static arrays: no malloc). */
typedef struct {
    int16_t *ring;            /* ring_samples: a power of two >= block_samples */
    uint32_t ring_samples;
    int16_t *block;           /* block_samples >= TG_LISTEN_BLOCK_SAMPLES(...) */
    int32_t block_samples;
    int8_t *frames;           /* block_frames * n_mels */
    tg_ctc_token_t *tokens;   /* max_tokens >= model.output_frames + 1 */
    int32_t max_tokens;
    int32_t *word_scores;     /* with cfg.words: word_states >= tg_words_states() */
    int32_t word_states;
} tg_listen_buffers_t;

typedef struct {
    const tg_listen_config_t *cfg;
    tg_listen_buffers_t buf;
    tg_ring_t ring;
    tg_frontend_state_t frontend;
    tg_gate_state_t gate;
    tg_ctc_state_t ctc;
    tg_words_state_t words;
    int8_t silence[TG_FRONTEND_MAX_MELS]; /* the frame of digital silence */
    uint32_t frame;     /* feature frames completed since init */
    uint32_t seg_frame; /* first feature frame of the open segment (or window) */
    int32_t filled;     /* windowed: frames in the model input */
    int32_t active;     /* a segment is open */
    int32_t seg_frames; /* feature frames of the open segment */
    char word[TG_LISTEN_MAX_WORD];
    int32_t word_len;
    uint32_t word_start_ms, word_end_ms;
    uint32_t blocks;  /* blocks heard */
    uint32_t skipped; /* blocks the gate kept from the model */
    uint32_t runs;    /* model runs (steps or windows) */
} tg_listen_t;

/* Check the sizes, reset everything and the model (cfg and the buffers must outlive
 * the loop). Returns 0, TG_LISTEN_ERR_CONFIG or TG_LISTEN_ERR_MODEL. */
int32_t tg_listen_init(tg_listen_t *listen, const tg_listen_config_t *cfg,
                       const tg_listen_buffers_t *buffers);

/* Producer: append n mic samples, all or nothing. Returns n, or 0 when the ring had no
 * room (the block is dropped and counted in listen->ring.overruns). */
uint32_t tg_listen_write(tg_listen_t *listen, const int16_t *pcm, uint32_t n);

/* Consumer: process every whole block in the ring. Returns the blocks processed (>= 0)
 * or a negative error (the loop then stops: tg_listen_init again). */
int32_t tg_listen_poll(tg_listen_t *listen);

/* End of stream: close the open segment (a windowed model runs on what it holds).
 * Returns 0 or a negative error. */
int32_t tg_listen_finish(tg_listen_t *listen);

#ifdef __cplusplus
}
#endif

#endif /* TG_LISTEN_H */
