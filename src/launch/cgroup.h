/* cgroup.h — one cgroup per sandbox, for memory, pids and CPU limits and
 * the peak/OOM report, on cgroup v2 (unified, delegated) and on the v1 or
 * hybrid layout. docs/limits.md describes what is written and reported.
 *
 * Lifecycle (host side, in the parent of the sandbox):
 *   sp_cgroup_create() before the sandbox's first process runs ->
 *   either clone3(CLONE_INTO_CGROUP, sp_cgroup_dirfd()) on v2, or
 *   sp_cgroup_attach(child) before the child execs (v1, or no clone3) ->
 *   ... the sandbox runs ... -> sp_cgroup_read_stats() ->
 *   sp_cgroup_destroy() (kills what is left and removes the directories).
 *
 * The sandbox cgroup is created below the caller's own cgroup in each
 * hierarchy (/proc/self/cgroup), so it works wherever the caller has been
 * delegated a subtree. Not thread-safe per object; distinct objects are
 * independent. */
#ifndef SANDPIT_CGROUP_H
#define SANDPIT_CGROUP_H

#include <stddef.h>
#include <sys/types.h>

#include "error.h"
#include "policy.h"
#include "sandpit.h"

struct sp_cgroup; /* opaque */

/* Create the sandbox cgroup and write the limits of `lim` (memory bytes,
 * pids, cpus; 0 = no limit). `name` is the directory name, or NULL for
 * "sandpit-<pid>-<counter>"; it must be a single path component of
 * [A-Za-z0-9._-], at most 64 bytes. Controllers: those a limit needs, plus
 * memory and pids whenever available (peak/OOM report, fork bombs).
 *
 * Returns 0 and sets *ret, or a negative errno with err filled and nothing
 * left behind:
 *   -EACCES/-EPERM  a hierarchy is not writable by this uid (no delegation);
 *                   the message names it and says limits are not enforced
 *   -EOPNOTSUPP     a controller that a limit needs is not available
 *   -EBUSY          (v2) the caller's cgroup holds other processes, so it
 *                   cannot hand controllers to a child
 *   -EEXIST         a cgroup of that name exists already
 *   -EINVAL         a bad name
 * On v2, when the caller's cgroup holds only the calling process and
 * controllers must be enabled for children, the caller is moved into a
 * leaf "sandpit-supervisor" below it first (the no-internal-processes rule
 * allows nothing else); later calls create beside that leaf. */
int sp_cgroup_create(const struct sp_limits *lim, const char *name,
                     struct sp_cgroup **ret, sp_error *err);

/* v2 only: an O_DIRECTORY|O_CLOEXEC fd of the new cgroup, for
 * clone3(CLONE_INTO_CGROUP); owned by cg. -1 on v1. */
int sp_cgroup_dirfd(const struct sp_cgroup *cg);

/* Write the limits of `lim` (0 = leave that one as it is) into an existing
 * cgroup, as sp_cgroup_create does: the warm pool narrows a pooled
 * workspace this way (docs/pool.md). -EOPNOTSUPP when cg is NULL or lacks
 * a controller a limit needs; nothing is written then. */
int sp_cgroup_set_limits(struct sp_cgroup *cg, const struct sp_limits *lim,
                         sp_error *err);

/* The directories of the cgroup (one per v1 hierarchy, one on v2), at
 * most max of them, into out (owned by cg). Returns how many. */
size_t sp_cgroup_paths(const struct sp_cgroup *cg, const char **out,
                       size_t max);

/* Move pid (a whole process) into the cgroup in every hierarchy, by writing
 * it to cgroup.procs. Returns 0 or a negative errno with err filled. */
int sp_cgroup_attach(struct sp_cgroup *cg, pid_t pid, sp_error *err);

/* SIGKILL every process in the cgroup and wait (up to about two seconds)
 * until cgroup.procs is empty. v2 uses cgroup.kill where the kernel has it;
 * otherwise each listed pid is opened as a pidfd, checked to still be in
 * this cgroup, and killed through the pidfd, so a recycled pid never sends
 * a signal to a process outside. Returns 0 when empty, -EBUSY when
 * processes remain after the bound, or another negative errno. */
int sp_cgroup_kill_all(struct sp_cgroup *cg);

/* Fill what the cgroup knows into st, leaving other fields alone:
 * memory_peak/memory_known (v1 memory.max_usage_in_bytes, v2 memory.peak),
 * pids_peak/pids_known (pids.peak where the kernel has it, else unknown),
 * oom_killed (an "oom_kill N" > 0 in v1 memory.oom_control or v2
 * memory.events). Returns 0, or a negative errno when a file that exists
 * could not be read (the fields read so far are filled). */
int sp_cgroup_read_stats(struct sp_cgroup *cg, sp_stats *st);

/* The cgroup's event counters: OOM kills (v2 memory.events, v1
 * memory.oom_control "oom_kill") and forks refused by the pids limit
 * (pids.events "max"); 0 where the controller or the file is missing.
 * Read before and after an exec, they say what ended it. */
int sp_cgroup_event_counts(struct sp_cgroup *cg, uint64_t *oom_kills,
                           uint64_t *pids_max);

/* 1 or 2. */
int sp_cgroup_version(const struct sp_cgroup *cg);

/* What is enforced, e.g. "cgroup v1: memory, pids, cpu". Owned by cg. */
const char *sp_cgroup_describe(const struct sp_cgroup *cg);

/* The directory of the cgroup in its first hierarchy (v2: the only one),
 * for messages and tests. Owned by cg. */
const char *sp_cgroup_path(const struct sp_cgroup *cg);

/* Kill what is left, remove every directory (retrying briefly while the
 * kernel still reports EBUSY), close and free. Accepts NULL. */
void sp_cgroup_destroy(struct sp_cgroup *cg);

/* Remove, beside cg in each hierarchy, the cgroups that sandpits killed
 * with SIGKILL left behind (no one was there to remove them): those named
 * "sandpit-PID-N" whose PID is gone, that are empty (the kernel refuses
 * others) and over a minute old. Best effort, no errors; called after a
 * sandbox is started, off its critical path. */
void sp_cgroup_sweep(const struct sp_cgroup *cg);

/* Probe without creating anything: the layout, and which of memory, pids
 * and cpu this uid could use. Writes a one-line description into desc
 * (always NUL-terminated when desc_len > 0). Returns 1 when memory, pids
 * and cpu are all usable, 0 when some or all are not (desc says which and
 * why), or a negative errno when the probe itself failed. */
int sp_cgroup_probe(char *desc, size_t desc_len);

#endif
