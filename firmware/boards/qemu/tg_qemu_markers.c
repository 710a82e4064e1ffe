/*
 * tinygen QEMU boards: the instruction-count markers (see tg_qemu_markers.h).
 *
 * Each body is different, so no compiler can fold two markers into one address, and
 * each is noinline, so every call really executes the marker's first instruction.
 */
#include "tg_qemu_markers.h"

#include <stdint.h>

#if defined(__GNUC__)
#define TG_NOINLINE __attribute__((noinline))
#else
#define TG_NOINLINE
#endif

volatile uint32_t tg_mark_count; /* steps since the last start marker (for a debugger) */

TG_NOINLINE void tg_mark_start(void)
{
    tg_mark_count = 0u;
}

TG_NOINLINE void tg_mark_step(void)
{
    tg_mark_count += 1u;
}

TG_NOINLINE void tg_mark_stop(void)
{
    tg_mark_count |= 0x80000000u;
}
