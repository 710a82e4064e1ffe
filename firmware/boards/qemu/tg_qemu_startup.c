/*
 * tinygen QEMU boards: vector table and reset handler for the Cortex-M boards QEMU
 * emulates (mps2-an386 / Cortex-M4, mps2-an500 / Cortex-M7, mps3-an547 / Cortex-M55).
 *
 * The linker script of each board (<board>.ld) places .vectors at the reset vector
 * address and defines the symbols used below. Reset enables the FPU (and MVE) when the
 * code is compiled for one, copies .data from flash, zeroes .bss, runs main() and hands
 * its return value to the host as the exit status. Any fault ends the run with status 3.
 */
#include <stdint.h>

#include "tg_semihost.h"

extern uint32_t __data_load__[];
extern uint32_t __data_start__[];
extern uint32_t __data_end__[];
extern uint32_t __bss_start__[];
extern uint32_t __bss_end__[];
extern uint32_t __stack_top__[];

int main(void);
void tg_reset_handler(void);
void tg_fault_handler(void);

typedef union {
    void (*handler)(void);
    uint32_t *stack;
} tg_vector_t;

/* Initial stack pointer, reset, then the 14 system exceptions (NMI, HardFault,
 * MemManage, BusFault, UsageFault, SecureFault, 4 reserved, SVCall, DebugMonitor,
 * reserved, PendSV, SysTick). No interrupt is enabled, so no IRQ vector is needed. */
__attribute__((section(".vectors"), used)) const tg_vector_t tg_vectors[16] = {
    {.stack = __stack_top__},    {.handler = tg_reset_handler},
    {.handler = tg_fault_handler}, {.handler = tg_fault_handler},
    {.handler = tg_fault_handler}, {.handler = tg_fault_handler},
    {.handler = tg_fault_handler}, {.handler = tg_fault_handler},
    {.handler = 0},              {.handler = 0},
    {.handler = 0},              {.handler = tg_fault_handler},
    {.handler = tg_fault_handler}, {.handler = 0},
    {.handler = tg_fault_handler}, {.handler = tg_fault_handler},
};

void tg_reset_handler(void)
{
    uint32_t *src = __data_load__;
    uint32_t *dst = __data_start__;

#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    /* CPACR: full access to coprocessors 10 and 11 (the FPU, and MVE on Armv8.1-M). */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    while (dst < __data_end__) {
        *dst++ = *src++;
    }
    for (dst = __bss_start__; dst < __bss_end__; ++dst) {
        *dst = 0u;
    }
    tg_sh_exit(main());
}

void tg_fault_handler(void)
{
    tg_sh_write0("tg_fault\n");
    tg_sh_exit(3);
}
