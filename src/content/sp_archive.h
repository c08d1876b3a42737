/* sp_archive.h — safe import and export of archives (sandpit import/export).
 * Unpacks hostile tar/zip archives into a directory given as an fd without
 * ever writing outside it, and packs a directory into a tar stream.
 * docs/archive.md states the rules, limits and guarantees.
 * (Named sp_archive.h, not archive.h: with -Isrc/lib an "archive.h" here
 * would hide libarchive's <archive.h> from archive.c and its users.) */
#ifndef SANDPIT_SP_ARCHIVE_H
#define SANDPIT_SP_ARCHIVE_H

#include <stdint.h>

#include "sandpit.h"

/* Default limits (a field of 0 in sp_archive_limits means this default). */
#define SP_ARCHIVE_DEF_MAX_TOTAL_BYTES (1ull << 30) /* 1 GiB of file data */
#define SP_ARCHIVE_DEF_MAX_ENTRIES 100000ull        /* headers read */
#define SP_ARCHIVE_DEF_MAX_ENTRY_BYTES (1ull << 30) /* one file's size */
#define SP_ARCHIVE_DEF_MAX_PATH_LEN 4096u           /* bytes of a name */
#define SP_ARCHIVE_DEF_MAX_DEPTH 64u                /* components of a name */

/* How many skipped entries sp_archive_stats remembers by name, and how much
 * of each name and reason it keeps (longer names are cut, ending "..."). */
#define SP_ARCHIVE_MAX_SKIP_LIST 16
#define SP_ARCHIVE_SKIP_PATH_LEN 256
#define SP_ARCHIVE_SKIP_REASON_LEN 64

struct sp_archive_limits {
    uint64_t max_total_bytes; /* sum of the sizes of all regular files */
    uint64_t max_entries;     /* entries (headers) of any kind */
    uint64_t max_entry_bytes; /* size of one regular file */
    uint32_t max_path_len;    /* bytes in an entry name or symlink target */
    uint32_t max_depth;       /* path components in an entry name */
};

struct sp_archive_skip {
    char path[SP_ARCHIVE_SKIP_PATH_LEN];     /* control bytes shown as \xNN */
    char reason[SP_ARCHIVE_SKIP_REASON_LEN]; /* e.g. "device node" */
};

struct sp_archive_stats {
    uint64_t entries; /* entries processed (made, linked or skipped) */
    uint64_t bytes;   /* bytes of regular-file content made (apparent size) */
    uint64_t skipped; /* entries deliberately not made */
    uint32_t nskips;  /* how many of the skipped are listed below */
    struct sp_archive_skip skips[SP_ARCHIVE_MAX_SKIP_LIST];
};

/* sp_archive_extract flags. */
enum {
    /* Let an entry replace an existing entry of another kind: a directory
     * (only when empty) by a non-directory, a non-directory (a symlink
     * included: it is removed, never followed) by a directory, also for
     * the parents of an entry. Without it such an entry is refused. */
    SP_ARCHIVE_OVERWRITE = 1u << 0,
    /* Refuse an entry whose name already exists (other than a directory
     * entry naming an existing directory). Without it a non-directory
     * replaces an existing non-directory atomically, as tar does. */
    SP_ARCHIVE_NO_CLOBBER = 1u << 1,
    /* Clamp every mode by the process's umask, as open() and mkdir() would
     * (sandpit cp out of a workspace: a world-writable file from the
     * sandbox stays so only if the caller's umask lets it). Reads the
     * umask with umask(2) twice: not for a multi-threaded caller that
     * changes it concurrently. */
    SP_ARCHIVE_UMASK = 1u << 2,
};

/* sp_archive_create formats. */
enum {
    SP_ARCHIVE_TAR = 1,    /* POSIX pax (restricted) tar */
    SP_ARCHIVE_TAR_GZ = 2, /* the same, gzip-compressed */
};

/* Unpack the archive read from in_fd (tar, optionally gzip/bzip2/xz/zstd
 * compressed, or zip; detected from the data) into the directory dest_dirfd.
 * Every name is resolved beneath dest_dirfd without following any symlink or
 * magic link (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
 * RESOLVE_NO_MAGICLINKS), so nothing is ever created, changed or linked
 * outside it — not through "..", an absolute name, a symlink that was there
 * before or one made by an earlier entry, nor a hard link.
 * Refused (extraction stops, err names the entry and the reason): absolute
 * names, "..", control bytes in a name, names over the limits, hard links to
 * anything but a regular file made earlier by this archive, a file over
 * max_entry_bytes or pushing the total past max_total_bytes, more than
 * max_entries entries, a kind change of an existing entry (without
 * SP_ARCHIVE_OVERWRITE), a damaged or unreadable archive.
 * Skipped (counted in stats): device nodes, fifos, sockets, unknown kinds.
 * Modes keep only the 0777 bits, never set-uid, set-gid or sticky
 * (directories also get u+rwx); ownership,
 * ACLs and xattrs are not restored. Regular files are written under a
 * temporary name and renamed into place once complete.
 * Not transactional: on failure the entries before the failing one stay in
 * place (each complete), nothing of the failing one remains.
 * lim NULL or a 0 field: the SP_ARCHIVE_DEF_* default. stats (optional) is
 * filled as far as extraction got, on success and on failure.
 * Returns 0, or < 0 with err set. */
SP_EXPORT int sp_archive_extract(int in_fd, int dest_dirfd,
                                 const struct sp_archive_limits *lim,
                                 unsigned flags, struct sp_archive_stats *stats,
                                 sp_error *err);

/* For image layers (image.c, docs/images.md), not exported: as
 * sp_archive_extract into dest_dirfd (the layer's staging directory), but a
 * hard link may also name a regular file of lower_dirfd (the tree the
 * layers below flattened into), as container runtimes resolve layer hard
 * links against the union of the layers below. The target is looked up one
 * component at a time in this layer's entries so far over lower_dirfd,
 * never following a symlink in either, never leaving either: an entry of
 * this layer hides the lower one of the same name (a directory merges with
 * it), and so does a ".wh.NAME" whiteout or a ".wh..wh..opq" opaque marker
 * of this layer extracted before the link. Refused (the reason names the
 * target): a target missing from both or hidden, one reached through a
 * symlink or a non-directory, one that is a directory, a symlink or
 * anything but a regular file. dest_dirfd and lower_dirfd must be on one
 * file system (the link is made with linkat). */
int sp_archive_extract_layer(int in_fd, int dest_dirfd, int lower_dirfd,
                             const struct sp_archive_limits *lim,
                             unsigned flags, struct sp_archive_stats *stats,
                             sp_error *err);

/* Pack the tree under src_dirfd (or only src_dirfd/subpath, a relative
 * path resolved beneath src_dirfd without following symlinks; NULL = all)
 * into out_fd as format (SP_ARCHIVE_TAR or SP_ARCHIVE_TAR_GZ). Names are
 * stored relative to src_dirfd ("subpath/..."), in sorted (strcmp) order;
 * symlinks are stored as symlinks and never followed; hard-linked files are
 * stored as separate copies; sockets, fifos, devices and names with control
 * bytes are skipped (counted in stats). Modes keep the 0777 bits; owner is
 * stored as 0:0 without names. Exceeding a limit is an error (no truncated
 * archive is presented as complete). Returns 0, or < 0 with err set; on
 * failure out_fd may hold a partial archive. */
SP_EXPORT int sp_archive_create(int src_dirfd, const char *subpath, int out_fd,
                                int format, const struct sp_archive_limits *lim,
                                struct sp_archive_stats *stats, sp_error *err);

#endif
