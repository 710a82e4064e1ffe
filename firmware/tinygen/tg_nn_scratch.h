/*
 * tinygen runtime: scratch memory for the library-backed kernels (cmsis_nn/, esp_nn/).
 *
 * Some CMSIS-NN and ESP-NN kernels need a scratch buffer whose size their documented
 * *_get_buffer_size / *_get_*_scratch_size companions return. The compiler sizes one
 * static buffer for the largest step of the model (TG_NN_SCRATCH_BYTES, set by the
 * generated project's build flags; 0 when no kernel needs one) and every adapter asks
 * for it here right before its call. Steps run one at a time, so they share it.
 *
 * A request larger than the buffer is refused and counted, never served: the adapter
 * then skips its library call, and the board's main reports tg_nn_errors() != 0 rather
 * than running on with memory overrun. Library calls that return an error status are
 * counted the same way.
 */
#ifndef TG_NN_SCRATCH_H
#define TG_NN_SCRATCH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef TG_NN_SCRATCH_BYTES
#define TG_NN_SCRATCH_BYTES 0
#endif

/* A 16-byte aligned buffer of at least ``bytes`` bytes (bytes >= 0), or NULL, counted as
 * an error, when bytes > TG_NN_SCRATCH_BYTES. Valid until the next call. */
int8_t *tg_nn_scratch(int32_t bytes);

/* Count one failed library call (a status other than success). */
void tg_nn_fail(void);

/* Refused scratch requests plus failed library calls since reset; 0 when all is well. */
int32_t tg_nn_errors(void);

/* The largest scratch request seen so far, in bytes (served or not). */
int32_t tg_nn_scratch_peak(void);

#ifdef __cplusplus
}
#endif

#endif /* TG_NN_SCRATCH_H */
