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
