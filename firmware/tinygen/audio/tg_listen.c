/*
 * tg_listen: the listen loop (see tg_listen.h for the contract). Byte-identical with
 * tinygen/audio/listen.py.
 *
 * listen  [in/out] tg_listen_t, set up by tg_listen_init; one consumer task.
 * cfg     [in]     tg_listen_config_t: tables, vocabulary, gate, model, block_frames
 *                  >= 1 (= model.input_frames when streaming, <= it when windowed),
 *                  subsample >= 1.
 * buffers [in]     caller-owned storage, sizes checked by tg_listen_init.
 *
 * Per block of B samples (B = block_frames * hop after the first): one tg_ring_read,
 * tg_gate_push (B multiply-accumulates), tg_frontend_push (block_frames frames), and, if
 * the gate passes it, one model step (streaming) or a share of one window run.
 * Arithmetic: frame counters are uint32 (2^32 frames at a 10 ms hop is 497 days); ms
 * are computed in uint64 then cut to uint32.
 */
#include "tg_listen.h"

#include <stddef.h>
#include <string.h>

static uint32_t to_ms(const tg_listen_t *l, uint32_t frame)
{
    const tg_frontend_tables_t *t = l->cfg->frontend;
    return (uint32_t)((uint64_t)frame * (uint64_t)t->hop_length * 1000u /
                      (uint64_t)t->sample_rate);
}

static void emit_word(tg_listen_t *l)
{
    if (l->word_len > 0) {
        l->cfg->emit(l->cfg->user, l->word_start_ms, l->word_end_ms, l->word, l->word_len);
        l->word_len = 0;
    }
}

/* Append decoded tokens (frames counted from seg_frame) to the word; emit finished ones. */
static void add_tokens(tg_listen_t *l, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const tg_ctc_token_t *tok = &l->buf.tokens[i];
        int32_t len;
        const char *piece = tg_ctc_piece(l->cfg->vocab, tok->id, &len);
        const uint32_t first = l->seg_frame + (uint32_t)(l->cfg->subsample * tok->start);
        const uint32_t after = l->seg_frame + (uint32_t)(l->cfg->subsample * (tok->end + 1));
        if (len > TG_LISTEN_MAX_WORD) { /* a symbol longer than a word piece: cut */
            len = TG_LISTEN_MAX_WORD;
        }
        if (len == 1 && piece[0] == ' ') {
            emit_word(l);
            continue;
        }
        if (l->word_len + len > TG_LISTEN_MAX_WORD) {
            emit_word(l);
        }
        if (l->word_len == 0) {
            l->word_start_ms = to_ms(l, first);
        }
        memcpy(l->word + l->word_len, piece, (size_t)len);
        l->word_len += len;
        l->word_end_ms = to_ms(l, after);
    }
}

/* Decode the model's output of one run. */
static int32_t decode(tg_listen_t *l)
{
    const tg_listen_model_t *m = &l->cfg->model;
    int32_t got;
    if (l->cfg->words != NULL) {
        tg_words_push(&l->words, l->cfg->words, m->output(), m->output_frames,
                      l->cfg->vocab->size);
        return 0;
    }
    got = tg_ctc_push(&l->ctc, m->output(), m->output_frames,
                                    l->cfg->vocab->size, l->buf.tokens, l->buf.max_tokens);
    if (got < 0) {
        return TG_LISTEN_ERR_DECODE;
    }
    add_tokens(l, got);
    return 0;
}

/* With a word list: the segment's best entry, unless its margin is too large. */
static void emit_entry(tg_listen_t *l)
{
    const tg_words_t *w = l->cfg->words;
    const tg_words_result_t r = tg_words_result(&l->words, w);
    const int32_t reject = l->cfg->words_reject;
    if (r.index < 0 ||
        (reject >= 0 && (int64_t)r.free - r.score > (int64_t)reject * r.frames)) {
        return;
    }
    l->cfg->emit(l->cfg->user, to_ms(l, l->seg_frame),
                 to_ms(l, l->seg_frame + (uint32_t)l->seg_frames),
                 w->text + w->text_offset[r.index],
                 (int32_t)(w->text_offset[r.index + 1] - w->text_offset[r.index]));
}

/* Close the open segment: the last token, the last word (or the best entry). */
static int32_t close_segment(tg_listen_t *l)
{
    int32_t got;
    if (l->cfg->words != NULL) {
        emit_entry(l);
        l->active = 0;
        l->filled = 0;
        return 0;
    }
    got = tg_ctc_flush(&l->ctc, l->buf.tokens, l->buf.max_tokens);
    if (got < 0) {
        return TG_LISTEN_ERR_DECODE;
    }
    add_tokens(l, got);
    emit_word(l);
    l->active = 0;
    l->filled = 0;
    return 0;
}

/* Windowed: silence after the segment's frames, one run, decode, close. */
static int32_t run_window(tg_listen_t *l)
{
    const tg_listen_model_t *m = &l->cfg->model;
    const int32_t n_mels = l->cfg->frontend->n_mels;
    int8_t *in = m->input();
    int32_t k, rc;
    for (k = l->filled; k < m->input_frames; ++k) {
        memcpy(in + (size_t)k * (size_t)n_mels, l->silence, (size_t)n_mels);
    }
    if (m->run() != 0) {
        return TG_LISTEN_ERR_MODEL;
    }
    l->runs++;
    tg_ctc_reset(&l->ctc);
    if (l->cfg->words != NULL) {
        tg_words_reset(&l->words, l->cfg->words, l->buf.word_scores);
    }
    rc = decode(l);
    return rc != 0 ? rc : close_segment(l);
}

/* One block's frames (in buf.frames), starting at feature frame l->frame. */
static int32_t process(tg_listen_t *l, int32_t pass)
{
    const tg_listen_config_t *c = l->cfg;
    const tg_listen_model_t *m = &c->model;
    const size_t bytes = (size_t)c->block_frames * (size_t)c->frontend->n_mels;
    if (!pass) {
        l->skipped++;
        if (!l->active) {
            return 0;
        }
        return m->streaming ? close_segment(l) : run_window(l);
    }
    if (!l->active) {
        l->active = 1;
        l->seg_frame = l->frame;
        l->seg_frames = 0;
        l->filled = 0;
        tg_ctc_reset(&l->ctc);
        if (c->words != NULL) {
            tg_words_reset(&l->words, c->words, l->buf.word_scores);
        }
        if (m->streaming && m->reset() != 0) {
            return TG_LISTEN_ERR_MODEL;
        }
    }
    l->seg_frames += c->block_frames;
    if (m->streaming) {
        memcpy(m->input(), l->buf.frames, bytes);
        if (m->run() != 0) {
            return TG_LISTEN_ERR_MODEL;
        }
        l->runs++;
        return decode(l);
    }
    memcpy(m->input() + (size_t)l->filled * (size_t)c->frontend->n_mels, l->buf.frames,
           bytes);
    l->filled += c->block_frames;
    if (l->filled + c->block_frames > m->input_frames) { /* no room for another block */
        return run_window(l);
    }
    return 0;
}

int32_t tg_listen_init(tg_listen_t *l, const tg_listen_config_t *cfg,
                       const tg_listen_buffers_t *buffers)
{
    const tg_frontend_tables_t *t = cfg->frontend;
    const tg_listen_model_t *m = &cfg->model;
    int32_t k;
    if (tg_frontend_check(t) != 0 || cfg->block_frames < 1 || cfg->subsample < 1 ||
        m->input_frames < cfg->block_frames || m->output_frames < 1 ||
        (m->streaming && m->input_frames != cfg->block_frames) ||
        buffers->block_samples <
            TG_LISTEN_BLOCK_SAMPLES(t->win_length, t->hop_length, cfg->block_frames) ||
        buffers->ring_samples < (uint32_t)buffers->block_samples ||
        buffers->max_tokens < m->output_frames + 1 || cfg->emit == NULL ||
        (cfg->words != NULL &&
         (cfg->words->text == NULL || buffers->word_scores == NULL ||
          buffers->word_states < tg_words_states(cfg->words) || cfg->words_reject < -1))) {
        return TG_LISTEN_ERR_CONFIG;
    }
    if (tg_ring_init(&l->ring, buffers->ring, buffers->ring_samples) != 0) {
        return TG_LISTEN_ERR_CONFIG;
    }
    l->cfg = cfg;
    l->buf = *buffers;
    tg_frontend_reset(&l->frontend);
    tg_gate_reset(&l->gate, &cfg->gate);
    tg_ctc_reset(&l->ctc);
    for (k = 0; k < t->win_length; ++k) { /* the frame of digital silence */
        l->buf.block[k] = 0;
    }
    tg_frontend_frame(&l->frontend, t, l->buf.block, l->silence);
    l->frame = l->seg_frame = 0u;
    l->filled = l->active = l->seg_frames = 0;
    l->word_len = 0;
    l->word_start_ms = l->word_end_ms = 0u;
    l->blocks = l->skipped = l->runs = 0u;
    return m->reset() != 0 ? TG_LISTEN_ERR_MODEL : 0;
}

uint32_t tg_listen_write(tg_listen_t *l, const int16_t *pcm, uint32_t n)
{
    return tg_ring_write(&l->ring, pcm, n);
}

int32_t tg_listen_poll(tg_listen_t *l)
{
    const tg_listen_config_t *c = l->cfg;
    const tg_frontend_tables_t *t = c->frontend;
    int32_t done = 0;
    for (;;) {
        const int32_t need = TG_LISTEN_BLOCK_SAMPLES(t->win_length, t->hop_length,
                                                     c->block_frames) - l->frontend.fill;
        int32_t pass, got, rc;
        if (tg_ring_available(&l->ring) < (uint32_t)need) {
            return done;
        }
        (void)tg_ring_read(&l->ring, l->buf.block, (uint32_t)need);
        pass = tg_gate_push(&l->gate, &c->gate, l->buf.block, need);
        got = tg_frontend_push(&l->frontend, t, l->buf.block, need, l->buf.frames,
                               c->block_frames);
        if (got != c->block_frames) {
            return TG_LISTEN_ERR_CONFIG;
        }
        l->blocks++;
        rc = process(l, pass);
        l->frame += (uint32_t)c->block_frames;
        if (rc != 0) {
            return rc;
        }
        done++;
    }
}

int32_t tg_listen_finish(tg_listen_t *l)
{
    if (!l->active) {
        return 0;
    }
    return l->cfg->model.streaming ? close_segment(l) : run_window(l);
}
