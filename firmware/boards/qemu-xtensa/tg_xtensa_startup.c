/*
 * tinygen QEMU board sim-lx106 (qemu-system-xtensa -M sim -cpu lx106): reset code.
 *
 * QEMU starts the core at the reset vector 0x50000000, the first byte of FLASH, where the
 * linker script puts .vectors (tg_reset_handler below), with no stack: picolibc's crt0
 * does not set one, so the reset code loads a1 with __stack_top__ from the linker script
 * and calls tg_start. tg_start copies .data from FLASH, zeroes .bss, runs main() and
 * hands its return value to the host as the exit status (tg_sh_exit).
 *
 * The lx106 has no register windows, so code is built for the call0 ABI; the ESP32's
 * windowed ABI (entry/retw) is only compiled, by the esp32 compile check, never run.
 */
#include <stdint.h>

#include "tg_semihost.h"

extern uint32_t __data_load__[];
extern uint32_t __data_start__[];
extern uint32_t __data_end__[];
extern uint32_t __bss_start__[];
extern uint32_t __bss_end__[];

int main(void);
void tg_start(void);
extern const char tg_fault_message[];

/* The one piece of assembly, at the start of FLASH (VECBASE is set to it): the reset
 * entry at offset 0 and, at the lx106's vector offsets (debug 0x10, NMI 0x20, kernel
 * 0x30, user 0x50, double exception 0x70), a jump to tg_fault, which prints "tg_fault"
 * and exits with status 3, as the Cortex-M boards' fault handler does. Reset sets
 * VECBASE and a1 (the call0 ABI's stack pointer), then calls tg_start. */
__asm__(
    "    .section .vectors, \"ax\"\n"
    "    .begin no-transform\n"
    "    .global tg_reset_handler\n"
    "    .type tg_reset_handler, @function\n"
    "tg_reset_handler:\n"
    "    j .Ltg_reset\n"
    "    .org 0x10\n"
    "    j .Ltg_fault\n"
    "    .org 0x20\n"
    "    j .Ltg_fault\n"
    "    .org 0x30\n"
    "    j .Ltg_fault\n"
    "    .org 0x50\n"
    "    j .Ltg_fault\n"
    "    .org 0x70\n"
    "    j .Ltg_fault\n"
    "    .align 4\n"
    ".Ltg_vecbase: .word tg_reset_handler\n"
    ".Ltg_stack:   .word __stack_top__\n"
    ".Ltg_start:   .word tg_start\n"
    ".Ltg_message: .word tg_fault_message\n"
    ".Ltg_reset:\n"
    "    l32r a2, .Ltg_vecbase\n"
    "    wsr a2, vecbase\n"
    "    rsync\n"
    "    l32r a1, .Ltg_stack\n"
    "    l32r a0, .Ltg_start\n"
    "    callx0 a0\n"
    ".Ltg_fault:\n"
    "    movi a2, 4\n" /* write(1, "tg_fault\\n", 9) */
    "    movi a3, 1\n"
    "    l32r a4, .Ltg_message\n"
    "    movi a5, 9\n"
    "    simcall\n"
    "    movi a2, 1\n" /* exit(3) */
    "    movi a3, 3\n"
    "    simcall\n"
    "1:  j 1b\n"
    "    .end no-transform\n"
    "    .size tg_reset_handler, . - tg_reset_handler\n"
    "    .text\n");

const char tg_fault_message[] = "tg_fault\n";

void tg_start(void)
{
    uint32_t *src = __data_load__;
    uint32_t *dst = __data_start__;

    while (dst < __data_end__) {
        *dst++ = *src++;
    }
    for (dst = __bss_start__; dst < __bss_end__; ++dst) {
        *dst = 0u;
    }
    tg_sh_exit(main());
}
