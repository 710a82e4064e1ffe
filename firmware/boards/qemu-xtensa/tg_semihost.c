/*
 * tinygen QEMU board sim-lx106: semihosting through the Xtensa ISS `simcall`
 * instruction, behind the same calls as the Cortex-M boards (../qemu/tg_semihost.h).
 *
 * a2 = operation (the ISS's Linux-style numbers: 1 exit, 4 write), a3..a5 = arguments;
 * the result comes back in a2. QEMU serves them with -semihosting; on a core without a
 * debugger or simulator simcall is a no-op or an illegal instruction, so this layer is
 * for emulation only.
 */
#include "tg_semihost.h"

#include <stdint.h>

enum { TG_SIM_EXIT = 1, TG_SIM_WRITE = 4, TG_STDOUT = 1 };

static int32_t tg_simcall(int32_t op, int32_t a, const void *b, int32_t c)
{
    register int32_t a2 __asm__("a2") = op;
    register int32_t a3 __asm__("a3") = a;
    register const void *a4 __asm__("a4") = b;
    register int32_t a5 __asm__("a5") = c;
    __asm__ volatile("simcall" : "+r"(a2), "+r"(a3) : "r"(a4), "r"(a5) : "memory");
    return a2;
}

void tg_sh_write0(const char *text)
{
    int32_t n = 0;
    while (text[n] != '\0') {
        ++n;
    }
    (void)tg_simcall(TG_SIM_WRITE, TG_STDOUT, text, n);
}

void tg_sh_writec(char c)
{
    (void)tg_simcall(TG_SIM_WRITE, TG_STDOUT, &c, 1);
}

void tg_sh_exit(int status)
{
    (void)tg_simcall(TG_SIM_EXIT, (int32_t)status, 0, 0);
    for (;;) {
    }
}
