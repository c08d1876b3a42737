/* cmd_shell.c — `sandpit shell`, `sandpit shells` and `sandpit service`:
 * PTY shells and background services in a workspace
 * (docs/shells-services.md). `shell` attaches the person's terminal: raw
 * mode (restored on every way out), window size followed, a detach key. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_shell.h"
#include "proto.h"
#include "ring.h"
#include "ws_shell.h"

/* Exit status of `service start` when the service failed (sandpit itself
 * did not: that is 125). */
#define EXIT_SERVICE_FAILED 1
/* How many ^D a piped attach sends at most after its input ended. */
#define SHELL_EOF_RESENDS 10

static int fail(const sp_error *err)
{
    cli_error("%s", err->message);
    int rc = cli_exit_code(err);
    return rc == 0 ? EXIT_SP_FAILURE : rc;
}

static int parse_num(const char *flag, const char *v, double lo, double hi,
                     double *ret)
{
    char *end = NULL;
    double d = v ? strtod(v, &end) : -1;
    if (!v || end == v || *end || d < lo || d > hi) {
        cli_error("%s: expected a number from %g to %g, got '%s'", flag, lo,
                  hi, v ? v : "");
        return -1;
    }
    *ret = d;
    return 0;
}

/* ---- shells ---------------------------------------------------------- */

int cmd_shells(int argc, char **argv)
{
    bool as_json = false;
    const char *ws = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            as_json = true;
        else if (argv[i][0] != '-' && !ws)
            ws = argv[i];
        else {
            cli_error("shells: usage: sandpit shells NAME [--json]");
            return EXIT_SP_FAILURE;
        }
    }
    if (!ws) {
        cli_error("shells: usage: sandpit shells NAME [--json]");
        return EXIT_SP_FAILURE;
    }
    sp_error err = {0};
    char *text = sp_ws_shell_list_json(ws, &err);
    if (!text)
        return fail(&err);
    if (as_json) {
        puts(text);
        free(text);
        return 0;
    }
    json_t *a = json_loads(text, 0, NULL);
    free(text);
    printf("%-5s %-8s %5s %8s %9s  %s\n", "ID", "STATE", "EXIT", "PID", "SIZE",
           "COMMAND");
    size_t i;
    json_t *o;
    json_array_foreach(a, i, o) {
        json_t *ec = json_object_get(o, "exit_code");
        char exitbuf[16] = "-";
        if (json_is_integer(ec))
            snprintf(exitbuf, sizeof(exitbuf), "%lld",
                     (long long)json_integer_value(ec));
        char size[32];
        snprintf(size, sizeof(size), "%lldx%lld",
                 (long long)json_integer_value(json_object_get(o, "cols")),
                 (long long)json_integer_value(json_object_get(o, "rows")));
        printf("%-5lld %-8s %5s %8lld %9s  %s\n",
               (long long)json_integer_value(json_object_get(o, "shell")),
               json_string_value(json_object_get(o, "state")), exitbuf,
               (long long)json_integer_value(json_object_get(o, "pid")), size,
               json_string_value(json_object_get(o, "command")));
    }
    json_decref(a);
    return 0;
}

/* A detach key: "^]" / "ctrl-]" / "ctrl-x" style, or "none". */
static int parse_key(const char *v)
{
    if (!v)
        return -2;
    if (strcmp(v, "none") == 0)
        return -1;
    char c = 0;
    if (v[0] == '^' && v[1] && !v[2])
        c = v[1];
    else if (strncmp(v, "ctrl-", 5) == 0 && v[5] && !v[6])
        c = v[5];
    else
        return -2;
    if (c >= 'a' && c <= 'z')
        c = (char)(c - 'a' + 'A');
    if (c < '@' || c > '_')
        return -2;
    return c - '@';
}

struct attach {
    int fd;                    /* the control connection */
    struct sp_proto_buf in;
    const char *ws;
    int shell;
    json_int_t next_id, read_id;
    uint64_t cursor;
    bool ended;
    int exit_code;
    bool piped;                /* stdin is not a terminal */
    char last;                 /* the last byte sent */
    int eofs;                  /* ^D sent since piped input ended */
    char err[1024];
};

static int att_send(struct attach *a, const char *method, json_t *params,
                    json_int_t *ret_id)
{
    json_t *jid = json_integer(++a->next_id);
    char *line = sp_proto_request(jid, method, params);
    json_decref(jid);
    if (!line)
        return -ENOMEM;
    int r = sp_proto_send(a->fd, line, strlen(line), NULL, 0);
    free(line);
    if (ret_id)
        *ret_id = a->next_id;
    return r;
}

static int att_read(struct attach *a)
{
    return att_send(a, "shell.read",
                    json_pack("{s:i,s:I,s:f}", "shell", a->shell, "cursor",
                              (json_int_t)a->cursor, "wait", 30.0),
                    &a->read_id);
}

static void winsize(unsigned *rows, unsigned *cols)
{
    struct winsize w;
    *rows = 24;
    *cols = 80;
    if (ioctl(0, TIOCGWINSZ, &w) == 0 && w.ws_row && w.ws_col) {
        *rows = w.ws_row;
        *cols = w.ws_col;
    }
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One reply from the supervisor. Returns -1 when the attach must end. */
static int att_reply(struct attach *a, struct sp_proto_msg *m)
{
    if (!m->id || !json_is_integer(m->id))
        return 0;
    json_int_t id = json_integer_value(m->id);
    if (m->is_error) {
        snprintf(a->err, sizeof(a->err), "%s", m->err_message);
        return id == a->read_id ? -1 : 0;
    }
    if (id != a->read_id)
        return 0;
    sp_ws_output o;
    sp_error e = {0};
    if (sp_ws_output_from_json(m->result, &o, &e) < 0) {
        snprintf(a->err, sizeof(a->err), "%s", e.message);
        return -1;
    }
    if (o.len && write_all(1, o.data, o.len) < 0) {
        sp_ws_output_free(&o);
        snprintf(a->err, sizeof(a->err), "cannot write the output");
        return -1;
    }
    a->cursor = o.next_cursor;
    bool ended = o.ended;
    a->exit_code = o.exit_code;
    sp_ws_output_free(&o);
    if (ended) {
        a->ended = true;
        return -1;
    }
    return att_read(a) < 0 ? -1 : 0;
}

/* ^D (after a newline when the input's last line had none) to the shell. */
static void send_eof(struct attach *a, const char *eof)
{
    char b64[16];
    sp_b64_encode(eof, strlen(eof), b64);
    att_send(a, "shell.write",
             json_pack("{s:i,s:s}", "shell", a->shell, "data", b64), NULL);
    a->eofs++;
}

static int attach_loop(struct attach *a, int detach_key)
{
    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGWINCH);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGQUIT);
    sigprocmask(SIG_BLOCK, &mask, &old);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    bool stdin_open = true;
    int rc = 0; /* 0 ended, 1 detached, -1 error */
    if (att_read(a) < 0) {
        snprintf(a->err, sizeof(a->err), "the supervisor went away");
        rc = -1;
        goto out;
    }
    for (;;) {
        struct pollfd p[3] = {{a->fd, POLLIN, 0},
                              {stdin_open ? 0 : -1, POLLIN, 0},
                              {sfd, POLLIN, 0}};
        /* After piped input ended, a ^D sent before the shell set up its
         * terminal is lost (readline switches the pty out of canonical
         * mode, where ^D was the end of input, and reads a NUL): while the
         * shell is quiet, send it again, a few times. */
        int pr = poll(p, 3, a->eofs && a->eofs < SHELL_EOF_RESENDS ? 300 : -1);
        if (pr < 0 && errno != EINTR) {
            rc = -1;
            break;
        }
        if (pr == 0) {
            send_eof(a, "\x04");
            continue;
        }
        if (p[2].revents & POLLIN) {
            struct signalfd_siginfo si;
            bool stop = false;
            while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGWINCH) {
                    unsigned r, c;
                    winsize(&r, &c);
                    att_send(a, "shell.resize",
                             json_pack("{s:i,s:i,s:i}", "shell", a->shell,
                                       "rows", (int)r, "cols", (int)c),
                             NULL);
                } else if (si.ssi_signo != SIGINT && si.ssi_signo != SIGQUIT) {
                    stop = true; /* TERM or HUP: leave, the shell stays */
                }
            }
            if (stop) {
                rc = 1;
                break;
            }
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            char buf[4096];
            ssize_t n = read(0, buf, sizeof(buf));
            if (n <= 0 && !(n < 0 && errno == EINTR)) {
                stdin_open = false;
                /* Piped input ended: end the shell's input as a terminal
                 * would (^D at the start of a line), so that the shell
                 * exits and so do we. A terminal's EOF is the person's
                 * own ^D, sent as typed. */
                if (a->piped)
                    send_eof(a, a->last && a->last != '\n' ? "\n\x04"
                                                            : "\x04");
            } else if (n > 0) {
                size_t len = (size_t)n;
                bool detach = false;
                if (detach_key >= 0) {
                    char *k = memchr(buf, detach_key, len);
                    if (k) {
                        len = (size_t)(k - buf);
                        detach = true;
                    }
                }
                if (len) {
                    a->last = buf[len - 1];
                    char b64[sizeof(buf) / 3 * 4 + 8];
                    sp_b64_encode(buf, len, b64);
                    att_send(a, "shell.write",
                             json_pack("{s:i,s:s}", "shell", a->shell, "data",
                                       b64),
                             NULL);
                }
                if (detach) {
                    rc = 1;
                    break;
                }
            }
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t k = sp_proto_recv(a->fd, &a->in);
            char *l = NULL;
            size_t len = 0;
            bool end = false;
            while (!end && sp_proto_next_line(&a->in, &l, &len) == 1) {
                struct sp_proto_msg m;
                if (sp_proto_parse(l, len, &m, NULL) == 0) {
                    if (!m.method && att_reply(a, &m) < 0)
                        end = true;
                    sp_proto_msg_free(&m);
                }
                free(l);
            }
            if (end) {
                rc = a->ended ? 0 : -1;
                break;
            }
            if (k == 0 || (k < 0 && k != -EAGAIN && k != -EINTR)) {
                snprintf(a->err, sizeof(a->err),
                         "workspace %s: the supervisor went away", a->ws);
                rc = -1;
                break;
            }
        }
    }
out:
    if (sfd >= 0)
        close(sfd);
    /* Signals that came while we left go nowhere. */
    struct timespec zero = {0, 0};
    while (sigtimedwait(&mask, NULL, &zero) > 0)
        ;
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* Attach to shell `shell` of ws, or open one (shell 0) running cmd with
 * env (ne entries, room for one more: TERM) and cwd. as_exec (exec -t):
 * the shell is closed once the attach ends. Returns the exit code. */
static int attach_shell(const char *ws, int shell, char **cmd, char **env,
                        size_t ne, const char *cwd, int detach_key,
                        bool as_exec)
{
    int rc = EXIT_SP_FAILURE;
    sp_error err = {0};
    struct attach a = {.fd = -1, .ws = ws, .piped = !isatty(0)};
    sp_proto_buf_init(&a.in);
    if (shell) {
        if (cmd || ne || cwd) {
            cli_error("shell: -e, -w and a command apply to a new shell only");
            return rc;
        }
        /* Re-attach: the window may differ from the last client's; from
         * the current end of its output. */
        json_t *r = NULL;
        if (sp_ws_call(ws, "shell.status", json_pack("{s:i}", "shell", shell),
                       &r, &err) < 0) {
            rc = fail(&err);
            return rc;
        }
        a.cursor = (uint64_t)json_integer_value(json_object_get(r, "end"));
        json_decref(r);
    } else {
        unsigned rows, cols;
        winsize(&rows, &cols);
        const char *term = getenv("TERM");
        char termkv[256];
        if (term && *term && strlen(term) < 200) {
            bool given = false;
            for (size_t i = 0; i < ne; i++)
                given |= strncmp(env[i], "TERM=", 5) == 0;
            if (!given) {
                snprintf(termkv, sizeof(termkv), "TERM=%s", term);
                env[ne++] = termkv;
            }
        }
        sp_ws_shell_opts o = {.argv = cmd, .env = ne ? env : NULL, .cwd = cwd,
                              .rows = rows, .cols = cols};
        shell = sp_ws_shell_open(ws, &o, &err);
        if (shell < 0) {
            rc = fail(&err);
            return rc;
        }
    }
    a.shell = shell;
    if ((a.fd = sp_ws_connect_fd(ws, &err)) < 0) {
        rc = fail(&err);
        return rc;
    }
    if (shell && isatty(0)) {
        unsigned rows, cols;
        winsize(&rows, &cols);
        att_send(&a, "shell.resize",
                 json_pack("{s:i,s:i,s:i}", "shell", shell, "rows", (int)rows,
                           "cols", (int)cols),
                 NULL);
    }
    struct termios saved;
    bool raw = isatty(0) && tcgetattr(0, &saved) == 0;
    if (raw) {
        struct termios t = saved;
        cfmakeraw(&t);
        tcsetattr(0, TCSADRAIN, &t);
    }
    int r = attach_loop(&a, detach_key);
    if (raw)
        tcsetattr(0, TCSADRAIN, &saved);
    if (as_exec) {
        /* The shell was this command's only: gone with it. */
        sp_error cerr = {0};
        sp_ws_shell_close(ws, shell, &cerr);
    }
    close(a.fd);
    sp_proto_buf_free(&a.in);
    if (r == 1) {
        fprintf(stderr, "%s[detached from shell %d of %s; sandpit shell %s %d "
                        "attaches again]\n",
                raw ? "\r\n" : "", shell, ws, ws, shell);
        rc = 0;
    } else if (r == 0) {
        rc = a.exit_code >= 0 && a.exit_code < 256 ? a.exit_code : 0;
    } else {
        cli_error("%s", a.err[0] ? a.err : "the attach ended");
        rc = EXIT_SP_FAILURE;
    }
    return rc;
}

int cli_exec_tty(const char *ws, char **cmd, char **env, const char *cwd)
{
    size_t ne = 0;
    while (env && env[ne])
        ne++;
    char **e = calloc(ne + 2, sizeof(*e));
    if (!e)
        return EXIT_SP_FAILURE;
    for (size_t i = 0; i < ne; i++)
        e[i] = env[i];
    int rc = attach_shell(ws, 0, cmd, e, ne, cwd, -1, true);
    free(e);
    return rc;
}

static const char *const shell_usage =
    "shell: usage: sandpit shell NAME [ID] [-e K=V] [-w DIR] "
    "[--detach-key ^X|none] [-- CMD...] | sandpit shell NAME --close ID";

int cmd_shell(int argc, char **argv)
{
    const char *ws = NULL, *cwd = NULL;
    int shell = 0, detach_key = 0x1d; /* ctrl-] */
    bool close_it = false;
    char **env = calloc((size_t)argc + 1, sizeof(*env));
    size_t ne = 0;
    char **cmd = NULL;
    int rc = EXIT_SP_FAILURE;
    if (!env)
        return EXIT_SP_FAILURE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            cmd = argv + i + 1;
            if (!*cmd)
                cmd = NULL;
            break;
        } else if ((strcmp(a, "-e") == 0 || strcmp(a, "--env") == 0) &&
                   i + 1 < argc) {
            const char *kv = argv[++i];
            const char *eq = strchr(kv, '=');
            if (!eq || eq == kv) {
                cli_error("shell: -e %s: expected NAME=VALUE", kv);
                goto out;
            }
            env[ne++] = (char *)kv;
        } else if ((strcmp(a, "-w") == 0 || strcmp(a, "--workdir") == 0) &&
                   i + 1 < argc) {
            cwd = argv[++i];
        } else if (strcmp(a, "--close") == 0) {
            /* sandpit shell NAME --close ID, or NAME ID --close */
            close_it = true;
        } else if (strcmp(a, "--detach-key") == 0 && i + 1 < argc) {
            detach_key = parse_key(argv[++i]);
            if (detach_key == -2) {
                cli_error("shell: --detach-key wants ^X, ctrl-x or none");
                goto out;
            }
        } else if (a[0] != '-' && !ws) {
            ws = a;
        } else if (a[0] != '-' && !shell) {
            char *end = NULL;
            long v = strtol(a, &end, 10);
            if (!end || *end || v <= 0 || v > 1000000000) {
                cli_error("shell: '%s' is not a shell id", a);
                goto out;
            }
            shell = (int)v;
        } else {
            cli_error("%s", shell_usage);
            goto out;
        }
    }
    if (!ws) {
        cli_error("%s", shell_usage);
        goto out;
    }
    if (close_it) {
        /* Hang the shell up (SIGHUP to its session, SIGKILL after 2 s). */
        sp_error err = {0};
        if (!shell || cmd || ne || cwd) {
            cli_error("shell: --close wants a shell id and nothing else "
                      "(sandpit shell NAME --close ID)");
            goto out;
        }
        rc = sp_ws_shell_close(ws, shell, &err) < 0 ? fail(&err) : 0;
        goto out;
    }
    rc = attach_shell(ws, shell, cmd, env, ne, cwd, detach_key, false);
out:
    free(env);
    return rc;
}

/* ---- services -------------------------------------------------------- */

static void print_status(json_t *o)
{
    static const char *const keys[] = {"state", "pid", "exit_code", "started",
                                       "ready_at", "ended", "reason",
                                       "stopped_by", "restarts", "restart",
                                       "cwd", "ready"};
    printf("%-10s %s\n", "name", json_string_value(json_object_get(o, "name")));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        json_t *v = json_object_get(o, keys[i]);
        if (!v || json_is_null(v))
            continue;
        if (json_is_string(v)) {
            printf("%-10s %s\n", keys[i], json_string_value(v));
        } else if (json_is_integer(v) &&
                   (strcmp(keys[i], "started") == 0 ||
                    strcmp(keys[i], "ready_at") == 0 ||
                    strcmp(keys[i], "ended") == 0)) {
            time_t t = (time_t)json_integer_value(v);
            struct tm tm;
            char buf[64];
            strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S%z",
                     localtime_r(&t, &tm));
            printf("%-10s %s\n", keys[i], buf);
        } else if (json_is_integer(v)) {
            printf("%-10s %lld\n", keys[i], (long long)json_integer_value(v));
        }
    }
}

static const char *svc_usage =
    "usage: sandpit service start NAME SVC [--cwd DIR] [-e K=V] "
    "[--secret-env SECRET] [--ready file:PATH|tcp:HOST:PORT|http:URL|cmd:COMMAND] "
    "[--ready-timeout S] [--restart no|on-failure] -- CMD [ARGS...]\n"
    "       sandpit service status NAME SVC [--json]\n"
    "       sandpit service logs NAME SVC [--tail N] [--follow] [--stderr]\n"
    "       sandpit service stop NAME SVC [--grace S]\n"
    "       sandpit service ls NAME [--json]";

static int svc_start(int argc, char **argv)
{
    if (argc < 3 || argv[1][0] == '-' || argv[2][0] == '-') {
        cli_error("service start: %s", svc_usage);
        return EXIT_SP_FAILURE;
    }
    sp_ws_service_opts o = {.name = argv[2]};
    char **env = calloc((size_t)argc + 1, sizeof(*env));
    char **senv = calloc((size_t)argc + 1, sizeof(*senv));
    size_t ne = 0, nse = 0;
    int rc = EXIT_SP_FAILURE, i = 3;
    if (!env || !senv) {
        free(env);
        free(senv);
        return rc;
    }
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-')
            break;
        if (!v) {
            cli_error("service start: %s needs a value", a);
            goto out;
        }
        i++;
        if (strcmp(a, "--cwd") == 0 || strcmp(a, "-w") == 0) {
            o.cwd = v;
        } else if (strcmp(a, "-e") == 0 || strcmp(a, "--env") == 0) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v) {
                cli_error("service start: -e %s: expected NAME=VALUE", v);
                goto out;
            }
            env[ne++] = (char *)v;
        } else if (strcmp(a, "--secret-env") == 0) {
            senv[nse++] = (char *)v;
        } else if (strcmp(a, "--ready") == 0) {
            o.ready = v;
        } else if (strcmp(a, "--ready-timeout") == 0) {
            if (parse_num(a, v, 0.01, 30.0 * 24 * 3600, &o.ready_timeout) < 0)
                goto out;
        } else if (strcmp(a, "--restart") == 0) {
            if (strcmp(v, "on-failure") == 0) {
                o.restart_on_failure = true;
            } else if (strcmp(v, "no") != 0) {
                cli_error("service start: --restart wants no or on-failure, "
                          "got '%s'", v);
                goto out;
            }
        } else {
            cli_error("service start: unknown option '%s'", a);
            goto out;
        }
    }
    if (i >= argc) {
        cli_error("service start: no command given (... -- CMD [ARGS...])");
        goto out;
    }
    o.argv = argv + i;
    o.env = ne ? env : NULL;
    o.secret_env = nse ? senv : NULL;
    sp_error err = {0};
    char *js = NULL;
    int r = sp_ws_service_start(argv[1], &o, &js, &err);
    if (r < 0 && !js) {
        rc = fail(&err);
        goto out;
    }
    if (r < 0) {
        cli_error("%s", err.message);
        rc = EXIT_SERVICE_FAILED;
    } else {
        json_t *st = json_loads(js, 0, NULL);
        printf("service %s %s (pid %lld)\n", o.name,
               json_string_value(json_object_get(st, "state")),
               (long long)json_integer_value(json_object_get(st, "pid")));
        json_decref(st);
        rc = 0;
    }
    free(js);
out:
    free(env);
    free(senv);
    return rc;
}

static int svc_logs(int argc, char **argv)
{
    if (argc < 3 || argv[1][0] == '-' || argv[2][0] == '-') {
        cli_error("service logs: %s", svc_usage);
        return EXIT_SP_FAILURE;
    }
    double tail = -1;
    bool follow = false, want_err = false;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") == 0) {
            follow = true;
        } else if (strcmp(argv[i], "--stderr") == 0) {
            want_err = true;
        } else if ((strcmp(argv[i], "--tail") == 0 || strcmp(argv[i], "-n") == 0) &&
                   i + 1 < argc) {
            if (parse_num("--tail", argv[++i], 0, 1e9, &tail) < 0)
                return EXIT_SP_FAILURE;
        } else {
            cli_error("service logs: unknown option '%s'", argv[i]);
            return EXIT_SP_FAILURE;
        }
    }
    int64_t cursor = -1;
    for (;;) {
        sp_ws_output o;
        sp_error err = {0};
        if (sp_ws_service_logs(argv[1], argv[2], want_err, cursor,
                               cursor < 0 ? (long)tail : -1, 0,
                               follow ? 30.0 : 0, &o, &err) < 0)
            return fail(&err);
        if (o.truncated)
            printf("[sandpit: %llu bytes of older output were dropped]\n",
                   (unsigned long long)o.dropped);
        fflush(stdout);
        if (o.len && write_all(1, o.data, o.len) < 0) {
            sp_ws_output_free(&o);
            return EXIT_SP_FAILURE;
        }
        bool more = o.len > 0;
        bool ended = o.ended;
        cursor = (int64_t)o.next_cursor;
        sp_ws_output_free(&o);
        if (ended || (!follow && !more))
            return 0;
    }
}

int cmd_service(int argc, char **argv)
{
    if (argc < 2) {
        cli_error("service: %s", svc_usage);
        return EXIT_SP_FAILURE;
    }
    const char *verb = argv[1];
    argc--;
    argv++;
    /* NAME and SVC may follow the options (NAME alone for ls). */
    static const char *const with_value[] = {
        "-e", "--env", "--secret-env", "--cwd", "-w", "--ready",
        "--ready-timeout", "--restart", "--grace", "--tail", NULL};
    bool ls = strcmp(verb, "ls") == 0 || strcmp(verb, "list") == 0;
    cli_permute(argc, argv, with_value, ls ? 1 : 2);
    if (strcmp(verb, "start") == 0)
        return svc_start(argc, argv);
    if (strcmp(verb, "logs") == 0)
        return svc_logs(argc, argv);
    sp_error err = {0};
    if (strcmp(verb, "ls") == 0 || strcmp(verb, "list") == 0) {
        bool as_json = argc == 3 && strcmp(argv[2], "--json") == 0;
        if (argc < 2 || (argc > 2 && !as_json) || argv[1][0] == '-') {
            cli_error("service ls: usage: sandpit service ls NAME [--json]");
            return EXIT_SP_FAILURE;
        }
        char *text = sp_ws_service_status_json(argv[1], NULL, &err);
        if (!text)
            return fail(&err);
        if (as_json) {
            puts(text);
        } else {
            json_t *a = json_loads(text, 0, NULL);
            printf("%-24s %-10s %8s %5s %8s\n", "SERVICE", "STATE", "PID",
                   "EXIT", "RESTARTS");
            size_t i;
            json_t *s;
            json_array_foreach(a, i, s) {
                json_t *pid = json_object_get(s, "pid");
                json_t *ec = json_object_get(s, "exit_code");
                char pb[16] = "-", eb[16] = "-";
                if (json_is_integer(pid))
                    snprintf(pb, sizeof(pb), "%lld", (long long)json_integer_value(pid));
                if (json_is_integer(ec))
                    snprintf(eb, sizeof(eb), "%lld", (long long)json_integer_value(ec));
                printf("%-24s %-10s %8s %5s %8lld\n",
                       json_string_value(json_object_get(s, "name")),
                       json_string_value(json_object_get(s, "state")), pb, eb,
                       (long long)json_integer_value(json_object_get(s, "restarts")));
            }
            json_decref(a);
        }
        free(text);
        return 0;
    }
    if (argc < 3 || argv[1][0] == '-' || argv[2][0] == '-') {
        cli_error("service %s: %s", verb, svc_usage);
        return EXIT_SP_FAILURE;
    }
    if (strcmp(verb, "status") == 0) {
        bool as_json = argc == 4 && strcmp(argv[3], "--json") == 0;
        if (argc > 3 && !as_json) {
            cli_error("service status: unknown option '%s'", argv[3]);
            return EXIT_SP_FAILURE;
        }
        char *text = sp_ws_service_status_json(argv[1], argv[2], &err);
        if (!text)
            return fail(&err);
        if (as_json) {
            puts(text);
        } else {
            json_t *o = json_loads(text, 0, NULL);
            print_status(o);
            json_decref(o);
        }
        free(text);
        return 0;
    }
    if (strcmp(verb, "stop") == 0) {
        double grace = -1;
        if (argc == 5 && strcmp(argv[3], "--grace") == 0) {
            if (parse_num("--grace", argv[4], 0, 3600, &grace) < 0)
                return EXIT_SP_FAILURE;
        } else if (argc != 3) {
            cli_error("service stop: usage: sandpit service stop NAME SVC "
                      "[--grace S]");
            return EXIT_SP_FAILURE;
        }
        char *js = NULL;
        if (sp_ws_service_stop(argv[1], argv[2], grace, &js, &err) < 0)
            return fail(&err);
        json_t *o = json_loads(js, 0, NULL);
        const char *by = json_string_value(json_object_get(o, "stopped_by"));
        if (by)
            printf("service %s stopped (%s)\n", argv[2],
                   strcmp(by, "KILL") == 0 ? "SIGKILL after the grace period"
                                           : "SIGTERM");
        else
            printf("service %s was not running\n", argv[2]);
        json_decref(o);
        free(js);
        return 0;
    }
    cli_error("service: unknown verb '%s' (%s)", verb, svc_usage);
    return EXIT_SP_FAILURE;
}
