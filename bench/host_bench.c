/* Times tg_model_invoke() on the host: prints "<runs> <ns per inference>". */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tinygen_model.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 50;
    int i;
    double t0, best = 1e30;
    int8_t *in = tg_model_input();
    if (fread(in, 1, TG_INPUT_SIZE, stdin) != TG_INPUT_SIZE) {
        return 2;
    }
    tg_model_init();
    tg_model_invoke(); /* warm caches */
    for (i = 0; i < runs; ++i) {
        double dt;
        t0 = now_ns();
        tg_model_invoke();
        dt = now_ns() - t0;
        if (dt < best) {
            best = dt;
        }
    }
    printf("%d %.0f\n", runs, best);
    return 0;
}
