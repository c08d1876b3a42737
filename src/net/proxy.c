/* proxy.c — the egress proxy's event loop: accept on listening sockets
 * handed over from the sandbox, read a request head, check it against the
 * allow list, resolve in a forked child, check every address, connect to
 * the checked address and pipe bytes. One epoll fd, non-blocking, no
 * threads; the pure parsers live in proxy_parse.c. */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "util.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

/* Per-direction relay buffer: holds a whole TLS record (5 + 16384) so the
 * ClientHello can be judged before a byte of it goes upstream. */
#define RELAY_BUF (32 * 1024)
/* A direction switches to splice() after this many bytes (short
 * exchanges keep the buffer: no pipe fds for them); its pipe asks for
 * SPLICE_PIPE bytes (fewer, larger splices: a bulk download moves about a
 * pipe a call) while fewer than SPLICE_BIG_PIPES directions hold one (pipe
 * memory counts against the user's limit, shared with their other
 * programs), else SPLICE_PIPE_MIN, which is also the fallback when the
 * kernel refuses the larger size (per-user limit, pipe-max-size); what it
 * got is what pcap records. */
#define SPLICE_AFTER (64 * 1024)
#define SPLICE_PIPE (1024 * 1024)
#define SPLICE_PIPE_MIN (256 * 1024)
#define SPLICE_BIG_PIPES 16
/* Events taken from epoll per dispatch, and accepts per listener event:
 * bounded so one busy source cannot starve the embedding loop. */
#define MAX_EVENTS 64
#define MAX_ACCEPTS 32
/* After an error response: how long to drain the client's unread input so
 * that close() sends FIN, not RST (which could destroy the response). */
#define LINGER_MS 1000
/* A listener that hit EMFILE rests this long instead of spinning. */
#define LISTEN_PAUSE_MS 100
/* How often reaping is polled when pidfds are unavailable. */
#define REAP_POLL_MS 100
/* Answers of the resolver child are kept this long (the system resolver
 * tells no TTL), for this many names: a burst of requests to one host
 * (pip, npm, git) pays one fork and lookup, not one each. Every request
 * still checks the addresses it connects to (have_addresses); failed
 * lookups are not kept. */
#define DNS_CACHE_N 64
#define DNS_CACHE_MS 10000

enum kind { H_LISTENER = 1, H_CLIENT, H_UPSTREAM, H_RESOLVER, H_REAP };

struct handle {
    enum kind kind;
    void *ptr;
};

enum state {
    ST_READ_HEAD,
    ST_RESOLVE_WAIT, /* waiting for a free resolver slot */
    ST_RESOLVING,
    ST_CONNECTING,
    ST_SNI,          /* CONNECT answered; judging the client's first bytes */
    ST_RELAY,
    ST_RESPOND,      /* writing the proxy's own response */
    ST_LINGER,       /* response written; draining client input */
};

struct buf {
    char *d;
    size_t cap, off, len;
    /* Zero-copy relay (splice through a pipe) once a direction is past the
     * point where the proxy needs to look at its bytes: pfd[0] read end,
     * pfd[1] write end, plen bytes in the pipe, pcap its capacity. Only
     * with len == 0; from then on every byte of the direction goes through
     * the pipe, so ordering is kept. */
    bool piped, big; /* big: counted in p->n_big_pipes */
    int pfd[2];
    size_t plen, pcap;
};

struct conn {
    struct sp_proxy *p;
    struct conn *prev, *next; /* p->conns, or p->dead once closed */
    struct conn *qnext;       /* p->queue (ST_RESOLVE_WAIT) */
    bool dead, logged, queued;
    enum state st;
    int cfd, ufd;
    struct handle hc, hu, hr;
    uint32_t cmask, umask; /* events registered (0: not in epoll) */
    uint64_t deadline_us;
    struct buf up, down;
    struct sp_proxy_request req;
    const struct sp_proxy_rule *rule;
    uint64_t body_left;    /* plain HTTP: body bytes still to forward */
    size_t scanned;        /* head bytes already searched for CRLFCRLF */
    bool c_eof, u_eof, c_shut, u_shut, saw_response;
    /* resolver child */
    pid_t rpid;
    int rpidfd, rfd;
    struct sockaddr_storage addrs[SP_PROXY_MAX_ADDRS];
    size_t naddrs, ai;
    int last_errno;
    uint64_t start_us;
    struct sp_proxy_event ev;
};

struct listener {
    int fd;
    struct handle h;
    bool paused;
    uint64_t resume_us;
};

struct reaper {
    pid_t pid;
    int pidfd;
    struct handle h;
    struct reaper *next;
};

struct dns_entry {
    char host[256];             /* "" when free */
    uint64_t expires_us;
    size_t n;
    struct sockaddr_storage a[SP_PROXY_MAX_ADDRS];
};

struct sp_proxy {
    struct sp_proxy_config cfg;
    struct dns_entry *dns;      /* DNS_CACHE_N entries, or NULL */
    unsigned dns_next;          /* the entry the next insert may reuse */
    int epfd;
    struct listener *ls;
    size_t n_ls;
    struct conn *conns, *dead;
    struct conn *queue;
    unsigned n_conns, n_resolvers;
    unsigned n_big_pipes;   /* directions holding a SPLICE_PIPE pipe */
    bool closing;           /* in sp_proxy_free: start no new lookups */
    struct reaper *reap;
    sp_proxy_log_fn log_fn;
    void *log_ctx;
    struct sp_proxy_event *ring;
    uint64_t seq;
    char allowed_text[512]; /* "pypi.org, *.pythonhosted.org" for 403s */
};

/* What the resolver child writes back: one write(), below PIPE_BUF, so it
 * arrives whole or not at all. */
struct resolve_msg {
    int32_t gai_err;
    uint32_t n;
    struct {
        uint8_t family;
        uint8_t addr[16];
    } a[SP_PROXY_MAX_ADDRS];
};
_Static_assert(sizeof(struct resolve_msg) <= 512, "resolver reply too big");

/* ---- small helpers -------------------------------------------------------- */

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int ep_set(struct sp_proxy *p, int fd, struct handle *h,
                  uint32_t *reg, uint32_t want)
{
    if (fd < 0 || *reg == want)
        return 0;
    struct epoll_event ev = {.events = want, .data.ptr = h};
    int op = want == 0 ? EPOLL_CTL_DEL : *reg == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(p->epfd, op, fd, &ev) < 0 && op != EPOLL_CTL_DEL)
        return -errno;
    *reg = want;
    return 0;
}

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t len,
                      bool with_port)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        port = ntohs(s4->sin_port);
        if (with_port)
            snprintf(out, len, "%s:%u", ip, port);
        else
            snprintf(out, len, "%s", ip);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        port = ntohs(s6->sin6_port);
        if (with_port)
            snprintf(out, len, "[%s]:%u", ip, port);
        else
            snprintf(out, len, "%s", ip);
    } else {
        snprintf(out, len, "?");
    }
}

static void rule_text(const struct sp_proxy_rule *r, char *out, size_t len)
{
    bool v6 = strchr(r->host, ':') != NULL;
    if (r->port)
        snprintf(out, len, v6 ? "[%s]:%u" : "%s:%u", r->host, r->port);
    else
        snprintf(out, len, "%s", r->host);
}

static void sanitize(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

static bool buf_alloc(struct buf *b, size_t cap)
{
    if (b->d)
        return true;
    b->d = malloc(cap);
    if (!b->d)
        return false;
    b->cap = cap;
    b->off = b->len = 0;
    return true;
}

static size_t buf_space(struct buf *b)
{
    if (b->off > 0 && b->off + b->len == b->cap) {
        memmove(b->d, b->d + b->off, b->len);
        b->off = 0;
    }
    return b->cap - b->off - b->len;
}

/* Bytes held for the other side: in the buffer or in the pipe. */
static size_t pending(const struct buf *b)
{
    return b->len + b->plen;
}

/* Room to read more into this direction. */
static bool has_room(struct buf *b)
{
    return b->piped ? b->plen < b->pcap : buf_space(b) > 0;
}

static void pipe_close(struct sp_proxy *p, struct buf *b)
{
    if (!b->piped)
        return;
    close(b->pfd[0]);
    close(b->pfd[1]);
    if (b->big)
        p->n_big_pipes--;
    b->piped = b->big = false;
    b->plen = 0;
}

static void buf_consume(struct buf *b, size_t n)
{
    b->off += n;
    b->len -= n;
    if (b->len == 0)
        b->off = 0;
}

/* ---- logging --------------------------------------------------------------- */

static void emit(struct conn *c)
{
    struct sp_proxy *p = c->p;
    if (c->logged)
        return;
    c->logged = true;
    struct sp_proxy_event *ev = &c->ev;
    ev->seq = ++p->seq;
    ev->duration_ms = (sp_now_us() - c->start_us) / 1000;
    snprintf(ev->method, sizeof(ev->method), "%s", c->req.method);
    snprintf(ev->host, sizeof(ev->host), "%s", c->req.host);
    ev->port = c->req.port;
    if (c->rule && !ev->rule[0])
        rule_text(c->rule, ev->rule, sizeof(ev->rule));
    sanitize(ev->client);
    sanitize(ev->method);
    sanitize(ev->host);
    sanitize(ev->rule);
    sanitize(ev->reason);
    sanitize(ev->upstream);
    if (p->ring && p->cfg.log_ring)
        p->ring[(ev->seq - 1) % p->cfg.log_ring] = *ev;
    if (p->log_fn)
        p->log_fn(p->log_ctx, ev);
}

__attribute__((format(printf, 2, 3))) static void set_reason(struct conn *c,
                                                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->ev.reason, sizeof(c->ev.reason), fmt, ap);
    va_end(ap);
}

/* ---- resolver children ------------------------------------------------------ */

static int pidfd_open_(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static void reaper_free(struct sp_proxy *p, struct reaper *r)
{
    if (r->pidfd >= 0) {
        epoll_ctl(p->epfd, EPOLL_CTL_DEL, r->pidfd, NULL);
        close(r->pidfd);
    }
    free(r);
}

/* Has the child gone (reaped now, or by someone else)? */
static bool try_reap(pid_t pid, int pidfd)
{
    if (pidfd >= 0) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG) < 0)
            return errno != EINTR; /* ECHILD: the embedder reaped it */
        return si.si_pid != 0;
    }
    pid_t r = waitpid(pid, NULL, WNOHANG);
    return r != 0 && !(r < 0 && errno == EINTR);
}

/* Kill a resolver child and reap it now or later; takes the pidfd. */
static void child_dispose(struct sp_proxy *p, pid_t pid, int pidfd)
{
    if (pid <= 0)
        return;
    if (pidfd >= 0)
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    else if (waitpid(pid, NULL, WNOHANG) == 0)
        kill(pid, SIGKILL); /* still our unreaped child: the pid is ours */
    else
        return;
    if (try_reap(pid, pidfd)) {
        if (pidfd >= 0)
            close(pidfd);
        return;
    }
    struct reaper *r = calloc(1, sizeof(*r));
    if (!r) {
        /* Out of memory: block; a SIGKILLed child goes quickly. */
        if (pidfd >= 0) {
            siginfo_t si;
            waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED);
            close(pidfd);
        } else {
            waitpid(pid, NULL, 0);
        }
        return;
    }
    r->pid = pid;
    r->pidfd = pidfd;
    r->h = (struct handle){H_REAP, r};
    if (pidfd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &r->h};
        if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, pidfd, &ev) < 0) {
            close(r->pidfd);
            r->pidfd = -1; /* fall back to polling by pid */
        }
    }
    r->next = p->reap;
    p->reap = r;
}

static void reap_poll(struct sp_proxy *p, struct reaper *only)
{
    for (struct reaper **rp = &p->reap; *rp;) {
        struct reaper *r = *rp;
        if ((only == NULL || r == only) &&
            (only != NULL || r->pidfd < 0) && try_reap(r->pid, r->pidfd)) {
            *rp = r->next;
            reaper_free(p, r);
            continue;
        }
        rp = &r->next;
    }
}

/* In the child: look the name up and write the answer. Only _exit()s. */
__attribute__((noreturn)) static void resolver_child(const char *host, int wfd)
{
    struct resolve_msg m;
    memset(&m, 0, sizeof(m));
    /* Close every inherited fd but the reply pipe and stdio: client
     * sockets must not stay open in here after the proxy closes them. */
    if (wfd > 3)
        syscall(SYS_close_range, 3u, (unsigned)wfd - 1, 0u);
    syscall(SYS_close_range, (unsigned)wfd + 1, ~0u, 0u);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo *res = NULL;
    m.gai_err = getaddrinfo(host, NULL, &hints, &res);
    for (struct addrinfo *ai = res; ai && m.n < SP_PROXY_MAX_ADDRS;
         ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)ai->ai_addr;
            m.a[m.n].family = AF_INET;
            memcpy(m.a[m.n].addr, &s4->sin_addr, 4);
            m.n++;
        } else if (ai->ai_family == AF_INET6) {
            const struct sockaddr_in6 *s6 =
                (const struct sockaddr_in6 *)ai->ai_addr;
            m.a[m.n].family = AF_INET6;
            memcpy(m.a[m.n].addr, &s6->sin6_addr, 16);
            m.n++;
        }
    }
    ssize_t w = write(wfd, &m, sizeof(m));
    _exit(w == (ssize_t)sizeof(m) ? 0 : 1);
}

/* ---- connection teardown -------------------------------------------------- */

static void start_queued(struct sp_proxy *p);

static void resolver_stop(struct conn *c)
{
    struct sp_proxy *p = c->p;
    uint32_t m = c->rfd >= 0 ? EPOLLIN : 0;
    if (c->rfd >= 0) {
        ep_set(p, c->rfd, &c->hr, &m, 0);
        close(c->rfd);
        c->rfd = -1;
    }
    if (c->rpid > 0) {
        child_dispose(p, c->rpid, c->rpidfd);
        c->rpid = 0;
        c->rpidfd = -1;
        p->n_resolvers--;
        start_queued(p); /* a slot is free */
    }
}

static void unqueue(struct conn *c)
{
    if (!c->queued)
        return;
    for (struct conn **q = &c->p->queue; *q; q = &(*q)->qnext)
        if (*q == c) {
            *q = c->qnext;
            break;
        }
    c->queued = false;
}

static void close_upstream(struct conn *c)
{
    if (c->ufd < 0)
        return;
    ep_set(c->p, c->ufd, &c->hu, &c->umask, 0);
    close(c->ufd);
    c->ufd = -1;
}

static void conn_close(struct conn *c)
{
    struct sp_proxy *p = c->p;
    if (c->dead)
        return;
    c->dead = true;
    unqueue(c);
    resolver_stop(c);
    close_upstream(c);
    pipe_close(p, &c->up);
    pipe_close(p, &c->down);
    if (c->cfd >= 0) {
        ep_set(p, c->cfd, &c->hc, &c->cmask, 0);
        close(c->cfd);
        c->cfd = -1;
    }
    if (c->req.method[0] && !c->logged)
        emit(c);
    /* move from conns to dead; freed at the end of the dispatch */
    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->next = p->dead;
    p->dead = c;
    p->n_conns--;
}

static void free_dead(struct sp_proxy *p)
{
    while (p->dead) {
        struct conn *c = p->dead;
        p->dead = c->next;
        free(c->up.d);
        free(c->down.d);
        free(c);
    }
}

/* ---- the proxy's own responses --------------------------------------------- */

static const char *status_text(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* The reason phrase carries the text too (at most SP_PROXY_PHRASE_MAX
 * bytes, control characters as '?'): clients of a refused CONNECT show the
 * status line, never the body (Python's "Tunnel connection failed: 403
 * Forbidden: sandpit: egress to ... denied: ..."). */
static int format_response(char *out, size_t len, int status, const char *body)
{
    char phrase[SP_PROXY_PHRASE_MAX + 1];
    size_t k = 0;
    for (; body[k] && body[k] != '\n' && k < SP_PROXY_PHRASE_MAX; k++) {
        unsigned char ch = (unsigned char)body[k];
        phrase[k] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    phrase[k] = '\0';
    int n = snprintf(out, len,
                     "HTTP/1.1 %d %s%s%s\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\n"
                     "Connection: close\r\n"
                     "X-Sandpit-Proxy: %s\r\n"
                     "\r\n%s",
                     status, status_text(status), k ? ": " : "", phrase,
                     strlen(body), status == 403 ? "denied" : "error", body);
    return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

static void pump_respond(struct conn *c);

/* Answer the client with status and "sandpit: <text>", log, then close.
 * The reason in the log is the text. */
__attribute__((format(printf, 4, 5))) static void
respond(struct conn *c, int status, int decision, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    unqueue(c);
    resolver_stop(c);
    close_upstream(c);
    snprintf(c->ev.reason, sizeof(c->ev.reason), "%.*s",
             (int)sizeof(c->ev.reason) - 1, text);
    c->ev.status = status;
    c->ev.decision = decision;
    emit(c);

    char body[1100];
    snprintf(body, sizeof(body), "sandpit: %s\n", text);
    free(c->down.d);
    c->down = (struct buf){0};
    if (!buf_alloc(&c->down, strlen(body) + 256 + SP_PROXY_PHRASE_MAX)) {
        conn_close(c);
        return;
    }
    int n = format_response(c->down.d, c->down.cap, status, body);
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->down.len = (size_t)n;
    c->st = ST_RESPOND;
    c->deadline_us = sp_now_us() + (uint64_t)c->p->cfg.idle_timeout_ms * 1000;
    pump_respond(c);
}

static void pump_respond(struct conn *c)
{
    while (c->st == ST_RESPOND && c->down.len > 0) {
        ssize_t n = send(c->cfd, c->down.d + c->down.off, c->down.len,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (ep_set(c->p, c->cfd, &c->hc, &c->cmask, EPOLLOUT) < 0)
                conn_close(c);
            return;
        }
        if (n <= 0) {
            conn_close(c);
            return;
        }
        buf_consume(&c->down, (size_t)n);
    }
    if (c->st == ST_RESPOND) {
        shutdown(c->cfd, SHUT_WR);
        c->st = ST_LINGER;
        c->deadline_us = sp_now_us() + LINGER_MS * 1000ull;
        if (ep_set(c->p, c->cfd, &c->hc, &c->cmask, EPOLLIN) < 0)
            conn_close(c);
    }
}

static void pump_linger(struct conn *c)
{
    char junk[4096];
    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(c->cfd, junk, sizeof(junk), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0)
            break;
    }
    conn_close(c);
}

/* "not in the allow list (allowed: a, b)" and friends. */
static void build_allowed_text(struct sp_proxy *p)
{
    char *o = p->allowed_text;
    size_t left = sizeof(p->allowed_text);
    o[0] = '\0';
    if (p->cfg.n_rules == 0) {
        snprintf(o, left, "nothing");
        return;
    }
    for (size_t i = 0; i < p->cfg.n_rules; i++) {
        char rt[300];
        rule_text(&p->cfg.rules[i], rt, sizeof(rt));
        size_t used = strlen(p->allowed_text);
        if (used + strlen(rt) + 8 >= sizeof(p->allowed_text)) {
            snprintf(p->allowed_text + used, sizeof(p->allowed_text) - used,
                     "%s...", i ? ", " : "");
            return;
        }
        snprintf(p->allowed_text + used, sizeof(p->allowed_text) - used,
                 "%s%s", i ? ", " : "", rt);
    }
}

/* ---- connecting ------------------------------------------------------------- */

static void pump(struct conn *c);
static void connected(struct conn *c);
static void on_connect_ready(struct conn *c);

static void hostport(const struct conn *c, char *out, size_t len)
{
    snprintf(out, len, strchr(c->req.host, ':') ? "[%s]:%u" : "%s:%u",
             c->req.host, c->req.port);
}

/* Try the addresses from c->ai on; 502 when none is left. */
static void connect_next(struct conn *c)
{
    struct sp_proxy *p = c->p;
    close_upstream(c);
    while (c->ai < c->naddrs) {
        struct sockaddr_storage *ss = &c->addrs[c->ai++];
        addr_text(ss, c->ev.upstream, sizeof(c->ev.upstream), true);
        int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        0);
        if (fd < 0) {
            c->last_errno = errno;
            continue;
        }
        socklen_t sl = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                : sizeof(struct sockaddr_in6);
        int r = connect(fd, (struct sockaddr *)ss, sl);
        if (r < 0 && errno != EINPROGRESS) {
            c->last_errno = errno;
            close(fd);
            continue;
        }
        c->ufd = fd;
        if (r == 0) {
            connected(c);
            return;
        }
        c->st = ST_CONNECTING;
        /* On loopback and near hosts the handshake is often over by now:
         * go on at once rather than a trip through the event loop. */
        struct pollfd q = {fd, POLLOUT, 0};
        if (poll(&q, 1, 0) == 1) {
            on_connect_ready(c);
            return;
        }
        if (ep_set(p, c->ufd, &c->hu, &c->umask, EPOLLOUT) < 0) {
            conn_close(c);
        }
        return;
    }
    char hp[300];
    hostport(c, hp, sizeof(hp));
    respond(c, 502, SP_PROXY_FAILED, "cannot connect to %s (%s): %s", hp,
            c->ev.upstream, strerror(c->last_errno ? c->last_errno : EHOSTUNREACH));
}

static void on_connect_ready(struct conn *c)
{
    int e = 0;
    socklen_t el = sizeof(e);
    if (getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
        e = errno;
    if (e == EINPROGRESS || e == EALREADY)
        return;
    if (e != 0) {
        c->last_errno = e;
        connect_next(c);
        return;
    }
    connected(c);
}

/* Check every address; connect to the checked ones only. */
static void have_addresses(struct conn *c)
{
    struct sp_proxy *p = c->p;
    char hp[300];
    hostport(c, hp, sizeof(hp));
    if (c->naddrs == 0) {
        respond(c, 502, SP_PROXY_FAILED, "cannot resolve %s: no addresses",
                c->req.host);
        return;
    }
    /* An IP literal the operator named explicitly is allowed whatever its
     * class; everything reached through a name is checked. */
    bool named_ip = c->req.host_is_ip && c->rule != NULL;
    for (size_t i = 0; i < c->naddrs && !named_ip; i++) {
        enum sp_addr_class k = sp_proxy_addr_class((struct sockaddr *)&c->addrs[i]);
        if (!sp_proxy_addr_allowed(k, p->cfg.allow_private)) {
            char at[INET6_ADDRSTRLEN + 8];
            addr_text(&c->addrs[i], at, sizeof(at), false);
            bool priv = sp_proxy_addr_allowed(k, true);
            respond(c, 403, SP_PROXY_DENIED,
                    "egress to %s denied: %s resolves to %s, a %s address%s",
                    hp, c->req.host, at, sp_proxy_addr_class_name(k),
                    priv ? " (private addresses are not allowed)" : "");
            return;
        }
    }
    for (size_t i = 0; i < c->naddrs; i++) {
        if (c->addrs[i].ss_family == AF_INET)
            ((struct sockaddr_in *)&c->addrs[i])->sin_port = htons(c->req.port);
        else
            ((struct sockaddr_in6 *)&c->addrs[i])->sin6_port = htons(c->req.port);
    }
    c->ai = 0;
    c->deadline_us = sp_now_us() + (uint64_t)p->cfg.connect_timeout_ms * 1000;
    connect_next(c);
}

/* A fresh cached answer for c's host: its addresses into c, then on as a
 * lookup would (the checks are made again). Returns true when used. */
static bool dns_cached(struct sp_proxy *p, struct conn *c)
{
    uint64_t now = sp_now_us();
    for (size_t i = 0; p->dns && i < DNS_CACHE_N; i++) {
        struct dns_entry *d = &p->dns[i];
        if (!d->host[0] || d->expires_us <= now ||
            strcmp(d->host, c->req.host) != 0)
            continue;
        memcpy(c->addrs, d->a, d->n * sizeof(d->a[0]));
        c->naddrs = d->n;
        c->ev.dns_cached = true;
        have_addresses(c);
        return true;
    }
    return false;
}

static void dns_keep(struct sp_proxy *p, const struct conn *c)
{
    if (c->naddrs == 0 || strlen(c->req.host) >= sizeof(p->dns[0].host))
        return;
    if (!p->dns && !(p->dns = calloc(DNS_CACHE_N, sizeof(*p->dns))))
        return; /* no cache: every request looks up */
    uint64_t now = sp_now_us();
    struct dns_entry *d = NULL;
    for (size_t i = 0; i < DNS_CACHE_N && !d; i++)
        if (!p->dns[i].host[0] || p->dns[i].expires_us <= now ||
            strcmp(p->dns[i].host, c->req.host) == 0)
            d = &p->dns[i];
    if (!d) /* all fresh: the oldest insert goes */
        d = &p->dns[p->dns_next++ % DNS_CACHE_N];
    snprintf(d->host, sizeof(d->host), "%s", c->req.host);
    d->n = c->naddrs;
    memcpy(d->a, c->addrs, c->naddrs * sizeof(c->addrs[0]));
    d->expires_us = now + DNS_CACHE_MS * 1000ull;
}

static void spawn_resolver(struct conn *c)
{
    struct sp_proxy *p = c->p;
    int fds[2] = {-1, -1};
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
        respond(c, 502, SP_PROXY_FAILED, "cannot resolve %s: %s", c->req.host,
                strerror(errno));
        return;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        respond(c, 502, SP_PROXY_FAILED, "cannot resolve %s: %s", c->req.host,
                strerror(e));
        return;
    }
    if (pid == 0) {
        /* Die with the proxy; a lookup outliving it is of no use. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        resolver_child(c->req.host, fds[1]);
    }
    close(fds[1]);
    c->rfd = fds[0];
    c->rpid = pid;
    c->rpidfd = pidfd_open_(pid);
    p->n_resolvers++;
    c->st = ST_RESOLVING;
    uint32_t m = 0;
    if (ep_set(p, c->rfd, &c->hr, &m, EPOLLIN) < 0) {
        respond(c, 502, SP_PROXY_FAILED, "cannot resolve %s: epoll failed",
                c->req.host);
        return;
    }
}

static void start_queued(struct sp_proxy *p)
{
    while (!p->closing && p->queue && p->n_resolvers < SP_PROXY_MAX_RESOLVERS) {
        struct conn *c = p->queue;
        p->queue = c->qnext;
        c->queued = false;
        spawn_resolver(c);
    }
}

static void on_resolver(struct conn *c)
{
    struct resolve_msg m;
    ssize_t n = read(c->rfd, &m, sizeof(m));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    bool ok = n == (ssize_t)sizeof(m);
    resolver_stop(c);
    if (!ok) {
        respond(c, 502, SP_PROXY_FAILED, "cannot resolve %s: the resolver failed",
                c->req.host);
        return;
    }
    if (m.gai_err != 0) {
        respond(c, 502, SP_PROXY_FAILED, "cannot resolve %s: %s", c->req.host,
                gai_strerror(m.gai_err));
        return;
    }
    c->naddrs = 0;
    for (uint32_t i = 0; i < m.n && i < SP_PROXY_MAX_ADDRS; i++) {
        struct sockaddr_storage *ss = &c->addrs[c->naddrs];
        memset(ss, 0, sizeof(*ss));
        if (m.a[i].family == AF_INET) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
            s4->sin_family = AF_INET;
            memcpy(&s4->sin_addr, m.a[i].addr, 4);
        } else if (m.a[i].family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
            s6->sin6_family = AF_INET6;
            memcpy(&s6->sin6_addr, m.a[i].addr, 16);
        } else {
            continue;
        }
        c->naddrs++;
    }
    dns_keep(c->p, c);
    have_addresses(c);
}

/* ---- requests ------------------------------------------------------------------ */

static bool host_listed(const struct sp_proxy_config *cfg, const char *host)
{
    /* The host matches some rule on some port: the port is what failed. */
    for (size_t i = 0; i < cfg->n_rules; i++) {
        struct sp_proxy_config one = *cfg;
        struct sp_proxy_rule r = cfg->rules[i];
        uint16_t port = r.port ? r.port : 443;
        one.rules = &r;
        one.n_rules = 1;
        if (sp_proxy_match(&one, host, port))
            return true;
    }
    return false;
}

static void handle_request(struct conn *c, size_t head_len)
{
    struct sp_proxy *p = c->p;
    char hp[300];
    hostport(c, hp, sizeof(hp));
    c->rule = sp_proxy_match(&p->cfg, c->req.host, c->req.port);
    if (!c->rule) {
        if (c->req.host_is_ip)
            respond(c, 403, SP_PROXY_DENIED,
                    "egress to %s denied: IP addresses are refused unless a "
                    "rule names them (allowed: %s)",
                    hp, p->allowed_text);
        else if (host_listed(&p->cfg, c->req.host))
            respond(c, 403, SP_PROXY_DENIED,
                    "egress to %s denied: port %u is not allowed for %s "
                    "(allowed: %s)",
                    hp, c->req.port, c->req.host, p->allowed_text);
        else
            respond(c, 403, SP_PROXY_DENIED,
                    "egress to %s denied: not in the allow list (allowed: %s)",
                    hp, p->allowed_text);
        return;
    }

    /* Replace the head buffer by the relay buffer holding what goes
     * upstream first: the rewritten head (plain HTTP) or any early tunnel
     * bytes (CONNECT). */
    size_t extra = c->up.len - head_len;
    const char *rest = c->up.d + c->up.off + head_len;
    struct buf nb = {0};
    if (c->req.is_connect) {
        if (!buf_alloc(&nb, RELAY_BUF)) {
            conn_close(c);
            return;
        }
        if (extra > nb.cap)
            extra = nb.cap;
        memcpy(nb.d, rest, extra);
        nb.len = extra;
        c->ev.bytes_up = extra;
    } else {
        if (extra > c->req.content_length)
            extra = (size_t)c->req.content_length; /* pipelined bytes: dropped */
        size_t need = head_len + 512 + extra;
        if (!buf_alloc(&nb, need > RELAY_BUF ? need : RELAY_BUF)) {
            conn_close(c);
            return;
        }
        int n = sp_proxy_build_upstream_head(c->up.d + c->up.off, &c->req,
                                             nb.d, nb.cap);
        if (n < 0) {
            free(nb.d);
            respond(c, 431, SP_PROXY_FAILED, "request head too large to forward");
            return;
        }
        memcpy(nb.d + n, rest, extra);
        nb.len = (size_t)n + extra;
        c->body_left = c->req.content_length - extra;
        c->ev.bytes_up = extra;
    }
    free(c->up.d);
    c->up = nb;
    ep_set(p, c->cfd, &c->hc, &c->cmask, 0); /* quiet until connected */

    if (c->req.host_is_ip) {
        sp_proxy_parse_ip(c->req.host, &c->addrs[0]);
        c->naddrs = 1;
        have_addresses(c);
        return;
    }
    if (p->cfg.use_hosts) {
        /* A resolver file: answered from its table, nothing else asked. */
        c->naddrs = sp_proxy_resolver_lookup(&p->cfg, c->req.host, c->addrs,
                                             SP_PROXY_MAX_ADDRS);
        if (c->naddrs == 0) {
            respond(c, 502, SP_PROXY_FAILED,
                    "cannot resolve %s: not in the resolver file", c->req.host);
            return;
        }
        have_addresses(c);
        return;
    }
    if (dns_cached(p, c))
        return;
    c->deadline_us = sp_now_us() + (uint64_t)p->cfg.resolve_timeout_ms * 1000;
    if (p->n_resolvers >= SP_PROXY_MAX_RESOLVERS) {
        c->st = ST_RESOLVE_WAIT;
        c->queued = true;
        c->qnext = NULL;
        struct conn **q = &p->queue;
        while (*q)
            q = &(*q)->qnext;
        *q = c;
        return;
    }
    spawn_resolver(c);
}

static void connected(struct conn *c)
{
    struct sp_proxy *p = c->p;
    ep_set(p, c->ufd, &c->hu, &c->umask, 0);
    if (!buf_alloc(&c->down, RELAY_BUF)) {
        conn_close(c);
        return;
    }
    c->ev.status = 200;
    c->ev.decision = SP_PROXY_ALLOWED;
    c->deadline_us = sp_now_us() + (uint64_t)p->cfg.idle_timeout_ms * 1000;
    if (c->req.is_connect) {
        static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
        memcpy(c->down.d, ok, sizeof(ok) - 1);
        c->down.len = sizeof(ok) - 1;
        c->st = ST_SNI;
    } else {
        c->st = ST_RELAY;
    }
    pump(c);
}

/* CONNECT: judge the first bytes the client sent into the tunnel. Returns
 * 1 when the tunnel may go on (c->st is then ST_RELAY), 0 to wait for more
 * bytes, -1 when refused (the connection is being closed). */
static int sni_check(struct conn *c)
{
    char sni[SP_PROXY_HOST_MAX + 1];
    if (c->up.len == 0 && c->c_eof) {
        c->st = ST_RELAY; /* nothing was sent: nothing to judge */
        return 1;
    }
    int r = sp_proxy_parse_sni((const uint8_t *)c->up.d + c->up.off, c->up.len,
                               sni, sizeof(sni));
    if (r == -EAGAIN && !c->c_eof)
        return 0; /* wait for the rest of the record */
    const char *why = NULL;
    if (r == 1 && strcmp(sni, c->req.host) != 0) {
        set_reason(c, "TLS server name '%s' differs from the CONNECT host '%s'",
                   sni, c->req.host);
        why = c->ev.reason;
    } else if (r == -EINVAL || (r == -EAGAIN && c->c_eof)) {
        set_reason(c, "malformed TLS ClientHello");
        why = c->ev.reason;
    } else if (r == -ENOTSUP) {
        set_reason(c, "TLS ClientHello split over several records");
        why = c->ev.reason;
    }
    if (why) {
        /* The 200 is out: refuse inside the tunnel with a TLS alert
         * (fatal, unrecognized_name) so the client shows something. */
        static const char alert[] = {0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x70};
        c->ev.decision = SP_PROXY_DENIED;
        c->ev.status = 200;
        emit(c);
        close_upstream(c);
        size_t sp = buf_space(&c->down);
        if (sp >= sizeof(alert)) {
            memcpy(c->down.d + c->down.off + c->down.len, alert, sizeof(alert));
            c->down.len += sizeof(alert);
        }
        c->st = ST_RESPOND;
        c->deadline_us = sp_now_us() + (uint64_t)c->p->cfg.idle_timeout_ms * 1000;
        pump_respond(c);
        return -1;
    }
    c->st = ST_RELAY;
    return 1;
}

/* ---- relaying --------------------------------------------------------------------- */

/* One direction: read src into b, write b to dst. Returns -1 when the
 * connection must close, 1 on progress, 0 otherwise. */
/* splice() to a socket cannot pass MSG_NOSIGNAL: use it only while
 * SIGPIPE is blocked (sandpit run, the supervisor) or ignored. */
static bool sigpipe_safe(void)
{
    sigset_t cur;
    struct sigaction sa;
    if (sigprocmask(SIG_BLOCK, NULL, &cur) == 0 && sigismember(&cur, SIGPIPE) == 1)
        return true;
    return sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN;
}

/* May this direction go zero-copy now? In the relay only, once its bytes
 * need no more looking at (a tunnel past the SNI check; a plain response
 * after its status line was seen; never a request body, which is counted
 * against Content-Length), the buffer is empty and enough has passed. */
static void maybe_pipe(struct conn *c, struct buf *b, size_t read_limit,
                       bool hold, uint64_t count)
{
    if (b->piped || hold || b->len != 0 || count < SPLICE_AFTER ||
        c->st != ST_RELAY || read_limit != SIZE_MAX)
        return;
    if (!c->req.is_connect && (b != &c->down || !c->saw_response))
        return;
    if (!sigpipe_safe())
        return;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
        return; /* e.g. EMFILE: stay with the buffer */
    int sz = -1;
    if (c->p->n_big_pipes < SPLICE_BIG_PIPES)
        sz = fcntl(fds[1], F_SETPIPE_SZ, SPLICE_PIPE);
    b->big = sz >= SPLICE_PIPE;
    if (b->big)
        c->p->n_big_pipes++;
    if (sz < 0)
        sz = fcntl(fds[1], F_SETPIPE_SZ, SPLICE_PIPE_MIN);
    if (sz < 0)
        sz = fcntl(fds[1], F_GETPIPE_SZ);
    if (sz <= 0) {
        close(fds[0]);
        close(fds[1]);
        return;
    }
    b->pfd[0] = fds[0];
    b->pfd[1] = fds[1];
    b->pcap = (size_t)sz;
    b->plen = 0;
    b->piped = true;
}

/* What one pump() call learnt about a direction's two sockets: its source
 * had nothing more to read, or its sink took nothing more (EAGAIN). Neither
 * is asked again in that call: epoll (level-triggered) reports them when
 * they are ready, so the retries would only be wasted system calls. */
struct dir_block {
    bool rd, wr;
};

/* The splice() form of move(): socket -> pipe -> socket. Partial moves are
 * kept in plen; EOF is a 0 from the source. */
static int move_piped(int src, bool *src_eof, int dst, struct buf *b,
                      uint64_t *count, struct dir_block *blk)
{
    int progress = 0;
    if (!*src_eof && !blk->rd && b->plen < b->pcap) {
        ssize_t n = splice(src, NULL, b->pfd[1], NULL, b->pcap - b->plen,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            b->plen += (size_t)n;
            *count += (uint64_t)n;
            progress = 1;
        } else if (n == 0) {
            *src_eof = true;
            progress = 1;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            blk->rd = true;
        } else if (errno != EINTR) {
            return -1;
        }
    }
    if (b->plen > 0 && dst >= 0 && !blk->wr) {
        ssize_t n = splice(b->pfd[0], NULL, dst, NULL, b->plen,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            b->plen -= (size_t)n;
            progress = 1;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            blk->wr = true;
        } else if (n < 0 && errno != EINTR) {
            return -1;
        }
    }
    return progress;
}

static int move(struct conn *c, int src, bool *src_eof, size_t read_limit,
                int dst, bool hold, struct buf *b, uint64_t *count,
                struct dir_block *blk)
{
    maybe_pipe(c, b, read_limit, hold, *count);
    if (b->piped)
        return move_piped(src, src_eof, dst, b, count, blk);
    int progress = 0;
    if (!*src_eof && !blk->rd && read_limit > 0) {
        size_t sp = buf_space(b);
        if (sp > read_limit)
            sp = read_limit;
        if (sp > 0) {
            ssize_t n = recv(src, b->d + b->off + b->len, sp, MSG_DONTWAIT);
            if (n > 0) {
                b->len += (size_t)n;
                *count += (uint64_t)n;
                progress = 1;
                if (src == c->cfd)
                    c->body_left -= c->req.is_connect ? 0 : (uint64_t)n;
            } else if (n == 0) {
                *src_eof = true;
                progress = 1;
            } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                blk->rd = true;
            } else if (errno != EINTR) {
                return -1;
            }
        }
    }
    if (b->len > 0 && !hold && dst >= 0 && !blk->wr) {
        ssize_t n = send(dst, b->d + b->off, b->len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            if (dst == c->cfd && !c->saw_response && !c->req.is_connect) {
                /* note the upstream's status for the log */
                const char *d = b->d + b->off;
                if (b->len >= 12 && memcmp(d, "HTTP/1.", 7) == 0 &&
                    d[8] == ' ' && d[9] >= '1' && d[9] <= '5' &&
                    d[10] >= '0' && d[10] <= '9' && d[11] >= '0' && d[11] <= '9')
                    c->ev.status = (d[9] - '0') * 100 + (d[10] - '0') * 10 +
                                   (d[11] - '0');
                c->saw_response = true;
            }
            buf_consume(b, (size_t)n);
            progress = 1;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            blk->wr = true;
        } else if (n < 0 && errno != EINTR) {
            return -1;
        }
    }
    return progress;
}

static void pump(struct conn *c)
{
    struct sp_proxy *p = c->p;
    bool any = false;
    struct dir_block bu = {false, false}, bd = {false, false};
    for (int round = 0; round < 8; round++) {
        bool http = !c->req.is_connect;
        size_t up_limit = !http ? SIZE_MAX
                          : c->body_left > SIZE_MAX ? SIZE_MAX
                                                    : (size_t)c->body_left;
        int a = move(c, c->cfd, &c->c_eof, up_limit, c->ufd, c->st == ST_SNI,
                     &c->up, &c->ev.bytes_up, &bu);
        if (a < 0)
            goto fail;
        if (c->st == ST_SNI && (c->up.len > 0 || c->c_eof)) {
            int v = sni_check(c);
            if (v < 0)
                return; /* refused */
            if (v > 0)
                a = 1;
        }
        int b = move(c, c->ufd, &c->u_eof, SIZE_MAX, c->cfd, false, &c->down,
                     &c->ev.bytes_down, &bd);
        if (b < 0)
            goto fail;
        if (a == 0 && b == 0)
            break;
        any = true;
    }
    if (any)
        c->deadline_us = sp_now_us() + (uint64_t)p->cfg.idle_timeout_ms * 1000;

    if (c->req.is_connect) {
        if (c->c_eof && pending(&c->up) == 0 && !c->u_shut &&
            c->st == ST_RELAY) {
            shutdown(c->ufd, SHUT_WR);
            c->u_shut = true;
        }
        if (c->u_eof && pending(&c->down) == 0 && !c->c_shut) {
            shutdown(c->cfd, SHUT_WR);
            c->c_shut = true;
        }
        if (c->u_shut && c->c_shut) {
            conn_close(c);
            return;
        }
    } else {
        if (c->c_eof && c->body_left > 0) {
            set_reason(c, "client closed before sending the whole body");
            conn_close(c);
            return;
        }
        if (c->u_eof && pending(&c->down) == 0) {
            conn_close(c);
            return;
        }
    }

    uint32_t cm = 0, um = 0;
    bool read_client = !c->c_eof && (c->req.is_connect || c->body_left > 0);
    if (read_client && has_room(&c->up))
        cm |= EPOLLIN;
    if (pending(&c->down) > 0)
        cm |= EPOLLOUT;
    if (c->st == ST_RELAY) {
        if (!c->u_eof && has_room(&c->down))
            um |= EPOLLIN;
        if (pending(&c->up) > 0)
            um |= EPOLLOUT;
    } else if (!c->u_eof && buf_space(&c->down) > 0) {
        um |= EPOLLIN; /* ST_SNI: a server that speaks first is served */
    }
    if (ep_set(p, c->cfd, &c->hc, &c->cmask, cm) < 0 ||
        ep_set(p, c->ufd, &c->hu, &c->umask, um) < 0)
        goto fail;
    return;
fail:
    if (!c->ev.reason[0])
        set_reason(c, "connection reset");
    conn_close(c);
}

static void on_head(struct conn *c)
{
    struct sp_proxy *p = c->p;
    for (;;) {
        size_t sp = buf_space(&c->up);
        if (sp == 0)
            break;
        ssize_t n = recv(c->cfd, c->up.d + c->up.off + c->up.len, sp, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            if (c->up.len > 0) {
                set_reason(c, "client closed during the request head");
                c->ev.decision = SP_PROXY_FAILED;
                snprintf(c->req.method, sizeof(c->req.method), "-");
            }
            conn_close(c);
            return;
        }
        c->up.len += (size_t)n;
    }
    /* Parse only once the end of the head is in: a client trickling bytes
     * must not make us rescan the whole buffer each time. */
    size_t from = c->scanned > 3 ? c->scanned - 3 : 0;
    bool ready = c->up.len >= p->cfg.header_max || buf_space(&c->up) == 0 ||
                 memmem(c->up.d + from, c->up.len - from, "\r\n\r\n", 4);
    for (size_t i = c->scanned; i < c->up.len && !ready; i++)
        if (c->up.d[i] == '\0' ||
            (c->up.d[i] == '\n' && (i == 0 || c->up.d[i - 1] != '\r')))
            ready = true; /* the parser will refuse it: answer now */
    if (!ready) {
        c->scanned = c->up.len;
        return;
    }
    const char *why = NULL;
    int r = sp_proxy_parse_request(c->up.d, c->up.len, p->cfg.header_max,
                                   &c->req, &why);
    if (r == 0)
        return;
    if (c->req.method[0] == '\0')
        snprintf(c->req.method, sizeof(c->req.method), "-");
    if (r < 0) {
        if (-r == 431)
            respond(c, 431, SP_PROXY_FAILED,
                    "request head larger than %u bytes", p->cfg.header_max);
        else
            respond(c, -r, SP_PROXY_FAILED, "bad request: %s",
                    why ? why : "malformed");
        return;
    }
    handle_request(c, (size_t)r);
}

/* ---- accept and dispatch ------------------------------------------------------- */

static void overload(struct sp_proxy *p, int fd, const struct sockaddr_storage *ss)
{
    char body[128], resp[512];
    snprintf(body, sizeof(body), "sandpit: too many connections (max %u)\n",
             p->cfg.max_conns);
    int n = format_response(resp, sizeof(resp), 503, body);
    if (n > 0)
        (void)!send(fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    /* Drop what the client already sent: closing with unread input sends
     * RST, which can destroy the 503 before the client reads it. */
    shutdown(fd, SHUT_WR);
    for (int i = 0; i < 4; i++)
        if (recv(fd, resp, sizeof(resp), MSG_DONTWAIT) <= 0)
            break;
    close(fd);
    struct sp_proxy_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.seq = ++p->seq;
    ev.time_ms = wall_ms();
    addr_text(ss, ev.client, sizeof(ev.client), true);
    ev.decision = SP_PROXY_FAILED;
    ev.status = 503;
    snprintf(ev.reason, sizeof(ev.reason), "too many connections (max %u)",
             p->cfg.max_conns);
    if (p->ring && p->cfg.log_ring)
        p->ring[(ev.seq - 1) % p->cfg.log_ring] = ev;
    if (p->log_fn)
        p->log_fn(p->log_ctx, &ev);
}

static void on_listener(struct sp_proxy *p, struct listener *l)
{
    for (int i = 0; i < MAX_ACCEPTS; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        memset(&ss, 0, sizeof(ss));
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                /* Rest instead of spinning on a listener we cannot serve. */
                uint32_t m = EPOLLIN;
                ep_set(p, l->fd, &l->h, &m, 0);
                l->paused = true;
                l->resume_us = sp_now_us() + LISTEN_PAUSE_MS * 1000ull;
            }
            return; /* EAGAIN, ECONNABORTED, EINTR...: try on the next event */
        }
        if (p->n_conns >= p->cfg.max_conns) {
            overload(p, fd, &ss);
            continue;
        }
        struct conn *c = calloc(1, sizeof(*c));
        if (!c || !buf_alloc(&c->up, p->cfg.header_max)) {
            free(c);
            close(fd);
            continue;
        }
        c->p = p;
        c->cfd = fd;
        c->ufd = c->rfd = c->rpidfd = -1;
        c->hc = (struct handle){H_CLIENT, c};
        c->hu = (struct handle){H_UPSTREAM, c};
        c->hr = (struct handle){H_RESOLVER, c};
        c->st = ST_READ_HEAD;
        c->start_us = sp_now_us();
        c->deadline_us = c->start_us + (uint64_t)p->cfg.idle_timeout_ms * 1000;
        c->ev.time_ms = wall_ms();
        c->ev.decision = SP_PROXY_FAILED;
        addr_text(&ss, c->ev.client, sizeof(c->ev.client), true);
        c->next = p->conns;
        if (p->conns)
            p->conns->prev = c;
        p->conns = c;
        p->n_conns++;
        /* The listener defers accept until the client has sent something
         * (netplumb.c): read the head now rather than a loop later. */
        on_head(c);
        if (!c->dead && c->st == ST_READ_HEAD &&
            ep_set(p, fd, &c->hc, &c->cmask, EPOLLIN) < 0)
            conn_close(c);
    }
}

static void on_client(struct conn *c)
{
    switch (c->st) {
    case ST_READ_HEAD:
        on_head(c);
        break;
    case ST_SNI:
    case ST_RELAY:
        pump(c);
        break;
    case ST_RESPOND:
        pump_respond(c);
        break;
    case ST_LINGER:
        pump_linger(c);
        break;
    case ST_RESOLVE_WAIT:
    case ST_RESOLVING:
    case ST_CONNECTING:
    default:
        /* not registered in these states; a stale event */
        break;
    }
}

static void on_upstream(struct conn *c)
{
    if (c->st == ST_CONNECTING)
        on_connect_ready(c);
    else if (c->st == ST_SNI || c->st == ST_RELAY)
        pump(c);
}

static void expire(struct sp_proxy *p, uint64_t now)
{
    for (struct conn *c = p->conns, *next = NULL; c; c = next) {
        next = c->next;
        if (c->deadline_us > now)
            continue;
        char hp[300];
        hostport(c, hp, sizeof(hp));
        unsigned ms = 0;
        switch (c->st) {
        case ST_READ_HEAD:
            if (c->up.len == 0) {
                conn_close(c); /* nothing asked, nothing to log */
            } else {
                snprintf(c->req.method, sizeof(c->req.method), "-");
                respond(c, 408, SP_PROXY_FAILED,
                        "no complete request head within %u ms",
                        p->cfg.idle_timeout_ms);
            }
            break;
        case ST_RESOLVE_WAIT:
        case ST_RESOLVING:
            respond(c, 504, SP_PROXY_FAILED, "resolving %s timed out after %u ms",
                    c->req.host, p->cfg.resolve_timeout_ms);
            break;
        case ST_CONNECTING:
            respond(c, 504, SP_PROXY_FAILED,
                    "connecting to %s (%s) timed out after %u ms", hp,
                    c->ev.upstream, p->cfg.connect_timeout_ms);
            break;
        case ST_SNI:
        case ST_RELAY:
            ms = p->cfg.idle_timeout_ms;
            set_reason(c, "closed after %u ms idle", ms);
            conn_close(c);
            break;
        case ST_RESPOND:
        case ST_LINGER:
        default:
            conn_close(c);
            break;
        }
    }
    for (size_t i = 0; i < p->n_ls; i++) {
        struct listener *l = &p->ls[i];
        if (l->paused && l->resume_us <= now) {
            uint32_t m = 0;
            if (ep_set(p, l->fd, &l->h, &m, EPOLLIN) == 0)
                l->paused = false;
            else
                l->resume_us = now + LISTEN_PAUSE_MS * 1000ull;
        }
    }
    reap_poll(p, NULL);
}

int sp_proxy_dispatch(struct sp_proxy *p, int timeout_ms)
{
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(p->epfd, evs, MAX_EVENTS, timeout_ms);
    if (n < 0) {
        if (errno != EINTR)
            return -errno;
        n = 0;
    }
    for (int i = 0; i < n; i++) {
        struct handle *h = evs[i].data.ptr;
        struct conn *c = h->ptr;
        switch (h->kind) {
        case H_LISTENER:
            on_listener(p, h->ptr);
            break;
        case H_CLIENT:
            if (!c->dead && c->cfd >= 0)
                on_client(c);
            break;
        case H_UPSTREAM:
            if (!c->dead && c->ufd >= 0)
                on_upstream(c);
            break;
        case H_RESOLVER:
            if (!c->dead && c->rfd >= 0 && c->st == ST_RESOLVING)
                on_resolver(c);
            break;
        case H_REAP:
            reap_poll(p, h->ptr);
            break;
        default:
            break;
        }
    }
    expire(p, sp_now_us());
    free_dead(p);
    return n;
}

/* ---- public object -------------------------------------------------------------- */

static int validate(const struct sp_proxy_config *cfg, sp_error *err)
{
    if (cfg->n_rules > SP_PROXY_MAX_RULES || (cfg->n_rules && !cfg->rules))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "egress proxy: bad rule list");
    for (size_t i = 0; i < cfg->n_rules; i++)
        if (!cfg->rules[i].host || !cfg->rules[i].host[0])
            return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                 "egress proxy: rule %zu has no host", i);
    if (cfg->max_conns < 1 || cfg->max_conns > SP_PROXY_MAX_CONNS_LIMIT)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "egress proxy: max_conns must be 1-%d",
                             SP_PROXY_MAX_CONNS_LIMIT);
    if (cfg->header_max < SP_PROXY_HEADER_MIN ||
        cfg->header_max > SP_PROXY_HEADER_LIMIT)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "egress proxy: header_max must be %d-%d",
                             SP_PROXY_HEADER_MIN, SP_PROXY_HEADER_LIMIT);
    if (cfg->idle_timeout_ms == 0 || cfg->connect_timeout_ms == 0 ||
        cfg->resolve_timeout_ms == 0)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "egress proxy: timeouts must be above 0");
    if (cfg->n_hosts > SP_PROXY_RESOLVER_MAX_ENTRIES ||
        (cfg->n_hosts && !cfg->hosts))
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "egress proxy: bad resolver table");
    for (size_t i = 0; i < cfg->n_hosts; i++)
        if (!cfg->hosts[i].name || (cfg->hosts[i].family != AF_INET &&
                                    cfg->hosts[i].family != AF_INET6))
            return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                                 "egress proxy: bad resolver entry %zu", i);
    if (cfg->log_ring > SP_PROXY_LOG_RING_LIMIT)
        return sp_error_setk(err, SP_ERR_USAGE, EINVAL,
                             "egress proxy: log_ring above %d",
                             SP_PROXY_LOG_RING_LIMIT);
    return 0;
}

int sp_proxy_new(const struct sp_proxy_config *cfg, struct sp_proxy **ret,
                 sp_error *err)
{
    int r = validate(cfg, err);
    if (r < 0)
        return r;
    struct sp_proxy *p = calloc(1, sizeof(*p));
    if (!p)
        return sp_error_set(err, ENOMEM, "egress proxy");
    p->epfd = -1;
    p->cfg = *cfg;
    p->cfg.rules = NULL;
    p->cfg.n_rules = 0;
    p->cfg.hosts = NULL;
    p->cfg.n_hosts = 0;
    if (cfg->n_rules) {
        p->cfg.rules = calloc(cfg->n_rules, sizeof(*p->cfg.rules));
        if (!p->cfg.rules)
            goto oom;
        for (size_t i = 0; i < cfg->n_rules; i++) {
            p->cfg.rules[i].host = strdup(cfg->rules[i].host);
            if (!p->cfg.rules[i].host)
                goto oom;
            p->cfg.rules[i].port = cfg->rules[i].port;
            p->cfg.n_rules++;
        }
    }
    if (cfg->n_hosts) {
        p->cfg.hosts = calloc(cfg->n_hosts, sizeof(*p->cfg.hosts));
        if (!p->cfg.hosts)
            goto oom;
        for (size_t i = 0; i < cfg->n_hosts; i++) {
            p->cfg.hosts[i] = cfg->hosts[i];
            p->cfg.hosts[i].name = strdup(cfg->hosts[i].name);
            if (!p->cfg.hosts[i].name)
                goto oom;
            p->cfg.n_hosts++;
        }
    }
    if (cfg->log_ring) {
        p->ring = calloc(cfg->log_ring, sizeof(*p->ring));
        if (!p->ring)
            goto oom;
    }
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0) {
        r = sp_error_set(err, errno, "egress proxy: epoll_create1");
        sp_proxy_free(p);
        return r;
    }
    build_allowed_text(p);
    *ret = p;
    return 0;
oom:
    sp_proxy_free(p);
    return sp_error_set(err, ENOMEM, "egress proxy");
}

int sp_proxy_add_listener(struct sp_proxy *p, int listen_fd)
{
    _cleanup_close_ int fd = listen_fd;
    int v = 0;
    socklen_t vl = sizeof(v);
    if (fd < 0)
        return -EBADF;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl) < 0)
        return -errno;
    if (!v)
        return -EINVAL;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -errno;
    struct listener *n = realloc(p->ls, (p->n_ls + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    p->ls = n;
    /* realloc moved the handles: re-point the registered ones */
    for (size_t i = 0; i < p->n_ls; i++) {
        p->ls[i].h.ptr = &p->ls[i];
        if (!p->ls[i].paused) {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &p->ls[i].h};
            epoll_ctl(p->epfd, EPOLL_CTL_MOD, p->ls[i].fd, &ev);
        }
    }
    struct listener *l = &p->ls[p->n_ls];
    *l = (struct listener){.fd = fd, .h = {H_LISTENER, l}};
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->h};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    p->n_ls++;
    TAKE_FD(fd);
    return 0;
}

int sp_proxy_fd(const struct sp_proxy *p)
{
    return p->epfd;
}

int sp_proxy_next_timeout_ms(const struct sp_proxy *p)
{
    uint64_t now = sp_now_us();
    uint64_t best = UINT64_MAX;
    for (const struct conn *c = p->conns; c; c = c->next)
        if (c->deadline_us < best)
            best = c->deadline_us;
    for (size_t i = 0; i < p->n_ls; i++)
        if (p->ls[i].paused && p->ls[i].resume_us < best)
            best = p->ls[i].resume_us;
    for (const struct reaper *r = p->reap; r; r = r->next)
        if (r->pidfd < 0 && now + REAP_POLL_MS * 1000ull < best)
            best = now + REAP_POLL_MS * 1000ull;
    if (best == UINT64_MAX)
        return -1;
    if (best <= now)
        return 0;
    uint64_t ms = (best - now + 999) / 1000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

unsigned sp_proxy_conn_count(const struct sp_proxy *p)
{
    return p->n_conns;
}

void sp_proxy_set_log(struct sp_proxy *p, sp_proxy_log_fn fn, void *ctx)
{
    p->log_fn = fn;
    p->log_ctx = ctx;
}

size_t sp_proxy_log_read(const struct sp_proxy *p, uint64_t after_seq,
                         struct sp_proxy_event *out, size_t max)
{
    if (!p->ring || p->cfg.log_ring == 0 || p->seq == 0)
        return 0;
    uint64_t first = p->seq > p->cfg.log_ring ? p->seq - p->cfg.log_ring + 1 : 1;
    if (after_seq + 1 > first)
        first = after_seq + 1;
    size_t n = 0;
    for (uint64_t s = first; s <= p->seq && n < max; s++)
        out[n++] = p->ring[(s - 1) % p->cfg.log_ring];
    return n;
}

void sp_proxy_free(struct sp_proxy *p)
{
    if (!p)
        return;
    p->closing = true;
    while (p->conns) {
        struct conn *c = p->conns;
        set_reason(c, "proxy shut down");
        conn_close(c);
    }
    free_dead(p);
    /* Reap what is left, blocking: SIGKILLed children go at once. */
    while (p->reap) {
        struct reaper *r = p->reap;
        p->reap = r->next;
        if (r->pidfd >= 0) {
            siginfo_t si;
            while (waitid((idtype_t)P_PIDFD, (id_t)r->pidfd, &si, WEXITED) < 0 &&
                   errno == EINTR)
                ;
        } else {
            while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
        reaper_free(p, r);
    }
    for (size_t i = 0; i < p->n_ls; i++)
        close(p->ls[i].fd);
    free(p->ls);
    if (p->epfd >= 0)
        close(p->epfd);
    free(p->ring);
    free(p->dns);
    sp_proxy_config_free(&p->cfg);
    free(p);
}
