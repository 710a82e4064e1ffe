/*
 * tinygen runtime: the executor that walks a compiled model's schedule.
 *
 * A schedule is a list of segments (one per top-level module call: the subsampling, each
 * virtual layer, the head). Segments with the same op sequence share one program; each
 * segment binds the program's tensor slots to arena offsets and its steps to params
 * records. Repeating a block therefore repeats a binding, never the program.
 */
#ifndef TG_EXECUTOR_H
#define TG_EXECUTOR_H

#include <stdint.h>

#include "tg_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Kernel kinds. The compiler writes these by name (TG_OP_ + upper-case kind). */
typedef enum {
    TG_OP_FULLY_CONNECTED = 1,
    TG_OP_CONV2D = 2,
    TG_OP_DEPTHWISE_CONV2D = 3,
    TG_OP_BATCH_MATMUL = 4,
    TG_OP_ADD = 5,
    TG_OP_MUL = 6,
    TG_OP_LUT = 7,
    TG_OP_SOFTMAX = 8,
    TG_OP_LAYER_NORM = 9,
    TG_OP_TRANSPOSE = 10,
    TG_OP_SPLIT = 11,
    TG_OP_ADD_BCAST = 12,         /* io: input1, [input2,] output */
    TG_OP_MUL_BCAST = 13,
    TG_OP_LOG_SOFTMAX = 14,
    TG_OP_SLICE = 15,
    TG_OP_CONCAT = 16              /* io: the arena parts, then output */
} tg_op_kind_t;

#define TG_MAX_STEP_IO 6

typedef struct {
    uint8_t kind;               /* tg_op_kind_t */
    uint8_t n_io;               /* inputs then outputs, in io[] */
    uint8_t io[TG_MAX_STEP_IO]; /* tensor slot indices */
} tg_step_t;

typedef struct {
    const tg_step_t *steps;
    uint16_t n_steps;
    uint16_t n_slots;
} tg_program_t;

typedef struct {
    const tg_program_t *program;
    const uint32_t *offsets;    /* arena offset of each tensor slot */
    const void *const *params;  /* one params record per step */
} tg_segment_t;

typedef struct {
    const tg_segment_t *segments;
    uint16_t n_segments;
} tg_schedule_t;

/* Optional instrumentation: define TG_STEP_BEGIN / TG_STEP_END before including the
 * executor source (e.g. -D flags) to mark each kernel call; the QEMU instruction counter
 * uses them. Both receive the global step index and the kind. */
#ifndef TG_STEP_BEGIN
#define TG_STEP_BEGIN(index, kind) ((void)(index), (void)(kind))
#endif
#ifndef TG_STEP_END
#define TG_STEP_END(index, kind) ((void)(index), (void)(kind))
#endif

/* Run every segment in order over ``arena``. Returns 0, or -1 for an unknown kind. */
int tg_execute(const tg_schedule_t *schedule, int8_t *arena);

#ifdef __cplusplus
}
#endif

#endif /* TG_EXECUTOR_H */
