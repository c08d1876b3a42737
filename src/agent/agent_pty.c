/* agent_pty.c — interactive shells in a workspace (agent_ext.h). The agent
 * opens /dev/ptmx inside the sandbox (its private devpts), keeps the
 * master and a ring of the output, so a shell outlives every client. The
 * shell is a new session with the PTY as its controlling terminal. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "agent_ext.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "envbuild.h"
#include "proto.h"
#include "ring.h"
#include "secrets.h"
#include "util.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

struct shell {
    int id;
    pid_t pid;                 /* session leader; 0 once reaped */
    int master;                /* -1 once the slave side is gone */
    struct sp_ring out;
    struct sp_redact_stream *rs; /* secrets: redacts what enters out */
    char *in;                  /* input not yet taken by the pty */
    size_t in_len;
    bool exited;
    int exit_code;             /* 128+N for signal N */
    bool closing;
    uint64_t kill_at;
    uint64_t end_at;           /* its "timeout": hung up then; 0 none */
    unsigned rows, cols;
    int64_t created;
    char command[256];
};

static struct {
    struct shell *sh[SP_SHELL_MAX];
    int next_id;
} P;

static struct shell *find(json_t *params, json_int_t id)
{
    json_t *v = params ? json_object_get(params, "shell") : NULL;
    if (!json_is_integer(v)) {
        sp_ext_error(id, SP_RPC_PARAMS, "\"shell\" (a shell id) is required");
        return NULL;
    }
    for (size_t i = 0; i < SP_SHELL_MAX; i++)
        if (P.sh[i] && P.sh[i]->id == json_integer_value(v))
            return P.sh[i];
    sp_ext_error(id, SP_RPC_PARAMS, "no shell %lld",
                 (long long)json_integer_value(v));
    return NULL;
}

static const char *state_of(const struct shell *s)
{
    return s->exited ? "exited" : s->closing ? "closing" : "running";
}

static void status_of(void *target, int stream, json_t *r)
{
    (void)stream;
    struct shell *s = target;
    json_object_set_new(r, "state", json_string(state_of(s)));
    json_object_set_new(r, "exit_code",
                        s->exited ? json_integer(s->exit_code) : json_null());
}

static json_t *shell_json(const struct shell *s)
{
    json_t *o = json_pack("{s:i,s:i,s:s,s:s,s:I,s:i,s:i,s:I}", "shell", s->id,
                          "pid", (int)s->pid, "state", state_of(s), "command",
                          s->command, "created", (json_int_t)s->created,
                          "rows", (int)s->rows, "cols", (int)s->cols, "end",
                          (json_int_t)s->out.end);
    json_object_set_new(o, "exit_code",
                        s->exited ? json_integer(s->exit_code) : json_null());
    return o;
}

static void shell_free(size_t slot)
{
    struct shell *s = P.sh[slot];
    sp_ext_forget(s);
    if (s->master >= 0)
        close(s->master);
    sp_redact_stream_free(s->rs);
    sp_ring_free(&s->out);
    free(s->in);
    free(s);
    P.sh[slot] = NULL;
}

static bool get_dim(json_t *params, const char *key, unsigned def,
                    unsigned *ret)
{
    json_t *v = params ? json_object_get(params, key) : NULL;
    if (!v) {
        *ret = def;
        return true;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > 10000)
        return false;
    *ret = (unsigned)json_integer_value(v);
    return true;
}

/* The child: a new session whose controlling terminal is the pty. Runs
 * after fork in a single-threaded agent: plain system calls only. */
static _Noreturn void shell_child(int master, int cwdfd, char *const *argv,
                                  char **envp, const char *path)
{
    setsid();
    int s = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
    if (s < 0) {
        char name[64];
        if (ptsname_r(master, name, sizeof(name)) != 0 ||
            (s = open(name, O_RDWR | O_NOCTTY)) < 0)
            _exit(125);
    }
    if (ioctl(s, TIOCSCTTY, 0) < 0)
        _exit(125);
    for (int i = 0; i < 3; i++)
        if (dup2(s, i) < 0)
            _exit(125);
    if (s > 2)
        close(s);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (fchdir(cwdfd) < 0)
        _exit(125);
    sp_exec_or_die(argv, envp, path, "\r\n"); /* a terminal */
}

static void do_open(json_int_t id, json_t *params)
{
    static char *const bash[] = {"bash", "--noprofile", "--norc", NULL};
    static char *const sh[] = {"sh", NULL};
    sp_error err = {0};
    const char **argv = NULL, *cwd = NULL, *why = NULL;
    char **envp = NULL;
    int master = -1, cwdfd = -1;
    unsigned rows, cols;
    size_t slot = 0;
    struct shell *s = NULL;
    double timeout = 0;

    while (slot < SP_SHELL_MAX && P.sh[slot])
        slot++;
    if (slot == SP_SHELL_MAX) {
        /* Make room by dropping the oldest shell that has ended. */
        size_t old = SP_SHELL_MAX;
        for (size_t i = 0; i < SP_SHELL_MAX; i++)
            if (P.sh[i]->exited && P.sh[i]->master < 0 &&
                (old == SP_SHELL_MAX || P.sh[i]->id < P.sh[old]->id))
                old = i;
        if (old == SP_SHELL_MAX) {
            sp_ext_error(id, SP_RPC_BUSY, "too many shells (at most %d)",
                         SP_SHELL_MAX);
            return;
        }
        shell_free(old);
        slot = old;
    }
    if (sp_proto_get_strv(params, "argv", false, 1, SP_MAX_ARGS, SP_MAX_ENV_LEN,
                          &argv, &err) < 0 ||
        sp_proto_get_string(params, "cwd", false, SP_MAX_PATH, &cwd, &err) < 0 ||
        sp_proto_get_number(params, "timeout", false, 0, SP_MAX_TIMEOUT,
                            &timeout, &err) < 0) {
        sp_ext_error(id, SP_RPC_PARAMS, "%s", err.message);
        goto out;
    }
    if (!get_dim(params, "rows", 24, &rows) ||
        !get_dim(params, "cols", 80, &cols)) {
        sp_ext_error(id, SP_RPC_PARAMS, "rows and cols must be 1 to 10000");
        goto out;
    }
    if (!(envp = sp_ext_env(params, "env", true, &why))) {
        sp_ext_error(id, SP_RPC_PARAMS, "%s", why);
        goto out;
    }
    cwdfd = open(cwd && *cwd ? cwd : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwdfd < 0) {
        sp_ext_error(id, SP_RPC_EXEC, "cannot change to working directory %s: %s",
                     cwd, strerror(errno));
        goto out;
    }
    char *const *av = (char *const *)argv;
    if (!av) {
        /* bash without profile or rc files when there is one, else sh. */
        av = sp_ext_which("bash", sp_env_get(envp, "PATH")) ? bash : sh;
    }
    master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || unlockpt(master) < 0) {
        sp_ext_error(id, SP_RPC_EXEC, "cannot open a pty: %s", strerror(errno));
        goto out;
    }
    struct winsize ws = {.ws_row = (unsigned short)rows,
                         .ws_col = (unsigned short)cols};
    ioctl(master, TIOCSWINSZ, &ws);
    s = calloc(1, sizeof(*s));
    if (!s || sp_ring_init(&s->out, SP_SHELL_RING) < 0) {
        free(s);
        s = NULL;
        sp_ext_error(id, SP_RPC_INTERNAL, "out of memory");
        goto out;
    }
    sp_agent_gate(); /* in the cgroup first */
    pid_t pid = fork();
    if (pid == 0)
        shell_child(master, cwdfd, av, envp, sp_env_get(envp, "PATH"));
    if (pid < 0) {
        sp_ext_error(id, SP_RPC_EXEC, "cannot fork: %s", strerror(errno));
        sp_ring_free(&s->out);
        free(s);
        s = NULL;
        goto out;
    }
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    s->id = ++P.next_id;
    s->pid = pid;
    s->master = master;
    master = -1;
    s->rows = rows;
    s->cols = cols;
    s->created = (int64_t)time(NULL);
    if (timeout > 0)
        s->end_at = sp_now_us() + (uint64_t)(timeout * 1e6);
    size_t off = 0;
    for (size_t i = 0; av[i] && off + 2 < sizeof(s->command); i++) {
        int k = snprintf(s->command + off, sizeof(s->command) - off, "%s%s",
                         i ? " " : "", av[i]);
        if (k < 0)
            break;
        off += (size_t)k;
    }
    P.sh[slot] = s;
    sp_ext_reply(id, json_pack("{s:i,s:i}", "shell", s->id, "pid", (int)pid));
out:
    if (master >= 0)
        close(master);
    if (cwdfd >= 0)
        close(cwdfd);
    free(argv);
    free(envp);
}

static void flush_input(struct shell *s)
{
    while (s->in_len && s->master >= 0) {
        ssize_t w = write(s->master, s->in, s->in_len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w < 0 && errno != EAGAIN)
                s->in_len = 0; /* the slave is gone: drop it */
            return;
        }
        memmove(s->in, s->in + w, s->in_len - (size_t)w);
        s->in_len -= (size_t)w;
    }
}

static void do_write(json_int_t id, json_t *params, struct shell *s)
{
    const char *data = NULL;
    sp_error err = {0};
    if (sp_proto_get_string(params, "data", true, SP_PROTO_MAX_LINE, &data,
                            &err) < 0) {
        sp_ext_error(id, SP_RPC_PARAMS, "%s", err.message);
        return;
    }
    size_t dl = strlen(data);
    if (s->master < 0 || s->exited) {
        sp_ext_error(id, SP_RPC_GONE, "shell %d has exited", s->id);
        return;
    }
    if (dl / 4 * 3 > SP_SHELL_INPUT_MAX - s->in_len) {
        sp_ext_error(id, SP_RPC_BUSY,
                     "shell %d is not reading its input (%zu bytes queued)",
                     s->id, s->in_len);
        return;
    }
    if (!s->in && !(s->in = malloc(SP_SHELL_INPUT_MAX))) {
        sp_ext_error(id, SP_RPC_INTERNAL, "out of memory");
        return;
    }
    long n = sp_b64_decode(data, dl, s->in + s->in_len);
    if (n < 0) {
        sp_ext_error(id, SP_RPC_PARAMS, "\"data\" is not base64");
        return;
    }
    s->in_len += (size_t)n;
    flush_input(s);
    sp_ext_reply(id, json_pack("{s:I}", "queued", (json_int_t)s->in_len));
}

/* HUP to the session, KILL after a grace; closing: forget the shell once
 * it has ended (a timeout keeps it, ended, for its output to be read). */
static void hang_up(struct shell *s, bool closing)
{
    if (s->closing)
        return;
    s->closing = closing;
    if (s->pid > 0) {
        /* HUP to the session (the shell and its jobs), KILL after a grace. */
        sp_ext_kill_session(s->pid, SIGHUP);
        kill(-s->pid, SIGCONT);
        s->kill_at = sp_now_us() + (uint64_t)(SP_SHELL_CLOSE_GRACE * 1e6);
    }
}

static void begin_close(struct shell *s)
{
    hang_up(s, true);
}

static bool sp_pty_handle(json_int_t id, const char *method, json_t *params)
{
    const char *m = method + 6;
    if (id < 0)
        return true; /* every shell method wants a reply */
    if (strcmp(m, "open") == 0) {
        do_open(id, params);
        return true;
    }
    if (strcmp(m, "list") == 0) {
        json_t *a = json_array();
        for (int want = 1; want <= P.next_id; want++)
            for (size_t i = 0; i < SP_SHELL_MAX; i++)
                if (P.sh[i] && P.sh[i]->id == want)
                    json_array_append_new(a, shell_json(P.sh[i]));
        sp_ext_reply(id, json_pack("{s:o}", "shells", a));
        return true;
    }
    if (strcmp(m, "write") && strcmp(m, "read") && strcmp(m, "resize") &&
        strcmp(m, "signal") && strcmp(m, "close") && strcmp(m, "status"))
        return false;
    struct shell *s = find(params, id);
    if (!s)
        return true;
    if (strcmp(m, "write") == 0) {
        do_write(id, params, s);
    } else if (strcmp(m, "read") == 0) {
        double cursor = 0, max = SP_SHELL_READ_MAX, wait = 0, quiet = 0;
        const char *until = NULL, *why = NULL;
        sp_error err = {0};
        if (sp_proto_get_number(params, "cursor", false, 0, 9e15, &cursor, &err) < 0 ||
            sp_proto_get_number(params, "max", false, 1, SP_SHELL_READ_MAX, &max, &err) < 0 ||
            sp_proto_get_number(params, "wait", false, 0, SP_EXT_MAX_WAIT, &wait, &err) < 0 ||
            sp_proto_get_number(params, "quiet", false, 0, SP_EXT_MAX_WAIT, &quiet, &err) < 0 ||
            sp_proto_get_string(params, "until", false, 1024, &until, &err) < 0) {
            sp_ext_error(id, SP_RPC_PARAMS, "%s", err.message);
            return true;
        }
        bool ended = s->exited && s->master < 0;
        if (quiet > 0 || (until && *until)) {
            if (sp_ext_read_until(id, &s->out, s, 0, (uint64_t)cursor,
                                  (size_t)max, wait, ended, status_of, quiet,
                                  until, &why) < 0)
                sp_ext_error(id, SP_RPC_PARAMS, "%s", why);
        } else {
            sp_ext_read(id, &s->out, s, 0, (uint64_t)cursor, (size_t)max,
                        wait, ended, status_of);
        }
    } else if (strcmp(m, "resize") == 0) {
        unsigned rows, cols;
        if (!get_dim(params, "rows", s->rows, &rows) ||
            !get_dim(params, "cols", s->cols, &cols)) {
            sp_ext_error(id, SP_RPC_PARAMS, "rows and cols must be 1 to 10000");
            return true;
        }
        struct winsize ws = {.ws_row = (unsigned short)rows,
                             .ws_col = (unsigned short)cols};
        if (s->master >= 0 && ioctl(s->master, TIOCSWINSZ, &ws) < 0) {
            sp_ext_error(id, SP_RPC_EXEC, "resize: %s", strerror(errno));
            return true;
        }
        s->rows = rows;
        s->cols = cols;
        sp_ext_reply(id, NULL);
    } else if (strcmp(m, "signal") == 0) {
        json_t *v = json_object_get(params, "signal");
        int sig = json_is_integer(v) ? (int)json_integer_value(v) : 0;
        if (sig != SIGINT && sig != SIGTERM && sig != SIGHUP &&
            sig != SIGKILL && sig != SIGQUIT) {
            sp_ext_error(id, SP_RPC_PARAMS,
                         "\"signal\" must be one of INT, TERM, HUP, KILL, QUIT "
                         "(2, 15, 1, 9, 3)");
            return true;
        }
        if (s->exited) {
            sp_ext_error(id, SP_RPC_GONE, "shell %d has exited", s->id);
            return true;
        }
        /* The terminal's foreground process group: the job in front. */
        pid_t fg = s->master >= 0 ? tcgetpgrp(s->master) : -1;
        if (fg <= 1 || kill(-fg, sig) < 0)
            kill(-s->pid, sig);
        sp_ext_reply(id, json_pack("{s:i}", "pgrp", fg > 1 ? (int)fg : (int)s->pid));
    } else if (strcmp(m, "close") == 0) {
        if (s->exited) {
            for (size_t i = 0; i < SP_SHELL_MAX; i++)
                if (P.sh[i] == s)
                    shell_free(i);
        } else {
            begin_close(s);
        }
        sp_ext_reply(id, NULL);
    } else {
        sp_ext_reply(id, shell_json(s));
    }
    return true;
}

static size_t sp_pty_pollfds(struct pollfd *pfd, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < SP_SHELL_MAX && n < max; i++) {
        struct shell *s = P.sh[i];
        if (!s || s->master < 0)
            continue;
        pfd[n++] = (struct pollfd){s->master,
                                   (short)(POLLIN | (s->in_len ? POLLOUT : 0)),
                                   0};
    }
    return n;
}

static void drain(struct shell *s)
{
    char buf[65536];
    for (int rounds = 0; rounds < 16 && s->master >= 0; rounds++) {
        ssize_t n = read(s->master, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0) {
            sp_secrets_ring_write(&s->rs, &s->out, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EAGAIN)
            break;
        /* EIO: every slave fd is closed (the shell and its jobs are gone). */
        close(s->master);
        s->master = -1;
        sp_secrets_ring_end(&s->rs, &s->out);
    }
    sp_ext_wake(s, 0, s->exited && s->master < 0);
}

static void sp_pty_events(const struct pollfd *pfd, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (!pfd[k].revents)
            continue;
        for (size_t i = 0; i < SP_SHELL_MAX; i++) {
            struct shell *s = P.sh[i];
            if (!s || s->master != pfd[k].fd)
                continue;
            if (pfd[k].revents & POLLOUT)
                flush_input(s);
            if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
                drain(s);
            break;
        }
    }
}

static bool sp_pty_reaped(pid_t pid, int status)
{
    for (size_t i = 0; i < SP_SHELL_MAX; i++) {
        struct shell *s = P.sh[i];
        if (!s || s->pid != pid || s->exited)
            continue;
        s->exited = true;
        s->exit_code = WIFEXITED(status)     ? WEXITSTATUS(status)
                       : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                             : 125;
        /* What the shell wrote last is in the pty: take it now. Jobs it
         * left behind keep the slave open: they get a hangup. */
        if (s->master >= 0)
            drain(s);
        if (s->master >= 0) {
            sp_ext_kill_session(pid, SIGHUP);
            close(s->master);
            s->master = -1;
        }
        s->kill_at = 0;
        sp_ext_wake(s, 0, true);
        if (s->closing)
            shell_free(i);
        return true;
    }
    return false;
}

static uint64_t sp_pty_next_timer(void)
{
    uint64_t next = 0;
    for (size_t i = 0; i < SP_SHELL_MAX; i++) {
        if (P.sh[i] && P.sh[i]->kill_at &&
            (!next || P.sh[i]->kill_at < next))
            next = P.sh[i]->kill_at;
        if (P.sh[i] && P.sh[i]->end_at &&
            (!next || P.sh[i]->end_at < next))
            next = P.sh[i]->end_at;
    }
    return next;
}

static void sp_pty_timers(uint64_t now)
{
    for (size_t i = 0; i < SP_SHELL_MAX; i++) {
        struct shell *s = P.sh[i];
        if (s && s->kill_at && now >= s->kill_at) {
            s->kill_at = 0;
            sp_ext_kill_session(s->pid, SIGKILL);
            kill(-s->pid, SIGKILL);
        }
        if (s && s->end_at && now >= s->end_at) {
            /* It lived its timeout (the operator's ceiling): hung up. */
            s->end_at = 0;
            if (!s->exited)
                hang_up(s, false);
        }
    }
}

static void sp_pty_shutdown(void)
{
    for (size_t i = 0; i < SP_SHELL_MAX; i++)
        if (P.sh[i] && !P.sh[i]->exited)
            begin_close(P.sh[i]);
}

const struct sp_agent_module sp_agent_pty_module = {
    .prefix = "shell.",
    .handle = sp_pty_handle,
    .pollfds = sp_pty_pollfds,
    .events = sp_pty_events,
    .reaped = sp_pty_reaped,
    .next_timer = sp_pty_next_timer,
    .timers = sp_pty_timers,
    .shutdown = sp_pty_shutdown,
};
