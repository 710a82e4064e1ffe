/*
 * tg_softmax_s8 (CMSIS-NN backend): tinygen's portable kernel on every core.
 * Same contract as ../portable/tg_softmax_s8.c: int8 in, int8 out with scale 1/256 and
 * zero point -128, over the last axis; bit-exact with TFLM's int8 softmax, as CMSIS-NN's
 * arm_softmax_s8 is.
 *
 * The portable kernel tabulates exp of the 256 possible differences once per call, while
 * arm_softmax_s8 computes exp per element: measured on mcu-tiny's attention rows, 84
 * instructions an element against 525 on a Cortex-M4 (qemu-m4) and 563 on a Cortex-M55
 * with Helium (qemu-m55), so the backend builds the portable kernel here
 * (firmware/tinygen/cmsis_nn/README.md: the fastest bit-exact kernel per op).
 */
#include "../portable/tg_softmax_s8.c"
