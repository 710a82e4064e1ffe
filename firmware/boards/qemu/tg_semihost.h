/*
 * tinygen QEMU boards: Arm semihosting, the few calls the regression firmware needs.
 *
 * Each call is a BKPT 0xAB with the operation in r0 and its argument in r1 (the Arm
 * "Semihosting for AArch32 and AArch64" specification, M-profile form). QEMU serves
 * them when run with -semihosting-config enable=on,target=native; on a real board with
 * no debugger attached the BKPT would lock up, so this layer is for emulation only.
 * The Xtensa board implements the same three calls with simcall
 * (../qemu-xtensa/tg_semihost.c).
 */
#ifndef TG_SEMIHOST_H
#define TG_SEMIHOST_H

#ifdef __cplusplus
extern "C" {
#endif

/* Write a NUL-terminated string to the host console (SYS_WRITE0). */
void tg_sh_write0(const char *text);

/* Write one character to the host console (SYS_WRITEC). */
void tg_sh_writec(char c);

/* Host files (SYS_OPEN, SYS_READ, SYS_WRITE, SYS_CLOSE), for firmware that reads its
 * input from and writes its results to the host. mode is an fopen() mode ("rb", "wb").
 * tg_sh_open returns a handle >= 0, or -1. tg_sh_read and tg_sh_write return the bytes
 * transferred (fewer than n at end of file or on error). */
int tg_sh_open(const char *path, const char *mode);
long tg_sh_read(int handle, void *buf, long n);
long tg_sh_write(int handle, const void *buf, long n);
int tg_sh_close(int handle);

/* End the emulation with exit status ``status`` (SYS_EXIT_EXTENDED with
 * ADP_Stopped_ApplicationExit; QEMU passes the status through). Never returns. */
void tg_sh_exit(int status);

#ifdef __cplusplus
}
#endif

#endif /* TG_SEMIHOST_H */
