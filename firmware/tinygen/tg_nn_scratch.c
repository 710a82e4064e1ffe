/* tinygen runtime: scratch memory for the library-backed kernels (see tg_nn_scratch.h). */
#include "tg_nn_scratch.h"

#include <stddef.h>

#if defined(__GNUC__)
#define TG_NN_SCRATCH_ALIGN __attribute__((aligned(16)))
#else
#define TG_NN_SCRATCH_ALIGN
#endif

/* int32_t storage keeps every library's word accesses aligned; one spare word so that
 * the array is never empty. */
static int32_t tg_nn_storage[(TG_NN_SCRATCH_BYTES + 3) / 4 + 1] TG_NN_SCRATCH_ALIGN;
static int32_t tg_nn_error_count;
static int32_t tg_nn_peak;

int8_t *tg_nn_scratch(int32_t bytes)
{
    if (bytes > tg_nn_peak) {
        tg_nn_peak = bytes;
    }
    if (bytes < 0 || bytes > TG_NN_SCRATCH_BYTES) {
        ++tg_nn_error_count;
        return NULL;
    }
    return (int8_t *)tg_nn_storage;
}

int32_t *tg_nn_shifts(const int8_t *shift, int32_t n, int32_t bytes, int8_t **scratch)
{
    int8_t *base;
    int32_t *wide;
    int32_t i;

    *scratch = NULL;
    if (n < 0 || bytes < 0) {
        ++tg_nn_error_count;
        return NULL;
    }
    base = tg_nn_scratch(TG_NN_SHIFT_BYTES(n) + bytes);
    if (base == NULL) {
        return NULL;
    }
    wide = (int32_t *)(void *)base;
    for (i = 0; i < n; ++i) {
        wide[i] = shift[i];
    }
    if (bytes > 0) {
        *scratch = base + TG_NN_SHIFT_BYTES(n);
    }
    return wide;
}

void tg_nn_fail(void)
{
    ++tg_nn_error_count;
}

int32_t tg_nn_errors(void)
{
    return tg_nn_error_count;
}

int32_t tg_nn_scratch_peak(void)
{
    return tg_nn_peak;
}
