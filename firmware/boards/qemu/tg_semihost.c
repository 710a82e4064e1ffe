/* tinygen QEMU boards: Arm semihosting calls (see tg_semihost.h). */
#include "tg_semihost.h"

#include <stdint.h>

enum {
    TG_SYS_OPEN = 0x01,
    TG_SYS_CLOSE = 0x02,
    TG_SYS_WRITE = 0x05,
    TG_SYS_READ = 0x06,
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

int tg_sh_open(const char *path, const char *mode)
{
    /* SYS_OPEN modes 0..11 are "r", "rb", "r+", "r+b", "w", "wb", ... (ISO C order). */
    static const char *const modes[12] = {"r", "rb", "r+", "r+b", "w", "wb", "w+", "w+b",
                                          "a", "ab", "a+", "a+b"};
    uint32_t block[3];
    uint32_t m, len = 0u;
    for (m = 0u; m < 12u; ++m) {
        const char *a = modes[m];
        const char *b = mode;
        while (*a != '\0' && *a == *b) {
            ++a;
            ++b;
        }
        if (*a == '\0' && *b == '\0') {
            break;
        }
    }
    if (m == 12u) {
        return -1;
    }
    while (path[len] != '\0') {
        ++len;
    }
    block[0] = (uint32_t)(uintptr_t)path;
    block[1] = m;
    block[2] = len;
    return (int)tg_sh_call(TG_SYS_OPEN, block);
}

long tg_sh_read(int handle, void *buf, long n)
{
    /* SYS_READ returns the number of bytes NOT read. */
    const uint32_t block[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)buf, (uint32_t)n};
    return n - (long)tg_sh_call(TG_SYS_READ, block);
}

long tg_sh_write(int handle, const void *buf, long n)
{
    /* SYS_WRITE returns the number of bytes NOT written. */
    const uint32_t block[3] = {(uint32_t)handle, (uint32_t)(uintptr_t)buf, (uint32_t)n};
    return n - (long)tg_sh_call(TG_SYS_WRITE, block);
}

int tg_sh_close(int handle)
{
    const uint32_t block[1] = {(uint32_t)handle};
    return (int)tg_sh_call(TG_SYS_CLOSE, block);
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
