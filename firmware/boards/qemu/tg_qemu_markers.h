/*
 * tinygen QEMU boards: instruction-count markers.
 *
 * The firmware calls these empty, never-inlined functions around each inference and
 * before each kernel call; the QEMU TCG plugin (firmware/tools/qemu_icount_plugin.c)
 * knows their addresses and counts the instructions executed between them. This header
 * is force-included (-include) in every translation unit of a QEMU build, so that the
 * executor's TG_STEP_BEGIN hook (tg_executor.h) calls tg_mark_step().
 */
#ifndef TG_QEMU_MARKERS_H
#define TG_QEMU_MARKERS_H

#ifdef __cplusplus
extern "C" {
#endif

void tg_mark_start(void); /* the inference of one test vector begins */
void tg_mark_step(void);  /* a schedule step (kernel call) begins */
void tg_mark_stop(void);  /* the inference has returned */

#ifdef __cplusplus
}
#endif

#define TG_STEP_BEGIN(index, kind) ((void)(index), (void)(kind), tg_mark_step())

#endif /* TG_QEMU_MARKERS_H */
