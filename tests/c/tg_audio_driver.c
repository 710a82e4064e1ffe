/*
 * Test driver for firmware/tinygen/audio (front end, CTC, gate, ring buffer).
 *
 * Reads a batch of commands (little-endian int32 fields) and writes every result, so that
 * one run checks many cases against the Python reference (tests/test_audio_c.py):
 *
 *   1 FRONTEND  n_chunks, then per chunk: n, int16[n]
 *               -> per chunk: int32 frames, int8[frames * n_mels]
 *               (each push is first tried with one frame too few: it must return
 *               TG_FRONTEND_ERR_SPACE and change nothing)
 *   2 CTC       vocab_size, n_chunks, then per chunk: frames, int8[frames * vocab_size]
 *               -> per chunk, then for the flush: int32 count, count * {id, start, end};
 *                  then int32 bytes, the UTF-8 text of all tokens
 *   3 GATE      threshold, rise, hangover, min_level, init_floor, n_chunks, then per
 *               chunk: n, int16[n]   -> per chunk: int32 level, run, floor
 *   4 RING      capacity, n_ops, then per op: kind (0 write n, 1 read up to n), n
 *               -> per op: int32 result (and for a read, int16[result]); then int32
 *                  overruns, dropped_samples. Written samples count up from 0.
 *   5 WORDS     entries, then per entry: n, int32[n] ids; vocab_size, n_chunks, then per
 *               chunk: frames, int8[frames * vocab_size]
 *               -> per chunk: int32 index, score, free, frames (tg_words_result)
 *   6 SPLIT     n_cases, then per case: int32[n_fft] doubled half-size FFT values 2Z
 *               (re, im interleaved; built with TG_FRONTEND_TEST_HOOKS)
 *               -> per case: uint32[n_fft + 2], the power as (low, high) halves
 *   0 END
 *
 * Host build: stdin to stdout. QEMU build (-DTG_DRIVER_SEMIHOST): audio_in.bin to
 * audio_out.bin in QEMU's working directory, through semihosting; each front-end push runs
 * between the instruction-count markers tg_mark_start / tg_mark_stop.
 */
#include <stdint.h>
#include <string.h>

#include "tg_audio_tables.h"
#include "tg_ctc.h"
#include "tg_frontend.h"
#include "tg_gate.h"
#include "tg_ring.h"
#include "tg_words.h"

#define MAX_CHUNK 8192
#define MAX_FRAMES 128
#define MAX_LOGITS 65536
#define MAX_RING 4096
#define MAX_WORD_IDS 2048
#define MAX_WORD_ENTRIES 256

#ifdef TG_DRIVER_SEMIHOST
#include "tg_qemu_markers.h"
#include "tg_semihost.h"
static int in_handle = -1, out_handle = -1;
static int io_read(void *buf, long n) { return tg_sh_read(in_handle, buf, n) == n; }
static int io_write(const void *buf, long n) { return tg_sh_write(out_handle, buf, n) == n; }
#define MARK_START() (tg_mark_start(), tg_mark_step()) /* one step: the push */
#define MARK_STOP() tg_mark_stop()
#else
#include <stdio.h>
static int io_read(void *buf, long n) { return fread(buf, 1, (size_t)n, stdin) == (size_t)n; }
static int io_write(const void *buf, long n)
{
    return fwrite(buf, 1, (size_t)n, stdout) == (size_t)n;
}
#define MARK_START() ((void)0)
#define MARK_STOP() ((void)0)
#endif

static tg_frontend_state_t frontend;
static int16_t samples[MAX_CHUNK];
static int8_t frames[MAX_FRAMES * TG_FRONTEND_MAX_MELS];
static int8_t logits[MAX_LOGITS];
static tg_ctc_token_t tokens[MAX_LOGITS];
static int32_t token_ids[MAX_LOGITS];
static int16_t ring_storage[MAX_RING];
static int16_t ring_out[MAX_RING];
static uint16_t word_offset[MAX_WORD_ENTRIES + 1];
static uint8_t word_ids[MAX_WORD_IDS];
static int32_t word_scores[2 * MAX_WORD_IDS + MAX_WORD_ENTRIES];

static int read_i32(int32_t *v)
{
    uint8_t b[4];
    if (!io_read(b, 4)) {
        return 0;
    }
    *v = (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                   (uint32_t)b[3] << 24);
    return 1;
}

static int write_i32(int32_t v)
{
    const uint32_t u = (uint32_t)v;
    const uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16),
                          (uint8_t)(u >> 24)};
    return io_write(b, 4);
}

static int read_samples(int32_t n)
{
    int32_t i;
    if (n < 0 || n > MAX_CHUNK || !io_read(samples, 2L * n)) {
        return 0;
    }
    for (i = 0; i < n; ++i) { /* little-endian bytes to int16 on any host */
        const uint8_t *b = (const uint8_t *)&samples[i];
        const uint16_t u = (uint16_t)(b[0] | b[1] << 8);
        samples[i] = (int16_t)(u >= 32768u ? (int32_t)u - 65536 : (int32_t)u);
    }
    return 1;
}

static int run_frontend(void)
{
    const tg_frontend_tables_t *t = &tg_audio_frontend;
    int32_t chunks, c;
    if (!read_i32(&chunks)) {
        return 0;
    }
    tg_frontend_reset(&frontend);
    for (c = 0; c < chunks; ++c) {
        int32_t n, want, got;
        if (!read_i32(&n) || !read_samples(n)) {
            return 0;
        }
        want = tg_frontend_frames_for(&frontend, t, n);
        if (want > MAX_FRAMES) {
            return 0;
        }
        if (want > 0) {
            const int32_t fill = frontend.fill;
            if (tg_frontend_push(&frontend, t, samples, n, frames, want - 1) !=
                    TG_FRONTEND_ERR_SPACE || frontend.fill != fill) {
                return 0;
            }
        }
        MARK_START();
        got = tg_frontend_push(&frontend, t, samples, n, frames, want);
        MARK_STOP();
        if (got != want || !write_i32(got) || !io_write(frames, (long)got * t->n_mels)) {
            return 0;
        }
    }
    return 1;
}

static int write_tokens(const tg_ctc_token_t *tok, int32_t count, int32_t *n_ids)
{
    int32_t i;
    if (count < 0 || !write_i32(count)) {
        return 0;
    }
    for (i = 0; i < count; ++i) {
        if (!write_i32(tok[i].id) || !write_i32(tok[i].start) || !write_i32(tok[i].end)) {
            return 0;
        }
        token_ids[(*n_ids)++] = tok[i].id;
    }
    return 1;
}

static int run_ctc(void)
{
    tg_ctc_state_t state;
    int32_t vocab, chunks, c, i, n_ids = 0, bytes = 0;
    if (!read_i32(&vocab) || !read_i32(&chunks) || vocab < 1) {
        return 0;
    }
    tg_ctc_reset(&state);
    for (c = 0; c < chunks; ++c) {
        int32_t f;
        if (!read_i32(&f) || f < 0 || (int64_t)f * vocab > MAX_LOGITS ||
                !io_read(logits, (long)f * vocab)) {
            return 0;
        }
        if (f > 0 && tg_ctc_push(&state, logits, f, vocab, tokens, f - 1) != TG_CTC_ERR_SPACE) {
            return 0;
        }
        if (!write_tokens(tokens, tg_ctc_push(&state, logits, f, vocab, tokens, f), &n_ids)) {
            return 0;
        }
    }
    if (!write_tokens(tokens, tg_ctc_flush(&state, tokens, 1), &n_ids)) {
        return 0;
    }
    for (i = 0; i < n_ids; ++i) {
        int32_t len;
        (void)tg_ctc_piece(&tg_audio_vocab, token_ids[i], &len);
        bytes += len;
    }
    if (!write_i32(bytes)) {
        return 0;
    }
    for (i = 0; i < n_ids; ++i) {
        int32_t len;
        const char *piece = tg_ctc_piece(&tg_audio_vocab, token_ids[i], &len);
        if (!io_write(piece, len)) {
            return 0;
        }
    }
    return 1;
}

static int run_gate(void)
{
    tg_gate_config_t cfg;
    tg_gate_state_t state;
    int32_t chunks, c;
    if (!read_i32(&cfg.threshold) || !read_i32(&cfg.rise) || !read_i32(&cfg.hangover) ||
            !read_i32(&cfg.min_level) || !read_i32(&cfg.init_floor) || !read_i32(&chunks)) {
        return 0;
    }
    tg_gate_reset(&state, &cfg);
    for (c = 0; c < chunks; ++c) {
        int32_t n, run;
        if (!read_i32(&n) || n < 1 || !read_samples(n)) {
            return 0;
        }
        run = tg_gate_push(&state, &cfg, samples, n);
        if (!write_i32(state.level) || !write_i32(run) || !write_i32(state.floor)) {
            return 0;
        }
    }
    return 1;
}

static int run_ring(void)
{
    tg_ring_t ring;
    int32_t capacity, ops, k;
    int32_t counter = 0;
    if (!read_i32(&capacity) || !read_i32(&ops) || capacity < 0 || capacity > MAX_RING ||
            tg_ring_init(&ring, ring_storage, (uint32_t)capacity) != 0) {
        return 0;
    }
    for (k = 0; k < ops; ++k) {
        int32_t kind, n, i;
        uint32_t done;
        if (!read_i32(&kind) || !read_i32(&n) || n < 0 || n > MAX_RING) {
            return 0;
        }
        if (kind == 0) {
            for (i = 0; i < n; ++i) {
                samples[i] = (int16_t)((counter + i) % 32768);
            }
            done = tg_ring_write(&ring, samples, (uint32_t)n);
            counter += (int32_t)done;
            if (!write_i32((int32_t)done)) {
                return 0;
            }
        } else {
            done = tg_ring_read(&ring, ring_out, (uint32_t)n);
            if (!write_i32((int32_t)done) || !io_write(ring_out, 2L * (long)done)) {
                return 0;
            }
        }
    }
    return write_i32((int32_t)ring.overruns) && write_i32((int32_t)ring.dropped_samples);
}

/* The split and power on chosen FFT values (tg_frontend_split_power_test). */
void tg_frontend_split_power_test(const tg_frontend_tables_t *t, const int32_t *z2,
                                  uint32_t *power);

static int run_split(void)
{
    static int32_t z2[TG_FRONTEND_MAX_FFT];
    static uint32_t power[TG_FRONTEND_MAX_FFT + 2];
    const int32_t n = tg_audio_frontend.n_fft;
    int32_t cases, c;
    if (!read_i32(&cases) || cases < 0) {
        return 0;
    }
    for (c = 0; c < cases; ++c) {
        if (!io_read(z2, 4L * n)) {
            return 0;
        }
        tg_frontend_split_power_test(&tg_audio_frontend, z2, power);
        if (!io_write(power, 4L * (n + 2))) {
            return 0;
        }
    }
    return 1;
}

static int run_words(void)
{
    tg_words_t words;
    tg_words_state_t state;
    int32_t entries, vocab, chunks, e, c;
    if (!read_i32(&entries) || entries < 1 || entries > MAX_WORD_ENTRIES) {
        return 0;
    }
    word_offset[0] = 0;
    for (e = 0; e < entries; ++e) {
        int32_t n, i;
        if (!read_i32(&n) || n < 1 || word_offset[e] + n > MAX_WORD_IDS) {
            return 0;
        }
        for (i = 0; i < n; ++i) {
            int32_t id;
            if (!read_i32(&id) || id < 1 || id > 255) {
                return 0;
            }
            word_ids[word_offset[e] + i] = (uint8_t)id;
        }
        word_offset[e + 1] = (uint16_t)(word_offset[e] + n);
    }
    words.entries = entries;
    words.offset = word_offset;
    words.ids = word_ids;
    words.text = NULL; /* the scores alone are compared */
    words.text_offset = NULL;
    if (!read_i32(&vocab) || !read_i32(&chunks) || vocab < 1) {
        return 0;
    }
    tg_words_reset(&state, &words, word_scores);
    for (c = 0; c < chunks; ++c) {
        tg_words_result_t r;
        int32_t f;
        if (!read_i32(&f) || f < 0 || (int64_t)f * vocab > MAX_LOGITS ||
                !io_read(logits, (long)f * vocab)) {
            return 0;
        }
        tg_words_push(&state, &words, logits, f, vocab);
        r = tg_words_result(&state, &words);
        if (!write_i32(r.index) || !write_i32(r.score) || !write_i32(r.free) ||
                !write_i32(r.frames)) {
            return 0;
        }
    }
    return 1;
}

int main(void)
{
    int32_t cmd;
    int ok = 1;
#ifdef TG_DRIVER_SEMIHOST
    in_handle = tg_sh_open("audio_in.bin", "rb");
    out_handle = tg_sh_open("audio_out.bin", "wb");
    if (in_handle < 0 || out_handle < 0) {
        return 2;
    }
#endif
    if (tg_frontend_check(&tg_audio_frontend) != 0) {
        return 3;
    }
    while (ok && read_i32(&cmd) && cmd != 0) {
        switch (cmd) {
        case 1: ok = run_frontend(); break;
        case 2: ok = run_ctc(); break;
        case 3: ok = run_gate(); break;
        case 4: ok = run_ring(); break;
        case 5: ok = run_words(); break;
        case 6: ok = run_split(); break;
        default: ok = 0; break;
        }
    }
#ifdef TG_DRIVER_SEMIHOST
    (void)tg_sh_close(in_handle);
    (void)tg_sh_close(out_handle);
#endif
    return ok ? 0 : 1;
}
