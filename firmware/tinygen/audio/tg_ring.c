/*
 * tg_ring: SPSC int16 audio ring buffer (see tg_ring.h for the ordering contract).
 *
 * ring     [in/out] tg_ring_t, initialised by tg_ring_init.
 * src, dst [in/out] int16 samples; n, max >= 0.
 * Copies are at most two memcpy calls (before and after the wrap). Cost: O(n).
 */
#include "tg_ring.h"

#include <stddef.h>
#include <string.h>

int32_t tg_ring_init(tg_ring_t *ring, int16_t *storage, uint32_t capacity)
{
    if (capacity == 0u || capacity > (1u << 30) || (capacity & (capacity - 1u)) != 0u) {
        return TG_RING_ERR_CAPACITY;
    }
    ring->buf = storage;
    ring->mask = capacity - 1u;
    ring->head = 0u;
    ring->tail = 0u;
    ring->overruns = 0u;
    ring->dropped_samples = 0u;
    return 0;
}

uint32_t tg_ring_write(tg_ring_t *ring, const int16_t *src, uint32_t n)
{
    const uint32_t head = ring->head;
    const uint32_t tail = ring->tail; /* the consumer may advance it meanwhile: only safer */
    const uint32_t free_space = ring->mask + 1u - (head - tail);
    uint32_t at, first;
    if (n > free_space) {
        ring->overruns = ring->overruns + 1u;
        ring->dropped_samples = ring->dropped_samples + n;
        return 0u;
    }
    at = head & ring->mask;
    first = ring->mask + 1u - at < n ? ring->mask + 1u - at : n;
    if (first > 0u) {
        memcpy(ring->buf + at, src, (size_t)first * sizeof(int16_t));
    }
    if (n > first) {
        memcpy(ring->buf, src + first, (size_t)(n - first) * sizeof(int16_t));
    }
    TG_RING_BARRIER(); /* the samples are visible before the new head */
    ring->head = head + n;
    return n;
}

uint32_t tg_ring_available(const tg_ring_t *ring)
{
    return ring->head - ring->tail;
}

uint32_t tg_ring_read(tg_ring_t *ring, int16_t *dst, uint32_t max)
{
    const uint32_t tail = ring->tail;
    const uint32_t used = ring->head - tail;
    const uint32_t n = used < max ? used : max;
    const uint32_t at = tail & ring->mask;
    const uint32_t first = ring->mask + 1u - at < n ? ring->mask + 1u - at : n;
    TG_RING_BARRIER(); /* read head before the samples it covers */
    if (first > 0u) {
        memcpy(dst, ring->buf + at, (size_t)first * sizeof(int16_t));
    }
    if (n > first) {
        memcpy(dst + first, ring->buf, (size_t)(n - first) * sizeof(int16_t));
    }
    TG_RING_BARRIER(); /* the samples are read before the slots are released */
    ring->tail = tail + n;
    return n;
}
