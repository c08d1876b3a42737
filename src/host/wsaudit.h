/* wsaudit.h — a workspace's denial log (docs/report.md): what the sandbox
 * refused its commands, one JSON object a line in workspaces/<name>/
 * audit.jsonl, kept across stop and start, bounded as a ring on disk: when
 * the file passes SP_AUDIT_LOG_BYTES / 2 it becomes audit.1.jsonl (the one
 * before is dropped) and a new one starts. Entries carry a sequence number
 * that goes on across files and restarts. Written by the supervisor only;
 * read by `sandpit audit`, serve and mcp. */
#ifndef SANDPIT_WSAUDIT_H
#define SANDPIT_WSAUDIT_H

#include <jansson.h>
#include <stdint.h>

#include "sandpit.h"

struct sp_audit {
    int wsfd;          /* not owned */
    uint64_t last_seq; /* the last entry written */
};

/* Find the last sequence number in wsfd's log (0: empty). Never fails:
 * an unreadable log starts again from 0. */
void sp_audit_open(struct sp_audit *a, int wsfd);

/* Append entry (a JSON object; "seq" and "time_ms" are set here). 0 or
 * -errno (the log is best effort: the caller goes on). */
int sp_audit_append(struct sp_audit *a, json_t *entry);

/* Entries with seq > after (at most max, oldest first) of workspace
 * `name`: {"entries": [...], "last": SEQ, "first_kept": SEQ}. NULL with err
 * filled (SP_ERR_USAGE: no such workspace). */
json_t *sp_ws_audit_read(const char *name, uint64_t after, size_t max,
                         sp_error *err);

#endif
