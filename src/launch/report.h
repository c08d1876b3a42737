/* report.h — what the sandbox did to one command (docs/report.md): how it
 * ended (the one outcome classification of every front end: `run`, `exec`,
 * serve, mcp), the resources it used, the denials observed, in order and
 * deduplicated with counts, and the layers in force.
 *
 * Denials come from the layers that can tell: the seccomp deny list
 * (answered by a supervising process through SECCOMP_RET_USER_NOTIF,
 * seccomp.h) and the egress proxy's refusals. The table is bounded
 * (SP_MAX_REPORT_DENIALS distinct entries; counts past that add to
 * "dropped"): a program that hits a denial a million times costs a
 * counter, never memory. */
#ifndef SANDPIT_REPORT_H
#define SANDPIT_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "sandpit.h"

enum sp_denial_kind {
    SP_DENIAL_SYSCALL = 0, /* the seccomp layer refused a system call */
    SP_DENIAL_NETWORK,     /* the egress proxy refused a request */
};

struct sp_denial {
    int kind;              /* enum sp_denial_kind */
    char what[256];        /* syscall name, or host as the client asked */
    uint16_t port;         /* network */
    int err;               /* syscall: errno answered; network: HTTP status */
    bool has_arg;          /* syscall: `arg` matters (flags, family, ...) */
    char arg_name[16];
    uint64_t arg;
    char rule[280];        /* what refused it, in words */
    uint64_t count;
    uint64_t first_ms;     /* ms after the start of the command */
};

struct sp_denials {
    struct sp_denial e[SP_MAX_REPORT_DENIALS];
    size_t n;
    uint64_t total;        /* every denial seen */
    uint64_t dropped;      /* denials not kept: the table was full */
    uint64_t t0_us;        /* sp_now_us() at the start */
};

/* Count d (its count ignored) in the table: an equal entry (kind, what,
 * port, arg) gets +1, else a new one at the end while there is room. */
void sp_denials_add(struct sp_denials *t, const struct sp_denial *d);

/* The denials as a JSON array (new reference). */
json_t *sp_denials_json(const struct sp_denials *t);

/* "sandbox: syscall bpf refused (seccomp default deny list)" for entry d,
 * into buf. Returns buf. */
const char *sp_denial_line(const struct sp_denial *d, char *buf, size_t len);

/* From a finished `sandpit run`: how it ended, in the classification of
 * sp_exec_end (rc: sp_run's return value). */
void sp_end_from_run(const sp_stats *st, int rc, uint64_t memory_limit,
                     uint64_t pids_limit, sp_exec_end *e);

/* The outcome object of wsend.h (new reference). */
json_t *sp_end_json(const sp_exec_end *e);

/* The resources object: {"wall_ms", "cpu_user_ms", "cpu_sys_ms",
 * "memory_peak_bytes", "pids_peak", "disk_written_bytes"}, each null when
 * unknown, and "unknown": {field: why} for those. `memory_source` names
 * where the peak came from. */
json_t *sp_report_resources(const sp_stats *st, const char *memory_source,
                            const char *pids_why, const char *disk_why);

/* Why file refusals (Landlock, read-only mounts) are not observed on this
 * host, into buf: the kernel's Landlock ABI (`abi`, 0: none) decides
 * whether audit records exist at all. Returns buf. */
const char *sp_report_file_why(int abi, char *buf, size_t len);

/* A text block's first lines, one per denial kind and outcome, e.g.
 * "sandbox: syscall bpf refused (seccomp default deny list)\n" — from a
 * report object (as sp_run and the workspace exec make). Caller frees;
 * "" when there is nothing to say; NULL on allocation failure. */
char *sp_report_summary(const json_t *report);

#endif
