/* files.h — the file API of a workspace: operations the agent performs
 * inside the sandbox on behalf of clients (docs/files.md).
 *
 * Every path is resolved by the agent, inside the sandbox's own mount
 * namespace and Landlock domain, from an fd of the workspace directory
 * (/workspace inside) with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS):
 * "..", absolute symlinks, symlinks that climb out and /proc magic links
 * never reach anything outside the workspace. Operations that change
 * something also refuse every symlink on the way to the parent directory
 * (RESOLVE_NO_SYMLINKS) and never follow one in the last component.
 *
 * Methods (proto.h; client -> supervisor -> agent, forwarded as they are
 * with a fresh id; "frame" = raw bytes after the line):
 *   file.stat    {path}                     -> {path,type,size,mode,mtime[,target]}
 *   file.list    {path,recursive,start}     -> {entries:[..],next:N|null}
 *   file.read    {path,offset,length}       -> {size,offset,length} + frame
 *   file.write   {path,mode,parents} + frame-> {size}
 *   file.mkdir   {path,mode,parents}        -> {}
 *   file.remove  {path,recursive}           -> {}
 *   file.rename  {from,to,noreplace}        -> {}
 *   file.glob    {path,pattern,max?,dirs?}  -> {paths:[stat..],truncated}
 *   file.search  {path,pattern,glob?,literal?,ignore_case?,max?}
 *                -> {matches:[{path,line,text,cut}],truncated,
 *                    files_searched,files_skipped}
 *   patch.apply  {strip,dry_run} + frame    -> the report (patch.h) with
 *                "ok": false when a hunk or file did not apply
 *   archive.import {dest} + 1 fd (a pipe the archive is read from)
 *   archive.export {path,gzip} + 1 fd (a pipe the tar is written to)
 *                                           -> {entries,bytes,skipped}
 * Archives stream through a pipe passed with SCM_RIGHTS (their size is
 * not bounded by a frame); the agent runs each in a child process so it
 * keeps serving while the client reads or writes. */
#ifndef SANDPIT_FILES_H
#define SANDPIT_FILES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "bounds.h"

/* Default and largest bytes one file.read or file.write moves. */
#define SP_FILE_MAX_IO SP_PROTO_MAX_FRAME
/* Entries in one page of a listing; the reply's "next" asks for the rest. */
#define SP_FILE_LIST_PAGE 10000
/* Most entries one listing walks (a recursive listing of a huge tree is
 * cut here with an error rather than held in memory). */
#define SP_FILE_MAX_WALK 1000000
/* Deepest directory a recursive listing descends. */
#define SP_FILE_MAX_DEPTH 256
/* file.glob and file.search: default and most results (paths or
 * matching lines) of one call; the longest pattern; files bigger than
 * SP_FILE_SEARCH_FILE_MAX are skipped (counted), and one search reads at
 * most SP_FILE_SEARCH_BYTES_MAX in all ("truncated" past it); a matching
 * line is cut to SP_FILE_SEARCH_LINE_MAX bytes ("cut": true). */
#define SP_FILE_SEARCH_DEFAULT 100
#define SP_FILE_SEARCH_MAX 1000
#define SP_FILE_PATTERN_MAX 1024
#define SP_FILE_SEARCH_FILE_MAX (4 * 1024 * 1024)
#define SP_FILE_SEARCH_BYTES_MAX (256ull * 1024 * 1024)
#define SP_FILE_SEARCH_LINE_MAX 300
/* Archive imports and exports running at once in one workspace. */
#define SP_FILE_MAX_ARCHIVE_JOBS 16
/* Name prefixes of the agent's temporary files and directories in the
 * workspace, so a leftover of a crash is recognizable. */
#define SP_FILE_TEMP_PREFIX ".sp-write-"
#define SP_FILE_STAGING_PREFIX ".sp-import-"

/* Is method one of the file API's (forwarded to the agent)? How many fds
 * it takes (0 or 1). */
bool sp_files_method(const char *method, int *ret_n_fds);

/* ---- the agent side (agent_files.c) ------------------------------------ */

/* Serve one file API request. rootfd: the workspace directory; frame: the
 * request's frame (may be NULL); fd: its passed fd or -1 (taken over).
 * The reply is sent on sock (blocking), now or, for archives, when the
 * child doing the work is reaped (sp_agent_files_reaped). */
void sp_agent_files_handle(int sock, int rootfd, json_int_t id,
                           const char *method, json_t *params,
                           const char *frame, size_t frame_len, int fd);
/* A child ended: if it was an archive job, send its reply and return
 * true. */
bool sp_agent_files_reaped(int sock, pid_t pid, int status);

#endif
