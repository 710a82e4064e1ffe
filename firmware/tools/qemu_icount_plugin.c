/*
 * qemu_icount_plugin: exact instruction counts of tinygen's QEMU regression firmware.
 *
 * A QEMU TCG plugin (host code, not firmware). The firmware calls three empty marker
 * functions (firmware/boards/qemu/tg_qemu_markers.c): tg_mark_start before each
 * inference, tg_mark_step before each kernel call, tg_mark_stop after the inference.
 * Given their addresses, the plugin counts the guest instructions executed from a start
 * marker to the next stop marker, split at the step markers, and writes one line per
 * inference:
 *
 *     vector <k> total <instructions> steps <s0> <s1> ... <sN-1>
 *
 * Step j runs from the j-th step marker to the next step (or stop) marker; the few
 * instructions from the start marker to the first step marker are added to step 0, so
 * the steps sum to the total. Counting is per translated block: an inline add of the
 * block's length on every execution, and, for the blocks holding a marker, a callback that
 * splits the block at the marker. The firmware takes no interrupts, so every block runs to
 * its end and the counts are exact and repeatable.
 *
 * Arguments (QEMU 7.2: -plugin ./qemu_icount_plugin.so,start=ADDR,step=ADDR,stop=ADDR,
 * out=FILE): marker addresses as C integers (the Thumb bit is ignored); out is the file
 * the lines go to (default: stderr).
 *
 * Debian ships no qemu-plugin.h, so the few declarations used are copied below from
 * QEMU 7.2's include/qemu/qemu-plugin.h (plugin API version 1). Build:
 *     gcc -std=c99 -O2 -shared -fPIC -o qemu_icount_plugin.so qemu_icount_plugin.c
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------- QEMU 7.2 plugin API (version 1) */
#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))
#define QEMU_PLUGIN_VERSION 1

typedef uint64_t qemu_plugin_id_t;

typedef struct qemu_info_t {
    const char *target_name;
    struct {
        int min;
        int cur;
    } version;
    bool system_emulation;
    union { /* anonymous in QEMU's header; named here for C99, same layout */
        struct {
            int smp_vcpus;
            int max_vcpus;
        } system;
    } u;
} qemu_info_t;

struct qemu_plugin_tb;
struct qemu_plugin_insn;

enum qemu_plugin_cb_flags {
    QEMU_PLUGIN_CB_NO_REGS,
    QEMU_PLUGIN_CB_R_REGS,
    QEMU_PLUGIN_CB_RW_REGS
};

enum qemu_plugin_op {
    QEMU_PLUGIN_INLINE_ADD_U64
};

typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
                                           qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb,
                                          qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb,
                                              enum qemu_plugin_op op, void *ptr,
                                              uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb,
                                    void *userdata);
void qemu_plugin_outs(const char *string);

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;
QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv);

/* ------------------------------------------------------------------ the counter */
enum marker { MARK_START, MARK_STEP, MARK_STOP, N_MARKERS };
static const char *const marker_names[N_MARKERS] = {"start", "step", "stop"};

static uint64_t marker_addr[N_MARKERS];
static uint64_t executed;       /* guest instructions since QEMU started */
static int in_inference;
static uint64_t inference_start;
static uint64_t *bounds;        /* executed at each step marker of this inference */
static size_t n_bounds, cap_bounds;
static unsigned long vectors;   /* inferences seen */
static FILE *out;               /* where the lines go (stderr unless out=FILE) */
static int failed;

struct marker_tb {
    uint64_t before;            /* instructions of the block before the marker */
    uint64_t after;             /* the marker's instruction and those following it */
    enum marker kind;
};

static void on_stop(void)
{
    size_t j;
    fprintf(out, "vector %lu total %" PRIu64 " steps", vectors - 1,
            executed - inference_start);
    for (j = 0; j < n_bounds; ++j) {
        const uint64_t from = j == 0 ? inference_start : bounds[j];
        const uint64_t to = j + 1 < n_bounds ? bounds[j + 1] : executed;
        fprintf(out, " %" PRIu64, to - from);
    }
    if (fputs("\n", out) == EOF || fflush(out) != 0) {
        failed = 1;
    }
}

static void on_marker(enum marker kind)
{
    switch (kind) {
    case MARK_START:
        in_inference = 1;
        inference_start = executed;
        n_bounds = 0;
        ++vectors;
        break;
    case MARK_STEP:
        if (!in_inference) {
            break;
        }
        if (n_bounds == cap_bounds) {
            size_t cap = cap_bounds ? 2 * cap_bounds : 1024;
            uint64_t *grown = realloc(bounds, cap * sizeof *grown);
            if (grown == NULL) {
                failed = 1;
                break;
            }
            bounds = grown;
            cap_bounds = cap;
        }
        bounds[n_bounds++] = executed;
        break;
    case MARK_STOP:
        if (in_inference) {
            on_stop();
            in_inference = 0;
        }
        break;
    case N_MARKERS:
        break;
    }
}

static void on_marker_tb_exec(unsigned int vcpu_index, void *userdata)
{
    const struct marker_tb *m = userdata;
    (void)vcpu_index;
    executed += m->before;
    on_marker(m->kind);
    executed += m->after;
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    const size_t n = qemu_plugin_tb_n_insns(tb);
    size_t i;
    int k;
    (void)id;
    for (i = 0; i < n; ++i) {
        const uint64_t vaddr = qemu_plugin_insn_vaddr(qemu_plugin_tb_get_insn(tb, i));
        for (k = 0; k < N_MARKERS; ++k) {
            if (vaddr == marker_addr[k]) {
                /* Leaked if QEMU retranslates the block: a few bytes, a few times. */
                struct marker_tb *m = malloc(sizeof *m);
                if (m == NULL) {
                    failed = 1;
                    return;
                }
                m->before = i;
                m->after = n - i;
                m->kind = (enum marker)k;
                qemu_plugin_register_vcpu_tb_exec_cb(tb, on_marker_tb_exec,
                                                     QEMU_PLUGIN_CB_NO_REGS, m);
                return;
            }
        }
    }
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed, n);
}

static void on_atexit(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    if (out != stderr && fclose(out) != 0) {
        failed = 1;
    }
    out = stderr;
    if (failed) {
        qemu_plugin_outs("qemu_icount_plugin: could not record every count\n");
    }
    free(bounds);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    int seen[N_MARKERS] = {0};
    const char *path = NULL;
    int a, k;
    (void)info;
    for (a = 0; a < argc; ++a) {
        const char *eq = strchr(argv[a], '=');
        int known = 0;
        if (eq == NULL) {
            fprintf(stderr, "qemu_icount_plugin: bad argument '%s' (want key=value)\n",
                    argv[a]);
            return -1;
        }
        for (k = 0; k < N_MARKERS; ++k) {
            const size_t len = strlen(marker_names[k]);
            if ((size_t)(eq - argv[a]) == len && strncmp(argv[a], marker_names[k], len) == 0) {
                char *end;
                marker_addr[k] = strtoull(eq + 1, &end, 0) & ~(uint64_t)1; /* Thumb bit */
                if (*end != '\0' || end == eq + 1) {
                    fprintf(stderr, "qemu_icount_plugin: bad address '%s'\n", argv[a]);
                    return -1;
                }
                seen[k] = known = 1;
            }
        }
        if (!known && strncmp(argv[a], "out=", 4) == 0) {
            path = eq + 1;
            known = 1;
        }
        if (!known) {
            fprintf(stderr, "qemu_icount_plugin: unknown argument '%s'\n", argv[a]);
            return -1;
        }
    }
    for (k = 0; k < N_MARKERS; ++k) {
        if (!seen[k]) {
            fprintf(stderr, "qemu_icount_plugin: missing argument %s=ADDR\n",
                    marker_names[k]);
            return -1;
        }
    }
    out = stderr;
    if (path != NULL) {
        out = fopen(path, "w");
        if (out == NULL) {
            fprintf(stderr, "qemu_icount_plugin: cannot write %s\n", path);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
    qemu_plugin_register_atexit_cb(id, on_atexit, NULL);
    return 0;
}
