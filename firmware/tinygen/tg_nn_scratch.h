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

/* Bytes the widened shifts of n channels take at the start of the scratch buffer: a
 * multiple of 16, so that the library's scratch after them stays 16-byte aligned. */
#define TG_NN_SHIFT_BYTES(n) ((((int32_t)(n) * 4 + 15) / 16) * 16)

/* tinygen stores per-channel shifts as int8 (TFLM's shifts lie in [-31, 31]); CMSIS-NN
 * and ESP-NN take int32 arrays. This widens the n shifts ``shift`` into the first
 * TG_NN_SHIFT_BYTES(n) bytes of the scratch buffer and returns them; ``bytes`` more
 * bytes of scratch follow for the library's own use, at *scratch (NULL when bytes is 0).
 * Returns NULL (and *scratch = NULL), counted as an error, when the buffer is smaller
 * than TG_NN_SHIFT_BYTES(n) + bytes. Valid until the next tg_nn_* call. */
int32_t *tg_nn_shifts(const int8_t *shift, int32_t n, int32_t bytes, int8_t **scratch);

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
