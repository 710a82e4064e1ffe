/*
 * tg_ring: single-producer single-consumer ring buffer of int16 audio samples.
 *
 * One producer (a DMA-complete callback or ISR, or one task) calls tg_ring_write; one
 * consumer task calls tg_ring_read / tg_ring_available. Nothing else touches the ring
 * after tg_ring_init. The capacity is a power of two; head and tail are free-running
 * 32-bit counters (head - tail = samples stored, modulo 2^32), each written by one side
 * only.
 *
 * Memory ordering: the producer stores the samples, then TG_RING_BARRIER(), then head;
 * the consumer loads head, TG_RING_BARRIER(), reads the samples, TG_RING_BARRIER(), then
 * stores tail. This assumes aligned 32-bit loads and stores are single-copy atomic (true
 * on Cortex-M and Xtensa LX7) and that TG_RING_BARRIER() orders memory between the two
 * contexts: with GCC or Clang it is __sync_synchronize() (DMB on Arm, MEMW on Xtensa),
 * enough for an ISR on the same core and for two cores (ESP32-S3) alike. Define it
 * yourself for another compiler. DMA must write into its own buffer, never into the ring:
 * the callback copies a finished DMA block in with tg_ring_write.
 *
 * Overrun: a block that does not fit in the free space is dropped whole (never written
 * over unread samples); overruns and dropped_samples count it for the consumer to report.
 */
#ifndef TG_RING_H
#define TG_RING_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef TG_RING_BARRIER
#if defined(__GNUC__) || defined(__clang__)
#define TG_RING_BARRIER() __sync_synchronize()
#else
#define TG_RING_BARRIER() ((void)0)
#endif
#endif

#define TG_RING_ERR_CAPACITY (-1) /* capacity is not a power of two in 1 .. 2^30 */

typedef struct {
    int16_t *buf;
    uint32_t mask;                     /* capacity - 1 */
    volatile uint32_t head;            /* samples written since init (producer only) */
    volatile uint32_t tail;            /* samples read since init (consumer only) */
    volatile uint32_t overruns;        /* blocks dropped (producer only) */
    volatile uint32_t dropped_samples; /* samples in those blocks (producer only) */
} tg_ring_t;

/* storage: capacity int16 samples, owned by the caller. Returns 0 or TG_RING_ERR_CAPACITY. */
int32_t tg_ring_init(tg_ring_t *ring, int16_t *storage, uint32_t capacity);

/* Producer: append n samples, all or nothing. Returns n, or 0 when they did not fit (the
 * block is dropped and counted). */
uint32_t tg_ring_write(tg_ring_t *ring, const int16_t *src, uint32_t n);

/* Consumer: samples stored now (a lower bound while the producer runs). */
uint32_t tg_ring_available(const tg_ring_t *ring);

/* Consumer: move up to max samples, oldest first, to dst. Returns the number moved. */
uint32_t tg_ring_read(tg_ring_t *ring, int16_t *dst, uint32_t max);

#ifdef __cplusplus
}
#endif

#endif /* TG_RING_H */
