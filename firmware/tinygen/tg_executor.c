/* tinygen runtime: schedule executor (see tg_executor.h). */
#include "tg_executor.h"

#include <stddef.h>

static int run_step(const tg_step_t *st, int8_t *const *t, const void *params)
{
    switch ((tg_op_kind_t)st->kind) {
    case TG_OP_FULLY_CONNECTED:
        tg_fully_connected_s8(t[0], t[1], (const tg_fc_params_t *)params);
        return 0;
    case TG_OP_CONV2D:
        tg_conv2d_s8(t[0], t[1], (const tg_conv_params_t *)params);
        return 0;
    case TG_OP_DEPTHWISE_CONV2D:
        tg_depthwise_conv2d_s8(t[0], t[1], (const tg_conv_params_t *)params);
        return 0;
    case TG_OP_BATCH_MATMUL: {
        const tg_batch_matmul_params_t *bp = (const tg_batch_matmul_params_t *)params;
        tg_batch_matmul_s8(t[0], bp->rhs_const != NULL ? bp->rhs_const : t[1],
                           t[st->n_io - 1], bp);
        return 0;
    }
    case TG_OP_ADD:
        tg_add_s8(t[0], t[1], t[2], (const tg_add_params_t *)params);
        return 0;
    case TG_OP_MUL:
        tg_mul_s8(t[0], t[1], t[2], (const tg_mul_params_t *)params);
        return 0;
    case TG_OP_LUT:
        tg_lut_s8(t[0], t[1], (const tg_lut_params_t *)params);
        return 0;
    case TG_OP_SOFTMAX:
        tg_softmax_s8(t[0], t[1], (const tg_softmax_params_t *)params);
        return 0;
    case TG_OP_LAYER_NORM:
        tg_layer_norm_s8(t[0], t[1], (const tg_layer_norm_params_t *)params);
        return 0;
    case TG_OP_TRANSPOSE:
        tg_transpose_s8(t[0], t[1], (const tg_transpose_params_t *)params);
        return 0;
    case TG_OP_ADD_BCAST: {
        const tg_add_bcast_params_t *bp = (const tg_add_bcast_params_t *)params;
        tg_add_bcast_s8(t[0], bp->input2_const != NULL ? bp->input2_const : t[1],
                        t[st->n_io - 1], bp);
        return 0;
    }
    case TG_OP_MUL_BCAST: {
        const tg_mul_bcast_params_t *bp = (const tg_mul_bcast_params_t *)params;
        tg_mul_bcast_s8(t[0], bp->input2_const != NULL ? bp->input2_const : t[1],
                        t[st->n_io - 1], bp);
        return 0;
    }
    case TG_OP_LOG_SOFTMAX:
        tg_log_softmax_s8(t[0], t[1], (const tg_log_softmax_params_t *)params);
        return 0;
    case TG_OP_SLICE:
        tg_slice_s8(t[0], t[1], (const tg_slice_params_t *)params);
        return 0;
    case TG_OP_CONCAT: {
        const tg_concat_params_t *cp = (const tg_concat_params_t *)params;
        const int8_t *parts[4] = {NULL, NULL, NULL, NULL};
        uint8_t j, k = 0;
        for (j = 0; j < (uint8_t)cp->parts && j < 4u; ++j) {
            parts[j] = cp->consts[j] != NULL ? cp->consts[j] : t[k++];
        }
        tg_concat_s8(parts, t[st->n_io - 1], cp);
        return 0;
    }
    case TG_OP_SPLIT:
        tg_split_s8(t[0], t + 1, (const tg_split_params_t *)params);
        return 0;
    }
    return -1;
}

int tg_execute(const tg_schedule_t *schedule, int8_t *arena)
{
    uint32_t index = 0;
    uint16_t s;
    for (s = 0; s < schedule->n_segments; ++s) {
        const tg_segment_t *seg = &schedule->segments[s];
        const tg_program_t *prog = seg->program;
        uint16_t i;
        for (i = 0; i < prog->n_steps; ++i, ++index) {
            const tg_step_t *st = &prog->steps[i];
            int8_t *t[TG_MAX_STEP_IO];
            uint8_t j;
            int rc;
            for (j = 0; j < st->n_io; ++j) {
                t[j] = arena + seg->offsets[st->io[j]];
            }
            TG_STEP_BEGIN(index, st->kind);
            rc = run_step(st, t, seg->params[i]);
            TG_STEP_END(index, st->kind);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}
