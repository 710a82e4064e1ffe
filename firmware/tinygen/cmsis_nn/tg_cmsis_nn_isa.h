/*
 * tg_cmsis_nn_isa.h: stop the build when CMSIS-NN would compile a slower path than the
 * board's CPU has.
 *
 * CMSIS-NN picks its code path from the compiler's feature macros
 * (Include/arm_nn_math_types.h): ARM_MATH_MVEI when __ARM_FEATURE_MVE & 1 (Helium,
 * Cortex-M55/M85), ARM_MATH_DSP when __ARM_FEATURE_DSP == 1 (Cortex-M4/M7/M33). When
 * the flags leave the feature off (for instance -mcpu=cortex-m55 without an FPU ABI:
 * GCC then defines no __ARM_FEATURE_MVE), CMSIS-NN silently builds its plain C or DSP
 * path: the results stay bit-exact but the speed is not the board's.
 *
 * A generated PlatformIO project says what the board's CPU has, in lib/tinygen's build
 * flags: -DTG_CMSIS_NN_REQUIRE_MVE=1 or -DTG_CMSIS_NN_REQUIRE_DSP=1. Include this
 * header after arm_nnfunctions.h (which brings arm_nn_math_types.h). Without those
 * defines it checks nothing, so the adapters still build for any Arm core.
 */
#ifndef TG_CMSIS_NN_ISA_H
#define TG_CMSIS_NN_ISA_H

#include "arm_nn_math_types.h"

#if defined(TG_CMSIS_NN_REQUIRE_MVE) && !defined(ARM_MATH_MVEI)
#error "tinygen: CMSIS-NN would build without MVE (Helium); compile with -mfloat-abi=hard -mfpu=auto (Zephyr: CONFIG_FPU=y, CONFIG_FP_HARDABI=y)"
#endif

#if defined(TG_CMSIS_NN_REQUIRE_DSP) && !defined(ARM_MATH_DSP)
#error "tinygen: CMSIS-NN would build without the DSP extension; compile with the board's -mcpu (cortex-m4, cortex-m7)"
#endif

#endif /* TG_CMSIS_NN_ISA_H */
