/* oci.h — sandpit as an OCI runtime (sandpit-runc, `sandpit oci ...`): a
 * runc-compatible command line that containerd and CRI-O drive, mapped
 * onto the launch path (launch.h). docs/kubernetes.md. */
#ifndef SANDPIT_OCI_H
#define SANDPIT_OCI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "launch.h"
#include "seccomp.h"

/* The runc command line: argv[0] is the program, argv[1] the first global
 * flag or the command. Returns the exit status. */
int sp_oci_main(int argc, char **argv);

/* ---- internal: config.json (oci_spec.c) ---------------------------------- */

enum oci_hook_kind {
    OCI_HOOK_PRESTART,
    OCI_HOOK_CREATE_RUNTIME,
    OCI_HOOK_POSTSTART,
    OCI_HOOK_POSTSTOP,
    OCI_HOOK_N,
};

struct oci_hook {
    const char *path;
    char **args;          /* NULL-ended (borrowed strings) */
    char **env;
    int timeout;          /* seconds */
};

struct oci_resources {
    int64_t mem_limit, mem_swap, mem_reservation; /* -1: unset */
    int64_t pids_limit;                           /* 0: unset */
    uint64_t cpu_shares, cpu_period;              /* 0: unset */
    int64_t cpu_quota;                            /* 0: unset */
    const char *cpuset_cpus, *cpuset_mems;
    uint64_t blkio_weight;
    const json_t *devices;                        /* borrowed */
};

/* Layers of sandpit's own, on by default; the annotation
 * run.sandpit.layers.off names those a pod turns off. */
enum {
    OCI_LAYER_USERNS = 1 << 0,
    OCI_LAYER_SECCOMP = 1 << 1,
    OCI_LAYER_LANDLOCK = 1 << 2,
    OCI_LAYER_MASK = 1 << 3,
    OCI_LAYER_NNP = 1 << 4,
};
#define OCI_LAYERS_OFF_ANNOTATION "run.sandpit.layers.off"

struct oci_spec {
    json_t *json;
    char *bundle;                 /* absolute */
    char *rootfs;                 /* absolute */
    char **argv, **envp;          /* the process's (pointers into json) */
    struct sp_oci_launch L;
    struct sp_mount_plan plan;
    char *cgroups_path;           /* "/a/b" below each hierarchy's root */
    struct oci_resources res;
    struct oci_hook hooks[OCI_HOOK_N][SP_OCI_MAX_HOOKS];
    size_t n_hooks[OCI_HOOK_N];
    char **sysctl;                /* "k=v", NULL-ended */
    struct sp_seccomp_prog seccomp;
    bool has_seccomp;
    unsigned layers_off;
    bool default_userns;          /* the user namespace is sandpit's */
    const json_t *annotations;
    char notes[1024];             /* what was mapped loosely, for the log */
};

/* Load bundle/config.json. systemd_cgroup: cgroupsPath is
 * "slice:prefix:name". Returns 0 or < 0 with err naming the field. */
int oci_spec_load(const char *bundle, const char *id, bool systemd_cgroup,
                  struct oci_spec *s, sp_error *err);
/* A process object (config's or exec's process.json) into pr; argv/env
 * pointer arrays are allocated into *argv, *envp (free them). */
int oci_process_parse(const json_t *proc, const char *where, unsigned layers_off,
                      struct sp_oci_proc *pr, char ***argv, char ***envp,
                      sp_error *err);
void oci_spec_free(struct oci_spec *s);
/* create: make the mount points the rootfs lacks (host side). */
int oci_spec_premount(struct oci_spec *s, sp_error *err);
int oci_signal_parse(const char *s);

/* ---- internal: cgroups (oci_cgroup.c) ------------------------------------ */

#define OCI_CG_MAX 12
struct oci_cg {
    bool v2;
    size_t n;
    char *dir[OCI_CG_MAX];        /* absolute directories */
    char ctrl[OCI_CG_MAX][16];    /* v1: the controller; v2: "" */
    int procs[OCI_CG_MAX];        /* cgroup.procs fds (open/create) */
};

int oci_cg_create(const char *path, const struct oci_resources *res,
                  struct oci_cg *cg, sp_error *err);
/* From the directories recorded in the state. */
int oci_cg_from_json(const json_t *dirs, struct oci_cg *cg);
int oci_cg_open_procs(struct oci_cg *cg, sp_error *err);
json_t *oci_cg_to_json(const struct oci_cg *cg);
int oci_cg_update(struct oci_cg *cg, const struct oci_resources *res, sp_error *err);
int oci_cg_freeze(struct oci_cg *cg, bool freeze, sp_error *err);
bool oci_cg_frozen(const struct oci_cg *cg);
int oci_cg_pids(const struct oci_cg *cg, json_t *out);
void oci_cg_kill(struct oci_cg *cg, int sig);
json_t *oci_cg_stats(const struct oci_cg *cg);
void oci_cg_destroy(struct oci_cg *cg);
/* Move the calling process back to each hierarchy's root. */
void oci_cg_leave(struct oci_cg *cg);
void oci_cg_free(struct oci_cg *cg);
int oci_resources_parse(const json_t *r, struct oci_resources *res, sp_error *err);

#endif
