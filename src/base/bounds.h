/* bounds.h — every bound sandpit enforces, named in one place.
 * docs/limits.md lists them for users; keep the two in step. */
#ifndef SANDPIT_BOUNDS_H
#define SANDPIT_BOUNDS_H

/* Most arguments of a command (bubblewrap caps at 9000 for the same reason:
 * an unbounded argv lets a client make us allocate without end). */
#define SP_MAX_ARGS 8192
/* Longest path we accept in a policy (PATH_MAX). */
#define SP_MAX_PATH 4096
/* Most mount rules (defaults + user) in one policy. */
#define SP_MAX_MOUNTS 256
/* Most environment entries set or passed through. */
#define SP_MAX_ENV 1024
/* Longest single environment entry. */
#define SP_MAX_ENV_LEN 131072
/* Most fds passed with --pass-fd. */
#define SP_MAX_PASS_FDS 64
/* Largest policy file we read. */
#define SP_MAX_POLICY_FILE (1024 * 1024)
/* Most TCP ports in a Landlock net allow list. */
#define SP_MAX_PORTS 64
/* Most TCP ports a policy names in tcp_ports (--tcp-ports); with the
 * published ports and the proxy's they stay within SP_MAX_PORTS. */
#define SP_MAX_TCP_PORTS 32
/* Most published ports (create --publish) of one workspace. */
#define SP_MAX_PUBLISH 16
/* Longest timeout (seconds): 30 days. */
#define SP_MAX_TIMEOUT (30.0 * 24 * 3600)
/* Smallest memory limit we accept: below this the kernel OOM-kills a
 * dynamic loader before the command starts, which only confuses. */
#define SP_MIN_MEMORY (4ull * 1024 * 1024)
/* Default disk limit (limits.disk, docs/disk.md): what a workspace may write
 * in all (its file-system image) and the most a tmpfs of `run` may hold. */
#define SP_DISK_DEFAULT (10ull * 1024 * 1024 * 1024)
/* Smallest disk limit: an ext4 image with its journal needs a few MiB. */
#define SP_DISK_MIN (16ull * 1024 * 1024)
/* Largest disk limit (64 TiB; ext4 with 4 KiB blocks and 64-bit block
 * numbers holds far more, but nothing here needs it). */
#define SP_DISK_MAX (64ull * 1024 * 1024 * 1024 * 1024)
/* Fewest and most inodes (limits.inodes; 0 = the file system's default of
 * one per 16 KiB). */
#define SP_INODES_MIN 64
#define SP_INODES_MAX 4294967295ull

/* ---- workspaces: the control socket and the agent's socketpair ---------- */
/* Longest wire message (one JSON object per line), newline included. */
#define SP_PROTO_MAX_LINE (1024 * 1024)
/* Largest binary frame after a message (bulk bytes: a file read or
 * written through the file API, a patch), and the default and largest
 * bytes of one file read or write (docs/files.md). */
#define SP_PROTO_MAX_FRAME (64 * 1024 * 1024)
/* Most fds one message may carry (an exec's stdin, stdout, stderr). */
#define SP_PROTO_MAX_FDS 3
/* Longest string request id and method name. */
#define SP_PROTO_MAX_ID 128
#define SP_PROTO_MAX_METHOD 64
/* Most clients connected to one supervisor at once. */
#define SP_WS_MAX_CLIENTS 128
/* Most requests one client may have in flight (execs waiting for status). */
#define SP_WS_MAX_PENDING 64
/* Most execs running at once in one workspace. */
#define SP_WS_MAX_EXECS 1024
/* Most bytes of replies queued for one slow client before it is dropped. */
#define SP_WS_MAX_OUTBUF (1024 * 1024)
/* Longest workspace name: [a-z0-9][a-z0-9_.-]{0,62}. */
#define SP_WS_NAME_MAX 63
/* Largest state.json we read back. */
#define SP_WS_MAX_STATE_FILE (4 * 1024 * 1024)
/* Seconds from SIGTERM to SIGKILL when a client goes away mid-exec. */
#define SP_WS_KILL_GRACE 2.0
/* Seconds a create/start waits for the agent to report ready. */
#define SP_WS_START_TIMEOUT 60

/* The sandbox's user namespace for a root caller: host ids
 * SP_ROOT_ID_BASE .. +SP_ID_RANGE-1 are its 0 .. 65535 (docs/security.md),
 * unless /etc/subuid and /etc/subgid give the user "sandpit" a range of at
 * least SP_ID_RANGE ids. 0x7FFC0000 lies above systemd-nspawn's
 * --private-users=pick pool (0x00080000-0x6FFFFFFF) and below systemd's
 * foreign-UID range (0x7FFE0000). */
#define SP_ROOT_ID_BASE 0x7FFC0000u
/* Ids mapped inside a sandbox with a range (root callers; users with a
 * /etc/subuid entry: at most this many). */
#define SP_ID_RANGE 65536u
/* Longest /etc/subuid or /etc/subgid we read. */
#define SP_MAX_SUBID_FILE (1024 * 1024)

/* Most distinct denials one command's report keeps (docs/report.md); later
 * ones are counted in "dropped", repeats of a kept one in its count. */
#define SP_MAX_REPORT_DENIALS 64
/* Most system call notifications the supervising process answers in one
 * turn of its loop before it looks at its other fds again. */
#define SP_SECCOMP_NOTIFY_BATCH 256

/* A workspace's denial log (docs/report.md): the two files of its ring on
 * disk hold at most this many bytes together; longest line; most entries
 * one read returns. */
#define SP_AUDIT_LOG_BYTES (1024 * 1024)
#define SP_AUDIT_LINE_MAX 4096
#define SP_AUDIT_READ_MAX 1000

/* Distinct (session, system call, argument) denials a workspace agent's
 * seccomp watch holds until their exec ends (docs/report.md). */
#define SP_SECCOMP_BG_ENTRIES 256

/* ---- the OCI runtime (sandpit-runc, docs/kubernetes.md) ---------------- */
/* Largest config.json and process.json read. */
#define SP_OCI_MAX_CONFIG (4 * 1024 * 1024)
/* Longest container id: [A-Za-z0-9][A-Za-z0-9_.+-]*. */
#define SP_OCI_ID_MAX 128
/* Most lines of a uid or gid map (the kernel takes 340). */
#define SP_OCI_MAX_IDMAPS 64
/* Most additional gids, rlimits, sysctls, mounts, masked plus read-only
 * paths and hooks per stage of one spec. */
#define SP_OCI_MAX_GIDS 64
#define SP_OCI_MAX_RLIMITS 16
#define SP_OCI_MAX_SYSCTL 64
#define SP_OCI_MAX_MOUNTS 128
#define SP_OCI_MAX_PATHS 128
#define SP_OCI_MAX_HOOKS 16
/* Without uidMappings in the spec, the container's ids 0..65535 are host
 * ids SP_OCI_DEFAULT_ID_BASE.. (container root is never host root). */
#define SP_OCI_DEFAULT_ID_BASE 1000000000u
#define SP_OCI_DEFAULT_ID_COUNT 65536u
/* Seconds a hook may run before it is killed and the step fails. */
#define SP_OCI_HOOK_TIMEOUT 30

/* Warm pools (docs/pool.md). Most workspaces one pool keeps ready. */
#define SP_POOL_MAX 64
/* Bytes of a pooled workspace's log read back when it is handed out (the
 * lines naming its pool slot are dropped). */
#define SP_POOL_LOG_KEEP (64 * 1024)
/* The refill pace: after each pooled create the keeper rests at least as
 * long as the create took, and never less than this (ms), so it uses at
 * most half of one CPU however many are missing. */
#define SP_POOL_REFILL_GAP_MS 5
/* ms the keeper waits after a take before it refills, so that the new
 * holder's first requests do not meet a create on the other core. */
#define SP_POOL_REFILL_DELAY_MS 20
/* Seconds a `run --pool` pool keeper lives without a take. */
#define SP_POOL_RUN_IDLE 60
/* Workspaces a `run --pool` pool keeps ready. */
#define SP_POOL_RUN_SIZE 2

#endif
