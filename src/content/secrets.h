/* secrets.h — a workspace's secrets (docs/secrets.md): values given at
 * create (or start) time, held only in the memory of the supervisor and
 * the agent (never in the state directory, never in an argv or environ),
 * written into a read-only tmpfs at /run/secrets inside, and redacted
 * ("[REDACTED:NAME]", redact.h) from every byte that leaves the workspace
 * through sandpit: exec output (relayed through pipes by the agent when
 * the workspace has secrets), shell output and service logs (redacted as
 * they enter the agent's rings) and file reads through the API.
 *
 * The set is built once (sp_secrets_new) and then only read; a forked or
 * cloned child (the agent, an exec's relay) sees the same memory. */
#ifndef SANDPIT_SECRETS_H
#define SANDPIT_SECRETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "redact.h"
#include "sandpit.h"

/* Names: [A-Za-z_][A-Za-z0-9_]{0,63} (usable as an environment name). */
#define SP_SECRET_NAME_MAX 64
/* Values: 4 bytes (shorter ones are refused: redacting them would mangle
 * common output and tell which few bytes the secret is) to 64 KiB. */
#define SP_SECRET_MIN_LEN SP_REDACT_MIN_SECRET
#define SP_SECRET_MAX_LEN (64 * 1024)
/* Secrets per workspace. */
#define SP_MAX_SECRETS 32
/* Where they appear inside. */
#define SP_SECRETS_DIR "/run/secrets"
/* The names (never the values) a workspace was created with, in its
 * state directory: `start` needs each again. */
#define SP_SECRETS_NAMES_FILE "secrets.names"
/* Seconds an exec's status waits, once its command has exited, for the
 * redacting relay to pass on the last output (a process the command left
 * behind may keep the pipe open; its later output still flows). */
#define SP_SECRET_RELAY_GRACE 2.0

struct sp_redact_stream;
struct sp_ring;

struct sp_secret_v {
    char name[SP_SECRET_NAME_MAX + 1];
    unsigned char *value;      /* in map */
    size_t len;
};

struct sp_secrets {
    size_t n;
    struct sp_secret_v v[SP_MAX_SECRETS];
    void *map;                 /* the values: MADV_DONTDUMP, mlock'd when
                                  the host allows */
    size_t map_len;
    size_t total;              /* bytes of all values */
    struct sp_redact *redact;
};

/* True for a well-formed name. */
bool sp_secret_name_ok(const char *name);

/* Check and copy n secrets. *ret is NULL when n == 0. Returns 0 or
 * -EINVAL/-E2BIG (SP_ERR_USAGE: a bad or repeated name, a value too short
 * or too long, too many) or -ENOMEM. */
int sp_secrets_new(const sp_secret *in, size_t n, struct sp_secrets **ret,
                   sp_error *err);
/* Zero and free. Accepts NULL. */
void sp_secrets_free(struct sp_secrets *s);
const struct sp_secret_v *sp_secrets_find(const struct sp_secrets *s,
                                          const char *name);

/* The state directory keeps the names only (SP_SECRETS_NAMES_FILE). save:
 * write them (or remove the file when s is NULL). check: a start must
 * bring every recorded name (-EINVAL, SP_ERR_USAGE, naming those
 * missing). */
int sp_secrets_save_names(int wsfd, const struct sp_secrets *s,
                          sp_error *err);
int sp_secrets_check_names(int wsfd, const char *ws,
                           const struct sp_secrets *s, sp_error *err);

/* The size of the tmpfs that holds them. */
uint64_t sp_secrets_tmpfs_size(const struct sp_secrets *s);
/* In the sandbox's PID 1, after its root is built (async-signal-safe: raw
 * system calls only): write each value to DIR/NAME (0400, owned by
 * uid:gid), the directory 0500, then make the mount read-only and noexec.
 * Returns 0
 * or -errno. */
int sp_secrets_populate(const struct sp_secrets *s, const char *dir,
                        uid_t uid, gid_t gid);

/* Redact every string value of v, in place (arrays and objects walked;
 * keys are left alone, and values under a key "data": base64 of bytes
 * redacted where they were made). For what the supervisor sends clients:
 * the agent's replies (file names, link targets, messages) and the
 * egress proxy's log. */
#include <jansson.h>
void sp_secrets_redact_json(const struct sp_secrets *s, json_t *v);

/* ---- in the agent ---- */

/* The agent's set (NULL: none; everything then takes the fast paths). */
void sp_secrets_agent_set(const struct sp_secrets *s);
const struct sp_secrets *sp_secrets_agent(void);

/* Write output into a ring through a redacting stream (*rs is made on
 * first use); _end passes on what was held back (at EOF) and frees it. */
void sp_secrets_ring_write(struct sp_redact_stream **rs, struct sp_ring *r,
                           const void *data, size_t len);
void sp_secrets_ring_end(struct sp_redact_stream **rs, struct sp_ring *r);

/* Redact the window [win_off, win_off + win_len) of buf (which holds
 * context bytes before and after it, up to the longest value - 1 each):
 * a value is replaced in the window where it begins, and its bytes are
 * dropped from a window it only runs into, so consecutive windows put
 * together read as the whole file redacted. Returns 1 with a new buffer
 * in *ret (caller frees) when something was redacted, 0 when the window
 * holds no value (nothing allocated), -ENOMEM. */
int sp_secrets_redact_window(const struct sp_secrets *s, const char *buf,
                             size_t len, size_t win_off, size_t win_len,
                             char **ret, size_t *ret_len);

/* The body of an exec's relay process (forked by the agent): read the
 * command's stdout and stderr pipes (in[0], in[1]; -1: not relayed),
 * redact each stream, write to the client's fds (out[0], out[1]) until
 * both reach EOF. A
 * stream whose client side fails is closed, so the command sees EPIPE. */
_Noreturn void sp_secrets_relay(const struct sp_secrets *s, const int in[2],
                                const int out[2]);

#endif
