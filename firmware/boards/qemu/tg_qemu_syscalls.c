/*
 * tinygen QEMU boards (Arm): the newlib system calls a C++ library links against.
 *
 * What: _write, _read, _close, _fstat, _isatty, _lseek, _sbrk, _kill, _getpid, _exit for
 *   newlib-nano, so that TensorFlow Lite Micro (the tflm backend) links on the bare
 *   board: its DebugLog prints with vfprintf(stderr, ...) and its TFLITE_ABORT calls
 *   abort(). tinygen's own firmware needs none of them and does not link this file.
 * Bit-exact with: not applicable (no arithmetic).
 * Arguments: as newlib's syscalls(2) stubs. _write(fd, buf, n): fd 1 and 2 go to the
 *   semihosting console one character at a time (buf: n bytes, n >= 0); other fds fail.
 * Behaviour: no heap: _sbrk always fails with ENOMEM (the design forbids malloc; a TFLM
 *   path that allocates fails loudly instead of growing into the stack). _exit and
 *   _kill end the run through semihosting with the status (abort: 134).
 * Cost: one semihosting call per character written; nothing on the inference path.
 */
#include <errno.h>
#include <stddef.h>
#include <sys/stat.h>

#include "tg_semihost.h"

int _write(int fd, const char *buf, int n);
int _read(int fd, char *buf, int n);
int _close(int fd);
int _fstat(int fd, struct stat *st);
int _isatty(int fd);
int _lseek(int fd, int offset, int whence);
void *_sbrk(ptrdiff_t increment);
int _kill(int pid, int sig);
int _getpid(void);
void _exit(int status);

int _write(int fd, const char *buf, int n)
{
    int i;
    if (fd != 1 && fd != 2) {
        errno = EBADF;
        return -1;
    }
    for (i = 0; i < n; ++i) {
        tg_sh_writec(buf[i]);
    }
    return n;
}

int _read(int fd, char *buf, int n)
{
    (void)fd;
    (void)buf;
    (void)n;
    errno = EBADF;
    return -1;
}

int _close(int fd)
{
    (void)fd;
    errno = EBADF;
    return -1;
}

int _fstat(int fd, struct stat *st)
{
    (void)fd;
    st->st_mode = S_IFCHR; /* a character device: newlib then buffers by line */
    return 0;
}

int _isatty(int fd)
{
    return fd == 1 || fd == 2;
}

int _lseek(int fd, int offset, int whence)
{
    (void)fd;
    (void)offset;
    (void)whence;
    errno = ESPIPE;
    return -1;
}

void *_sbrk(ptrdiff_t increment)
{
    (void)increment;
    errno = ENOMEM;
    return (void *)-1;
}

int _kill(int pid, int sig)
{
    (void)pid;
    tg_sh_exit(128 + sig);
    return -1;
}

int _getpid(void)
{
    return 1;
}

void _exit(int status)
{
    tg_sh_exit(status);
    for (;;) {
    }
}
