/* ids.h — who the sandbox is on the host: the user namespace's uid/gid
 * maps (docs/security.md).
 *   root caller: a range of its own, 0..65535 inside = SP_ROOT_ID_BASE..
 *     on the host (or the "sandpit" entry of /etc/subuid and /etc/subgid),
 *     written directly; setgroups stays allowed.
 *   ordinary user with an /etc/subuid and /etc/subgid entry and the
 *     system's newuidmap/newgidmap: the caller is the sandbox's uid, its
 *     subordinate ids the others (as rootless engines do).
 *   otherwise: one id, the caller's, setgroups denied (said loudly). */
#ifndef SANDPIT_IDS_H
#define SANDPIT_IDS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

enum sp_ids_kind {
    SP_IDS_SINGLE = 0, /* "<uid> <caller> 1" */
    SP_IDS_ROOT,       /* root caller: a range of its own */
    SP_IDS_SUB,        /* ordinary user: caller + /etc/subuid range */
};

/* A subordinate range: host ids start .. start+count-1. */
struct sp_idrange {
    uint32_t start, count;
};

struct sp_ids {
    int kind;                /* enum sp_ids_kind */
    struct sp_idrange uid, gid; /* ROOT: the range (count SP_ID_RANGE);
                                   SUB: the subordinate ranges */
    char why[256];           /* SINGLE for a user: why no range */
};

/* Decide the maps for the calling process (geteuid()). Never fails: a
 * user without a usable range gets SP_IDS_SINGLE with ids->why set. */
void sp_ids_plan(struct sp_ids *ids);

/* Look up NAME's (or UID's) first range in an /etc/subuid-style file.
 * Returns 0 and the range, or -ENOENT/-errno. Exposed for doctor. */
int sp_ids_subrange(const char *file, const char *name, uid_t uid,
                    struct sp_idrange *ret);

/* The system's newuidmap/newgidmap (NULL when not installed). */
const char *sp_ids_helper(bool gid);

/* Write pid's maps: inside uid/gid (the policy's) is the caller for
 * SINGLE and SUB; ROOT maps 0..SP_ID_RANGE-1 as a whole. On a failure of
 * newuidmap/newgidmap the single-id map is written instead and *fell_back
 * set (with the reason in err's message left for a warning). */
int sp_ids_write(pid_t pid, const struct sp_ids *ids, uint32_t uid,
                 uint32_t gid, bool *fell_back, sp_error *err);

/* Root callers with --uid/--gid other than 0: a user namespace to ID-map
 * the workspace through in which the caller's files (host 0) are the
 * sandbox's user (uid/gid) and that user's are host root's, as for an
 * ordinary user, whose own id is the sandbox's user. The range itself
 * stays ids->uid/gid. Returns an fd of the namespace or -errno. */
int sp_ids_swapped_userns(const struct sp_ids *ids, uint32_t uid, uint32_t gid);

/* sp_rm_rf_at (state.h), and where that fails with EACCES/EPERM for an
 * ordinary user with a range: again in a user namespace with the same
 * maps, where the caller may remove what its sandbox chowned to its
 * subordinate ids (docs/security.md). Returns 0 or -errno. */
int sp_ids_rm_rf_at(int dirfd, const char *name);

/* Text for logs and doctor: "host uids 2147221504-2147287039 ..." */
void sp_ids_describe(const struct sp_ids *ids, char *buf, size_t len);

#endif
