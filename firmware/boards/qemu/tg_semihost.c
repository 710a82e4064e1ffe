/* tinygen QEMU boards: Arm semihosting calls (see tg_semihost.h). */
#include "tg_semihost.h"

#include <stdint.h>

enum {
    TG_SYS_WRITEC = 0x03,
    TG_SYS_WRITE0 = 0x04,
    TG_SYS_EXIT = 0x18,
    TG_SYS_EXIT_EXTENDED = 0x20,
    TG_ADP_STOPPED_APPLICATION_EXIT = 0x20026,
    TG_ADP_STOPPED_RUN_TIME_ERROR = 0x20023
};

/* The one piece of assembly: r0 = operation, r1 = argument, BKPT 0xAB, result in r0. */
static uint32_t tg_sh_call(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void tg_sh_write0(const char *text)
{
    (void)tg_sh_call(TG_SYS_WRITE0, text);
}

void tg_sh_writec(char c)
{
    (void)tg_sh_call(TG_SYS_WRITEC, &c);
}

void tg_sh_exit(int status)
{
    /* A32/T32 SYS_EXIT cannot carry a status; SYS_EXIT_EXTENDED takes a parameter
     * block {reason, subcode}. Fall back to SYS_EXIT (status 0 or 1) if unsupported. */
    const uint32_t block[2] = {TG_ADP_STOPPED_APPLICATION_EXIT, (uint32_t)status};
    (void)tg_sh_call(TG_SYS_EXIT_EXTENDED, block);
    (void)tg_sh_call(TG_SYS_EXIT, (const void *)(uintptr_t)(status == 0
        ? TG_ADP_STOPPED_APPLICATION_EXIT : TG_ADP_STOPPED_RUN_TIME_ERROR));
    for (;;) {
    }
}
